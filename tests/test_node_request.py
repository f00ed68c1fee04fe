"""What status tells a joining device about its own request as time passes."""

from __future__ import annotations

import time
from pathlib import Path

from meshd.crypto.suite import DeviceKeys
from meshd.events import EventBus
from meshd.keystore import ensure_private_dir
from meshd.mesh.proposals import DEFAULT_ENROLL_EXPIRY_MS
from meshd.node import MeshNode
from tests.sync.meshes import three_device_mesh


class Clock:
    """A clock a test moves forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def new_node(home: Path, clock: Clock | None = None) -> MeshNode:
    ensure_private_dir(home)
    return MeshNode(home, DeviceKeys.generate(), EventBus(), 30, clock)


async def test_an_expired_join_request_says_to_ask_again(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    clock = Clock()
    phone, laptop = new_node(tmp_path / "phone"), new_node(tmp_path / "laptop", clock)
    await phone.create("alice", str(storage), "phone", "phone")
    await laptop.request_enrollment(
        (await phone.invite())["invite"], "laptop", "laptop"
    )
    waiting = (await laptop.status())["warnings"]

    clock.now += DEFAULT_ENROLL_EXPIRY_MS / 1000 + 1
    status = await laptop.status()

    assert any("waiting for approvals" in warning for warning in waiting)
    assert status["request"]["state"] == "expired"
    assert not any("waiting for approvals" in w for w in status["warnings"])
    assert any(
        "join request is expired" in w and "meshctl join" in w
        for w in status["warnings"]
    )


async def test_a_recovery_approved_by_all_it_needs_says_who_completes_it(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    phone, laptop, _ = await three_device_mesh(tmp_path / "homes", str(storage))

    # A new phone replaces the old one; the laptop approves, and then the old
    # phone, which cannot complete a change that revokes it.
    new_phone = new_node(tmp_path / "new-phone")
    asked = await new_phone.request_recovery(
        (await laptop.node.invite())["invite"],
        [phone.device_id],
        "new phone",
        "phone",
    )
    for approver in (laptop, phone):
        await approver.sync()
        await approver.node.approve(asked["request_id"], asked["code"])
    await new_phone.sync_round()
    warnings = (await new_phone.status())["warnings"]

    assert not any("waiting for approvals" in warning for warning in warnings)
    assert any("has all its approvals" in warning for warning in warnings)
