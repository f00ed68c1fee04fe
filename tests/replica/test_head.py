from __future__ import annotations

from pathlib import Path

import pytest

from meshd.errors import BadSignature, NotAMember
from meshd.replica.head import verify_head

from .membership_fake import FakeMembership
from .replica_harness import START, Mesh


def test_a_head_tells_peers_what_this_device_has(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    mesh.replicas[0].local_set("profile/name", "Alice", START)
    head = verify_head(mesh.replicas[0].head(START + 1), mesh.view)
    assert head.device == mesh.keys[0].device_id
    assert head.sequence == 1
    assert head.version_vector == {mesh.keys[0].device_id: 1}


def test_a_head_from_outside_the_mesh_or_altered_is_refused(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    head = bytearray(mesh.replicas[0].head(START))
    stranger_view = FakeMembership([], mesh_id=mesh.view.mesh_id)
    with pytest.raises(NotAMember):
        verify_head(bytes(head), stranger_view)
    head[-10] ^= 1  # inside the signature
    with pytest.raises(BadSignature):
        verify_head(bytes(head), mesh.view)
