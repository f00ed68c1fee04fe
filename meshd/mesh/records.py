"""Wire records of the mesh log, proposals and approvals.

Wire format (do not reorder fields: the canonical encoding follows the
declaration order, and signatures cover the exact encoded bytes)
-------------------------------------------------------------------------
Every object here is a :class:`~meshd.crypto.encoding.Record`. Signed objects
travel as :class:`~meshd.crypto.encoding.Signed`, whose ``body`` is one of:

- :class:`EntryBody` (context MEMBERSHIP, or KEY_ROTATION for a key rotation),
- :class:`Proposal` (context PROPOSAL, signed by its proposer),
- :class:`Approval` (context APPROVAL, signed by its approver).

Public facts (public keys, device kinds, who signed what) are in clear text.
Personal text (the mesh label, device names, the reason for a revocation) is
only ever stored inside a :class:`SealedNote`, encrypted to the members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from meshd.crypto.encoding import Record, Signature
from meshd.crypto.suite import (
    AssociatedData,
    DevicePublicKeys,
    Envelope,
    decrypt_envelope,
    device_id_from_key,
    encrypt_for,
)

# Entry kinds, as written in the log.
GENESIS = "genesis"
ADD_DEVICE = "add-device"
REVOKE_DEVICE = "revoke-device"
ROTATE_DEVICE_KEY = "rotate-device-key"
SET_THRESHOLD = "set-threshold"
VAULT_GENERATION = "vault-generation"
ENTRY_KINDS = frozenset(
    {
        GENESIS,
        ADD_DEVICE,
        REVOKE_DEVICE,
        ROTATE_DEVICE_KEY,
        SET_THRESHOLD,
        VAULT_GENERATION,
    }
)

# Proposal kinds, as shown by `meshctl pending`.
ENROLL = "enroll"
RECOVER = "recover"
REVOKE = "revoke"
THRESHOLD = "threshold"
ROTATE = "rotate"
AUTH = "auth"
PROPOSAL_KINDS = frozenset({ENROLL, RECOVER, REVOKE, THRESHOLD, ROTATE, AUTH})

# The log entry kind that each threshold-guarded proposal kind becomes.
ENTRY_KIND_OF_PROPOSAL = {
    ENROLL: ADD_DEVICE,
    RECOVER: ADD_DEVICE,
    REVOKE: REVOKE_DEVICE,
    THRESHOLD: SET_THRESHOLD,
}

APPROVE = "approve"
REJECT = "reject"

ZERO_HASH = bytes(32)
NOTE_KIND = "mesh-note"


@dataclass(frozen=True)
class DeviceRecord(Record):
    """A device's public facts: its id, two public keys and its kind."""

    TAG: ClassVar[str] = "device"
    VERSION: ClassVar[int] = 1
    device_id: str
    signing_key: bytes
    encryption_key: bytes
    kind: str

    def __post_init__(self) -> None:
        # A device id is derived from its key, never chosen.
        if device_id_from_key(self.signing_key) != self.device_id:
            raise ValueError("device id does not match its signing key")

    @classmethod
    def of(cls, keys: DevicePublicKeys, kind: str) -> DeviceRecord:
        return cls(keys.device_id, keys.signing, keys.encryption, kind)

    @property
    def keys(self) -> DevicePublicKeys:
        return DevicePublicKeys(self.signing_key, self.encryption_key)


@dataclass(frozen=True)
class SealedNote(Record):
    """Personal text encrypted once, its key sealed to each recipient device."""

    TAG: ClassVar[str] = "note"
    VERSION: ClassVar[int] = 1
    ciphertext: bytes
    wrapped_keys: dict[str, bytes]

    @classmethod
    def seal(
        cls, recipients: dict[str, bytes], plaintext: bytes, aad: AssociatedData
    ) -> SealedNote:
        envelope = encrypt_for(recipients, plaintext, aad)
        return cls(envelope.ciphertext, envelope.wrapped_keys)

    def open(self, device_id: str, secret: bytes, aad: AssociatedData) -> bytes:
        """Raises:
        DecryptionFailed: this device is not a recipient, or the note is altered.
        """
        envelope = Envelope(self.ciphertext, dict(self.wrapped_keys))
        return decrypt_envelope(device_id, secret, envelope, aad)


