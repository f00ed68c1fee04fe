"""What the rest of meshd may ask of the mesh log.

The replica, sync and daemon layers depend only on this protocol, so the
membership rules stay in one place (:mod:`meshd.mesh`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from meshd.crypto.suite import DevicePublicKeys


@dataclass(frozen=True)
class MemberInfo:
    """One device as the mesh log knows it at a given state.

    ``cutoff`` is the highest op sequence of a revoked device that the
    approvers of its revocation accepted; ``None`` while it is active.
    """

    device_id: str
    keys: DevicePublicKeys
    kind: str
    active: bool
    enrolled_position: int
    revoked_position: int | None
    cutoff: int | None


class MembershipView(Protocol):
    """Read-only membership facts, at the newest accepted head or an older one."""

    @property
    def mesh_id(self) -> bytes:
        """The genesis hash: the mesh id that ciphertexts are bound to."""
        ...

    @property
    def head_hash(self) -> bytes:
        """Hash of the newest accepted entry."""
        ...

    @property
    def position(self) -> int:
        """Position of the newest accepted entry (genesis is 0)."""
        ...

    @property
    def threshold(self) -> int: ...

    @property
    def vault_public_key(self) -> bytes:
        """The vault public key of the current vault generation."""
        ...

    def member(self, device_id: str) -> MemberInfo | None:
        """The device as of the newest head (revoked devices included)."""
        ...

    def active_members(self) -> list[MemberInfo]:
        """Active devices as of the newest head, sorted by device id."""
        ...

    def position_of(self, entry_hash: bytes) -> int | None:
        """Position of an accepted entry, or ``None`` if this device lacks it."""
        ...

    def member_at(self, device_id: str, entry_hash: bytes) -> MemberInfo | None:
        """The device as of the accepted entry ``entry_hash`` (keys then in use,
        active or not then), or ``None`` if unknown at that point."""
        ...
