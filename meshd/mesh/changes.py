"""Entries a device writes without a proposal: genesis, key rotation, and a
periodic vault rotation. (Threshold-guarded changes come from
:func:`meshd.mesh.proposals.finalize`.)

Times are integer milliseconds since the epoch, passed in by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import Context, DeviceKeys, short_id
from meshd.errors import InvalidInput, InvalidState
from meshd.mesh.records import (
    GENESIS,
    ROTATE_DEVICE_KEY,
    VAULT_GENERATION,
    ZERO_HASH,
    DeviceRecord,
    Directory,
    EntryBody,
    GenesisFacts,
    KeyRotation,
)
from meshd.mesh.state import MeshState, next_state
from meshd.mesh.vaults import new_generation, reseal_share

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Founder:
    """A device that founds a mesh, with its (private) name and kind."""

    keys: DeviceKeys
    name: str
    kind: str


def make_genesis(
    label: str, founders: Sequence[Founder], threshold: int, now: int
) -> Signed:
    """A genesis entry signed by every founding device.

    Raises:
        InvalidInput: no founders, or a threshold that does not fit them
            (threshold 1 only for a single founder).
    """
    if not founders or not 1 <= threshold <= len(founders):
        raise InvalidInput("A mesh needs 1 <= threshold <= founding devices")
    if threshold == 1 < len(founders):
        raise InvalidInput("Threshold 1 is allowed only for a mesh of one device")
    records = tuple(
        sorted(
            (DeviceRecord.of(f.keys.public, f.kind) for f in founders),
            key=lambda record: record.device_id,
        )
    )
    directory = Directory(label, {f.keys.device_id: f.name for f in founders}, {})
    recipients = {r.device_id: r.encryption_key for r in records}
    generation = new_generation(0, threshold, recipients, directory, ZERO_HASH)
    body = EntryBody(
        0,
        ZERO_HASH,
        GENESIS,
        now,
        GenesisFacts(records, threshold),
        b"",
        (),
        None,
        generation,
    ).encode()

    # Every founder signs the exact same bytes.
    signatures = tuple(
        Signature(f.keys.device_id, f.keys.sign(Context.MEMBERSHIP, body))
        for f in sorted(founders, key=lambda f: f.keys.device_id)
    )
    return Signed(body, signatures)


def rotate_device_key(
    state: MeshState, old_keys: DeviceKeys, new_keys: DeviceKeys, now: int
) -> Signed:
    """A key rotation signed by the old and the new key; the device keeps its
    enrollment id and its vault share is re-sealed to the new key.

    Raises:
        InvalidInput: the old keys are not those of an active device.
    """
    # TODO: the mesh directory (label, device names) stays sealed to the old
    # encryption key until the next vault generation, so after a rotation the
    # device shows names only once it (or another) writes one; the daemon
    # should follow a rotation with rotate_vault.
    member = state.member(state.device_id_of(old_keys.public))
    if member is None or not member.active or member.keys != old_keys.public:
        raise InvalidInput("Only an active device can rotate its own current keys")
    public = new_keys.public
    rotation = KeyRotation(
        member.device_id,
        public.signing,
        public.encryption,
        reseal_share(state.vault, old_keys, public.encryption, member.device_id),
    )
    body = EntryBody(
        state.position + 1,
        state.head_hash,
        ROTATE_DEVICE_KEY,
        now,
        None,
        b"",
        (),
        rotation,
        None,
    ).encode()

    # The old key signs under the enrollment id; the new one under its own.
    signatures = (
        Signature(member.device_id, old_keys.sign(Context.KEY_ROTATION, body)),
        Signature(new_keys.device_id, new_keys.sign(Context.KEY_ROTATION, body)),
    )
    logger.info("Device %s rotates its keys", short_id(member.device_id))
    return Signed(body, signatures)


def rotate_vault(state: MeshState, keys: DeviceKeys, now: int) -> Signed:
    """A lone vault generation (periodic rotation) signed by this device.

    ``state`` must have been read with this device's keys.

    Raises:
        InvalidState: this device cannot read the mesh directory.
    """
    if state.directory is None:
        raise InvalidState("This device cannot read the mesh directory")
    recipients = {m.device_id: m.keys.encryption for m in state.active_members()}
    generation = new_generation(
        state.vault.number + 1,
        state.threshold,
        recipients,
        state.directory,
        state.head_hash,
    )
    body = EntryBody(
        state.position + 1,
        state.head_hash,
        VAULT_GENERATION,
        now,
        None,
        b"",
        (),
        None,
        generation,
    ).encode()
    signer = state.device_id_of(keys.public)
    entry = Signed(body, (Signature(signer, keys.sign(Context.MEMBERSHIP, body)),))
    next_state(state, entry)  # never hand out an entry the log would refuse
    return entry
