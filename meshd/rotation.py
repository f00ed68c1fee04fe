"""A device's keys under its enrollment id, before and after key rotation.

A device keeps the id derived at enrollment for life (the mesh log says so:
:meth:`~meshd.mesh.state.MeshState.device_id_of`), while
:attr:`DeviceKeys.device_id` is derived from the current signing key. After
a rotation the two differ. Everything this device signs as itself (ops,
heads, snapshots, delegations, proofs) must name the enrollment id, because
other devices look the signer up by that id in the mesh log and find the key
it had at that moment. :class:`EnrolledKeys` is the device's keys answering
with that id, so the signing code needs no change.
"""

from __future__ import annotations

from meshd.crypto.suite import DeviceKeys
from meshd.mesh.state import MeshState


class EnrolledKeys(DeviceKeys):
    """Device keys that name the device by its enrollment id."""

    def __init__(self, keys: DeviceKeys, device_id: str) -> None:
        super().__init__(keys.signing_seed, keys.encryption_secret)
        self._device_id = device_id

    @property
    def device_id(self) -> str:
        return self._device_id


def enrolled(keys: DeviceKeys, state: MeshState) -> DeviceKeys:
    """``keys`` named as the mesh log knows them (unchanged if never rotated)."""
    device_id = state.device_id_of(keys.public)
    if device_id == keys.device_id:
        return keys
    return EnrolledKeys(keys, device_id)


__all__ = ["EnrolledKeys", "enrolled"]
