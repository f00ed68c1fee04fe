"""An in-memory mesh log for replica tests: real device keys, real vault
seeds, and simple methods to add and revoke members and move the head."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from meshd.crypto.suite import DeviceKeys, blake2b
from meshd.crypto.vault import new_seed, vault_public_key
from meshd.mesh.view import MemberInfo


@dataclass
class _Entry:
    hash: bytes
    members: dict[str, MemberInfo]
    vault_seed: bytes


class FakeMembership:
    """A linear mesh log; each change appends an entry with a new head hash."""

    def __init__(self, devices: list[DeviceKeys], mesh_id: bytes | None = None) -> None:
        self._mesh_id = mesh_id or os.urandom(32)
        members = {
            keys.device_id: MemberInfo(
                keys.device_id, keys.public, "laptop", True, 0, None, None
            )
            for keys in devices
        }
        self._entries = [
            _Entry(blake2b(self._mesh_id + b"genesis"), members, new_seed())
        ]

    # -- MembershipView -------------------------------------------------------

    @property
    def mesh_id(self) -> bytes:
        return self._mesh_id

    @property
    def head_hash(self) -> bytes:
        return self._entries[-1].hash

    @property
    def position(self) -> int:
        return len(self._entries) - 1

    @property
    def threshold(self) -> int:
        return 2

    @property
    def vault_public_key(self) -> bytes:
        return vault_public_key(self._entries[-1].vault_seed)

    @property
    def vault_seed(self) -> bytes:
        return self._entries[-1].vault_seed

    def member(self, device_id: str) -> MemberInfo | None:
        return self._entries[-1].members.get(device_id)

    def active_members(self) -> list[MemberInfo]:
        members = self._entries[-1].members.values()
        return sorted((m for m in members if m.active), key=lambda m: m.device_id)

    def position_of(self, entry_hash: bytes) -> int | None:
        for position, entry in enumerate(self._entries):
            if entry.hash == entry_hash:
                return position
        return None

    def member_at(self, device_id: str, entry_hash: bytes) -> MemberInfo | None:
        position = self.position_of(entry_hash)
        if position is None:
            return None
        return self._entries[position].members.get(device_id)

    # -- Changes -------------------------------------------------------------

    def _append(self, members: dict[str, MemberInfo]) -> None:
        head = blake2b(self.head_hash + os.urandom(8))
        self._entries.append(_Entry(head, members, new_seed()))

    def add(self, keys: DeviceKeys) -> None:
        members = dict(self._entries[-1].members)
        members[keys.device_id] = MemberInfo(
            keys.device_id, keys.public, "phone", True, len(self._entries), None, None
        )
        self._append(members)

    def revoke(self, device_id: str, cutoff: int) -> None:
        members = dict(self._entries[-1].members)
        members[device_id] = replace(
            members[device_id],
            active=False,
            revoked_position=len(self._entries),
            cutoff=cutoff,
        )
        self._append(members)

    def copy_up_to(self, position: int) -> FakeMembership:
        """Another device's view that has only reached ``position``."""
        other = FakeMembership.__new__(FakeMembership)
        other._mesh_id = self._mesh_id
        other._entries = list(self._entries[: position + 1])
        return other

    def catch_up(self, newer: FakeMembership) -> None:
        self._entries = list(newer._entries)
