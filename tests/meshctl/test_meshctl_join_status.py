"""What ``meshctl status`` says about this device's own join request once it
is closed or applied, on real daemons."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.daemons import MANUAL_SYNC_CONFIG as CONFIG
from tests.daemons import MeshdFactory, MeshdProcess
from tests.daemons import meshctl_ok as ok

WAITING = "waiting for approvals"


@dataclass
class Mesh:
    """The laptop joined; the tablet's request was closed by that change."""

    laptop: MeshdProcess
    tablet: MeshdProcess


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    base = tmp_path_factory.mktemp("meshctl-join-status")
    base.chmod(0o700)
    storage = base / "storage"
    storage.mkdir()
    factory = MeshdFactory(base)
    try:
        phone, laptop, tablet = (factory.start(config=CONFIG) for _ in range(3))
        ok(phone, "init", "--label", "alice", "--storage", str(storage))
        invite = ok(phone, "invite")["invite"]

        # Both ask at once; the laptop's enrollment lands first.
        joined = ok(laptop, "join", invite, "--device-name", "laptop")
        ok(tablet, "join", invite, "--device-name", "tablet")
        ok(phone, "sync")
        ok(phone, "approve", joined["request_id"], "--code", joined["code"])
        ok(phone, "sync")
        ok(laptop, "sync")
        ok(tablet, "sync")
        yield Mesh(laptop, tablet)
    finally:
        factory.stop_all()


def test_a_joined_device_no_longer_shows_its_request(mesh: Mesh) -> None:
    status = ok(mesh.laptop, "status")
    code, out, _ = mesh.laptop.meshctl("status")

    assert status["state"] == "member"
    assert status["request"] is None
    assert code == 0
    assert not any(line.startswith("request") for line in out.splitlines())
    assert WAITING not in out


def test_a_closed_request_says_to_ask_again(mesh: Mesh) -> None:
    status = ok(mesh.tablet, "status")
    code, out, _ = mesh.tablet.meshctl("status")

    assert status["state"] == "joining"
    assert status["request"]["state"] == "cancelled"
    assert code == 0
    assert WAITING not in out
    # Nobody cancelled it: the laptop's enrollment changed the mesh.
    assert "join request was closed: the mesh changed" in out
    assert "meshctl join" in out
    assert "(closed: the mesh changed before it was approved)" in out
    assert "cancelled" not in out
