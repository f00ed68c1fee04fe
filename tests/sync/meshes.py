"""Meshes of in-process devices over real storage, for the sync tests.

Each device is a :class:`~meshd.node.MeshNode` with its own home folder,
SQLite store and storage backend, exactly as the daemon runs it, without
the socket. Devices exchange objects only when a test calls ``sync``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshd.crypto.suite import DeviceKeys
from meshd.events import EventBus
from meshd.keystore import ensure_private_dir
from meshd.node import MeshNode
from meshd.sync.storage import StorageBackend


@dataclass
class Party:
    """One device of a test mesh."""

    name: str
    node: MeshNode

    @property
    def device_id(self) -> str:
        return self.node.device.device_id

    @property
    def backend(self) -> StorageBackend:
        assert self.node.backend is not None
        return self.node.backend

    async def sync(self) -> dict[str, Any]:
        return await self.node.sync_round()

    async def passport(self) -> Any:
        return await self.node.passport_get(None)

    async def problems(self) -> list[tuple[str, str]]:
        status = await self.node.status()
        return [(item["name"], item["reason"]) for item in status["problems"]]

    async def reasons(self) -> set[str]:
        return {reason for _, reason in await self.problems()}


def new_party(root: Path, name: str) -> Party:
    """A fresh device with keys only, its home under ``root``."""
    home = root / name
    ensure_private_dir(home)
    return Party(name, MeshNode(home, DeviceKeys.generate(), EventBus(), 60.0))


async def enroll(new: Party, sponsor: Party, approvers: list[Party]) -> None:
    """``new`` joins with ``sponsor``'s invite; each approver types the code."""
    invite = (await sponsor.node.invite())["invite"]
    request = await new.node.request_enrollment(invite, new.name, "laptop")
    for approver in approvers:
        await approver.sync()
        await approver.node.approve(request["request_id"], request["code"])
    await new.sync()
    assert new.node.device.state_name == "member"


async def three_device_mesh(root: Path, storage_url: str) -> list[Party]:
    """Phone, laptop and tablet at threshold 2, every device synced."""
    phone, laptop, tablet = (new_party(root, n) for n in ("phone", "laptop", "tablet"))
    await phone.node.create("alice", storage_url, "phone", "phone")
    await enroll(laptop, phone, [phone])
    await phone.sync()
    await enroll(tablet, laptop, [phone, laptop])
    await sync_all([phone, laptop, tablet])
    for party in (phone, laptop, tablet):
        assert party.node.device.require_log().state.threshold == 2
    return [phone, laptop, tablet]


async def sync_all(parties: list[Party], rounds: int = 2) -> None:
    for _ in range(rounds):
        for party in parties:
            await party.sync()


def close_all(parties: list[Party]) -> None:
    for party in parties:
        party.node.device.close()
