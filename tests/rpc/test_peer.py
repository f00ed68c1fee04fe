"""The peer uid check: only the daemon's own user may connect."""

from __future__ import annotations

import os
import socket

from meshd.rpc.peer import check_peer, decide_peer, peer_uid


def test_same_uid_is_admitted() -> None:
    assert decide_peer(1000, 1000).allowed


def test_another_uid_is_refused_with_a_reason() -> None:
    decision = decide_peer(1001, 1000)

    assert not decision.allowed
    assert "1001" in decision.reason


def test_root_is_refused_by_a_daemon_of_another_user() -> None:
    assert not decide_peer(0, 1000).allowed


def test_kernel_reports_our_own_uid_for_a_local_socket_pair() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_uid(left) == os.getuid()
        assert check_peer(left).allowed
        assert not check_peer(left, own_uid=os.getuid() + 1).allowed