@dataclass(frozen=True)
class Directory(Record):
    """The personal text of the mesh, readable by members only."""

    TAG: ClassVar[str] = "directory"
    VERSION: ClassVar[int] = 1
    label: str
    names: dict[str, str]
    notes: dict[str, str]


@dataclass(frozen=True)
class RequestNote(Record):
    """The personal text of a proposal: a new device's name, a reason."""

    TAG: ClassVar[str] = "request-note"
    VERSION: ClassVar[int] = 1
    device_name: str
    reason: str


@dataclass(frozen=True)
class ShareSlot(Record):
    """One device's vault share: sealed to its X25519 key, with a commitment."""

    TAG: ClassVar[str] = "share-slot"
    VERSION: ClassVar[int] = 1
    device_id: str
    index: int
    commitment: bytes
    sealed_share: bytes


@dataclass(frozen=True)
class VaultGeneration(Record):
    """A vault seed split threshold-of-(active devices), shares sealed per device.

    ``directory`` is the mesh's personal text (label, device names) sealed to
    the active devices of this generation: the finalizer writes it afresh.
    """

    TAG: ClassVar[str] = "vault-generation"
    VERSION: ClassVar[int] = 1
    number: int
    threshold: int
    public_key: bytes
    slots: tuple[ShareSlot, ...]
    directory: SealedNote

    def slot_of(self, device_id: str) -> ShareSlot | None:
        for slot in self.slots:
            if slot.device_id == device_id:
                return slot
        return None


@dataclass(frozen=True)
class Revocation(Record):
    """A device to revoke, and the highest op sequence of it that is accepted."""

    TAG: ClassVar[str] = "revocation"
    VERSION: ClassVar[int] = 1
    device_id: str
    cutoff: int


@dataclass(frozen=True)
class Proposal(Record):
    """A threshold-guarded change waiting for approvals.

    ``base_head`` binds the proposal to one state of the log: it can only be
    finalized on top of that head, so an approved change cannot be replayed
    later. ``threshold`` is the new threshold (0: keep the policy default).
    """

    TAG: ClassVar[str] = "proposal"
    VERSION: ClassVar[int] = 1
    kind: str
    mesh_id: bytes
    base_head: bytes
    base_position: int
    proposer: str
    created_at: int
    expires_at: int
    new_device: DeviceRecord | None
    revocations: tuple[Revocation, ...]
    threshold: int
    challenge: bytes
    note: SealedNote | None
    nonce: bytes


@dataclass(frozen=True)
class Approval(Record):
    """An approver's answer to one proposal.

    ``endorsement`` is the approver's signature (context APPROVAL) over the
    proposal's exact bytes: this is what the log entry carries. For enroll and
    recover, ``sealed_share`` is the approver's share of vault generation
    ``generation`` sealed to the new device (index byte + share value).
    """

    TAG: ClassVar[str] = "approval"
    VERSION: ClassVar[int] = 1
    proposal_id: bytes
    approver: str
    decision: str
    endorsement: bytes
    generation: int
    sealed_share: bytes
    created_at: int


@dataclass(frozen=True)
class KeyRotation(Record):
    """A device's new keys; the share is re-sealed to the new encryption key."""

    TAG: ClassVar[str] = "key-rotation"
    VERSION: ClassVar[int] = 1
    device_id: str
    signing_key: bytes
    encryption_key: bytes
    resealed: ShareSlot


@dataclass(frozen=True)
class GenesisFacts(Record):
    """The first members and threshold of a mesh."""

    TAG: ClassVar[str] = "genesis"
    VERSION: ClassVar[int] = 1
    devices: tuple[DeviceRecord, ...]
    threshold: int


@dataclass(frozen=True)
class EntryBody(Record):
    """One mesh-log entry. Entry k names entry k-1's hash and its own position.

    ``proposal`` is the exact Signed bytes of the proposal (membership changes
    only) and ``approvals`` the endorsements over its body, sorted by device
    id: the same approvals give the same bytes on every device. ``vault`` is
    the finalizer's own addition.
    """

    TAG: ClassVar[str] = "mesh-entry"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 1024 * 1024
    position: int
    previous: bytes
    kind: str
    created_at: int
    genesis: GenesisFacts | None
    proposal: bytes
    approvals: tuple[Signature, ...]
    rotation: KeyRotation | None
    vault: VaultGeneration | None
