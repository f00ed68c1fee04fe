"""Mesh state: who is a member, the threshold and the vault, at one head.

Theory of operation
-------------------
A :class:`MeshState` is an immutable value: the membership facts after one
accepted entry. :func:`genesis_state` builds the first one and
:func:`next_state` checks an entry against the state before it and returns
the state after it. All validity rules of the mesh log live here (section 4
of the design):

- the chain: entry k names entry k-1's hash and position k;
- a membership change carries endorsements of its proposal from at least
  ``threshold`` distinct devices active *before* it, each counted once;
- it also carries a fresh vault generation signed by one finalizer who is
  active *after* it (so a revoked device never finalizes its own revocation);
- genesis is signed by all its devices, a key rotation by the old and the new
  key, a lone vault generation by one active device;
- lock-out guards refuse a change that leaves fewer active devices than the
  threshold, revokes the last device or raises the threshold too high;
- threshold 1 holds only while the mesh has one device: a genesis or a
  change that leaves threshold 1 with two or more active devices is refused,
  so one stolen device can never change the mesh alone.

Fork choice and rollback refusal are the log's business (:mod:`.log`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import (
    Context,
    DeviceKeys,
    DevicePublicKeys,
    blake2b,
    device_id_from_key,
    did_from_genesis,
    short_id,
    verify,
)
from meshd.errors import (
    BadSignature,
    DecodeError,
    DecryptionFailed,
    InvalidEntry,
    LockoutRefused,
)
from meshd.mesh.records import (
    ADD_DEVICE,
    AUTH,
    ENROLL,
    ENTRY_KIND_OF_PROPOSAL,
    ENTRY_KINDS,
    GENESIS,
    PROPOSAL_KINDS,
    RECOVER,
    REVOKE,
    REVOKE_DEVICE,
    ROTATE_DEVICE_KEY,
    THRESHOLD,
    VAULT_GENERATION,
    ZERO_HASH,
    DeviceRecord,
    Directory,
    EntryBody,
    Proposal,
    VaultGeneration,
)
from meshd.mesh.vaults import open_directory
from meshd.mesh.view import MemberInfo
from meshd.mesh.wire import decode_entry, decode_proposal, decode_signed

logger = logging.getLogger(__name__)


def entry_hash(signed: Signed) -> bytes:
    """The hash that names an entry: BLAKE2b-256 of its exact body bytes."""
    return blake2b(signed.body)


def invalid(problem: str, message: str, **details: Any) -> InvalidEntry:
    """An :class:`InvalidEntry` whose ``problem`` names the broken rule."""
    return InvalidEntry(message, problem=problem, **details)


@dataclass(frozen=True)
class DeviceState:
    """One device as the log knows it: keys over time, enrollment, revocation."""

    record: DeviceRecord
    key_history: tuple[tuple[int, DevicePublicKeys], ...]
    enrolled_position: int
    revoked_position: int | None = None
    cutoff: int | None = None

    @property
    def keys(self) -> DevicePublicKeys:
        return self.key_history[-1][1]

    @property
    def active(self) -> bool:
        return self.revoked_position is None

    def info(self) -> MemberInfo:
        return MemberInfo(
            self.record.device_id,
            self.keys,
            self.record.kind,
            self.active,
            self.enrolled_position,
            self.revoked_position,
            self.cutoff,
        )

    def info_at(self, position: int) -> MemberInfo | None:
        """The device as it was right after the entry at ``position``."""
        if position < self.enrolled_position:
            return None
        keys = next(k for start, k in reversed(self.key_history) if start <= position)
        revoked = (
            self.revoked_position is not None and self.revoked_position <= position
        )
        return MemberInfo(
            self.record.device_id,
            keys,
            self.record.kind,
            not revoked,
            self.enrolled_position,
            self.revoked_position if revoked else None,
            self.cutoff if revoked else None,
        )


class ChainIndex:
    """Entry hashes by position, shared by the states of one branch.

    Append-only: a state at position p sees only positions 0..p. A state
    that grows a second child (a fork) gives that child a copy, so no state
    ever sees another branch, and a straight chain costs O(1) per entry
    instead of a copy of every hash.
    """

    def __init__(self, hashes: list[bytes]) -> None:
        self._hashes = hashes
        self._positions = {value: index for index, value in enumerate(hashes)}

    def extended(self, position: int, head: bytes) -> ChainIndex:
        """The index of a child at ``position + 1`` of the state at ``position``."""
        if len(self._hashes) == position + 1:
            self._hashes.append(head)
            self._positions[head] = position + 1
            return self
        return ChainIndex([*self._hashes[: position + 1], head])

    def position_of(self, entry_hash: bytes, upto: int) -> int | None:
        position = self._positions.get(entry_hash)
        if position is None or position > upto:
            return None
        return position

    def hash_at(self, position: int) -> bytes:
        return self._hashes[position]


@dataclass(frozen=True)
class MeshState:
    """The membership facts after one accepted entry (a MembershipView).

    ``directory`` (label and device names) is present only when the state
    was built with the keys of a device that may read it.
    """

    mesh_id: bytes
    position: int
    head_hash: bytes
    threshold: int
    devices: dict[str, DeviceState]
    vault: VaultGeneration
    vault_previous: bytes
    chain: ChainIndex
    last_kind: str
    directory: Directory | None = None
    equivocators: frozenset[str] = frozenset()

    # -- MembershipView --------------------------------------------------------

    @property
    def vault_public_key(self) -> bytes:
        return self.vault.public_key

    def member(self, device_id: str) -> MemberInfo | None:
        device = self.devices.get(device_id)
        return None if device is None else device.info()

    def active_members(self) -> list[MemberInfo]:
        return [
            self.devices[key].info()
            for key in sorted(self.devices)
            if self.devices[key].active
        ]

    def position_of(self, entry_hash: bytes) -> int | None:
        return self.chain.position_of(entry_hash, self.position)

    def hash_at(self, position: int) -> bytes:
        """Hash of the entry at ``position`` (0..this state's position)."""
        if not 0 <= position <= self.position:
            raise IndexError(position)
        return self.chain.hash_at(position)

    def member_at(self, device_id: str, entry_hash: bytes) -> MemberInfo | None:
        position = self.position_of(entry_hash)
        device = self.devices.get(device_id)
        if position is None or device is None:
            return None
        return device.info_at(position)

    # -- Status ------------------------------------------------------------------

    @property
    def did(self) -> str:
        return did_from_genesis(self.mesh_id)

    @property
    def label(self) -> str | None:
        return None if self.directory is None else self.directory.label

    def device_name(self, device_id: str) -> str | None:
        if self.directory is None:
            return None
        return self.directory.names.get(device_id)

    def device_id_of(self, public: DevicePublicKeys) -> str:
        """The enrollment id of the device now using ``public`` keys.

        A device keeps the id derived at enrollment when it rotates its keys;
        keys the log does not know answer with their own derived id.
        """
        for device_id, device in self.devices.items():
            if device.keys.signing == public.signing:
                return device_id
        return public.device_id

    def active_ids(self) -> list[str]:
        """The ids of the active devices, sorted (as :meth:`active_members`)."""
        return sorted(key for key, device in self.devices.items() if device.active)

    def warnings(self) -> list[str]:
        """Warnings for status, loudest first."""
        found: list[str] = []
        active = len(self.active_ids())
        if self.threshold == 1:
            found.append(
                "THRESHOLD IS 1: a single device can change the mesh, and losing "
                "it loses the identity; add a device and use at least 2-of-3"
            )
        if active == self.threshold and active > 1:
            found.append(
                f"Every active device ({active}) is needed to approve a change: "
                "losing one locks the mesh; add a device or lower the threshold"
            )
        if self.equivocators:
            names = ", ".join(short_id(device) for device in sorted(self.equivocators))
            found.append(f"Devices signed both sides of a fork (equivocation): {names}")
        return found

    def did_document(self) -> dict[str, Any]:
        """The active devices as a W3C DID document (Ed25519 keys)."""
        methods = [
            {
                "id": f"{self.did}#{member.device_id}",
                "type": "Ed25519VerificationKey2020",
                "controller": self.did,
                "publicKeyMultibase": _multibase_ed25519(member.keys.signing),
            }
            for member in self.active_members()
        ]
        ids = [method["id"] for method in methods]
        return {
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/suites/ed25519-2020/v1",
            ],
            "id": self.did,
            "verificationMethod": methods,
            "authentication": ids,
            "assertionMethod": ids,
        }

    def read_directory(self, keys: DeviceKeys) -> MeshState:
        """This state with its directory opened with ``keys``, when allowed."""
        try:
            directory = open_directory(
                self.vault,
                self.vault_previous,
                self.device_id_of(keys.public),
                keys.encryption_secret,
            )
        except DecryptionFailed:
            return self
        return evolved(self, directory=directory)


def evolved(state: MeshState, **changes: Any) -> MeshState:
    """``dataclasses.replace(state, **changes)``, at a fraction of its cost.

    A log replays every entry through a few of these, and ``replace`` walks
    the field list and runs the frozen ``__init__`` each time. A MeshState
    checks nothing of its own (no ``__post_init__``), so copying its fields
    and overwriting the changed ones is all that ``replace`` would do.

    Raises:
        TypeError: a change names no field of MeshState.
    """
    fields = state.__dict__
    if not changes.keys() <= fields.keys():
        unknown = ", ".join(sorted(changes.keys() - fields.keys()))
        raise TypeError(f"MeshState has no field {unknown}")
    after = object.__new__(MeshState)
    after.__dict__.update(fields)
    after.__dict__.update(changes)
    return after


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ED25519_MULTICODEC = b"\xed\x01"


def _multibase_ed25519(public_key: bytes) -> str:
    """Multibase base58btc of the multicodec-prefixed Ed25519 key ("z6Mk...")."""
    data = _ED25519_MULTICODEC + public_key
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _BASE58[rest] + digits
    leading = len(data) - len(data.lstrip(b"\0"))
    return "z" + "1" * leading + digits


# -- Reading an entry -------------------------------------------------------------


def read_entry(signed: Signed) -> EntryBody:
    """Raises:
    DecodeError: the body is not a mesh-log entry.
    InvalidEntry: the entry kind is unknown.
    """
    body = decode_entry(signed.body)
    if body.kind not in ENTRY_KINDS:
        raise invalid("unknown_kind", f"Unknown entry kind {body.kind!r}")
    return body


def check_signature(
    context: Context, keys: DevicePublicKeys, payload: bytes, signature: Signature
) -> None:
    """Raises:
    BadSignature: naming the device whose signature failed.
    """
    try:
        verify(context, keys.signing, payload, signature.signature)
    except BadSignature as exc:
        raise BadSignature(
            f"Signature of {short_id(signature.signer)} does not verify",
            device=signature.signer,
        ) from exc


def genesis_state(signed: Signed, reader: DeviceKeys | None = None) -> MeshState:
    """The state after a genesis entry.

    Raises:
        InvalidEntry: the entry breaks a genesis rule (``problem`` says which).
        BadSignature: a device's signature does not verify.
    """
    body = read_entry(signed)
    facts = body.genesis
    if body.kind != GENESIS or facts is None:
        raise invalid("not_genesis", "The first entry must be a genesis")
    if body.proposal or body.approvals or body.rotation is not None:
        raise invalid("extra_fields", "A genesis carries its devices only")
    if body.position != 0 or body.previous != ZERO_HASH:
        raise invalid("chain", "A genesis sits at position 0 with no previous")
    ids = [device.device_id for device in facts.devices]
    if not ids or len(set(ids)) != len(ids):
        raise invalid("duplicate_device", "Genesis devices must be distinct")
    if not 1 <= facts.threshold <= len(ids) or facts.threshold == 1 < len(ids):
        raise invalid("threshold", "Genesis threshold does not fit its devices")

    # Every founding device signs, each exactly once.
    keys = {device.device_id: device.keys for device in facts.devices}
    _check_exact_signers(signed, keys, Context.MEMBERSHIP)
    devices = {
        device.device_id: DeviceState(device, ((0, device.keys),), 0)
        for device in facts.devices
    }
    _check_vault(body.vault, 0, facts.threshold, sorted(devices))
    assert body.vault is not None
    head = entry_hash(signed)
    state = MeshState(
        head,
        0,
        head,
        facts.threshold,
        devices,
        body.vault,
        ZERO_HASH,
        ChainIndex([head]),
        GENESIS,
    )
    return state if reader is None else state.read_directory(reader)


def _check_exact_signers(
    signed: Signed, keys: dict[str, DevicePublicKeys], context: Context
) -> None:
    signers = signed.signers()
    if len(set(signers)) != len(signers):
        raise invalid("duplicate_signer", "A device signed the entry twice")
    if sorted(signers) != sorted(keys):
        raise invalid("signers", "The entry is not signed by exactly its devices")
    for signature in signed.signatures:
        check_signature(context, keys[signature.signer], signed.body, signature)


def next_state(
    state: MeshState,
    signed: Signed,
    reader: DeviceKeys | None = None,
    body: EntryBody | None = None,
    head: bytes | None = None,
) -> MeshState:
    """Check ``signed`` against ``state`` and return the state after it.

    ``body`` is the already decoded body of ``signed`` and ``head`` its
    :func:`entry_hash`, when the caller has them.

    Raises:
        InvalidEntry: a rule is broken; ``details["problem"]`` names it.
        BadSignature: a signature does not verify (forged, other context).
        LockoutRefused: the change would lock the person out.
        DecodeError: the entry or its proposal is malformed.
    """
    body = body or read_entry(signed)
    if body.position != state.position + 1 or body.previous != state.head_hash:
        raise invalid(
            "chain",
            f"Entry at {body.position} does not follow head {state.position}",
            position=body.position,
        )

    if body.kind == ROTATE_DEVICE_KEY:
        after = _apply_rotation(state, signed, body)
    elif body.kind == VAULT_GENERATION:
        after = _apply_lone_generation(state, signed, body)
    elif body.kind == GENESIS:
        raise invalid("chain", "A genesis can only be the first entry")
    else:
        after = _apply_membership_change(state, signed, body)

    # Advance the head; readable personal text is refreshed when the vault is.
    head = head or entry_hash(signed)
    after = evolved(
        after,
        position=body.position,
        head_hash=head,
        chain=state.chain.extended(state.position, head),
        last_kind=body.kind,
    )
    if reader is not None and after.vault is not state.vault:
        after = after.read_directory(reader)
    return after


# -- Membership changes -------------------------------------------------------------


def open_proposal(data: bytes) -> tuple[Signed, Proposal]:
    """Raises:
    DecodeError: the bytes are not a Signed proposal.
    """
    signed = decode_signed(data)
    return signed, decode_proposal(signed.body)


def _apply_membership_change(
    state: MeshState, signed: Signed, body: EntryBody
) -> MeshState:
    if not body.proposal or body.genesis is not None or body.rotation is not None:
        raise invalid("extra_fields", "A membership change carries its proposal only")
    proposal_signed, proposal = open_proposal(body.proposal)
    check_proposal_binding(state, proposal)
    if ENTRY_KIND_OF_PROPOSAL.get(proposal.kind) != body.kind:
        raise invalid("kind", f"A {proposal.kind} proposal cannot be a {body.kind}")
    if body.created_at > proposal.expires_at:
        raise invalid("expired", "The proposal expired before it was finalized")
    check_proposer(state, proposal_signed, proposal)
    check_endorsements(state, proposal_signed.body, body.approvals)

    # The finalizer must be active AFTER the change and writes the new vault.
    after = changed_membership(state, proposal, body.position)
    finalizer = _single_signer(signed, after, Context.MEMBERSHIP)
    _check_vault(
        body.vault, state.vault.number + 1, after.threshold, after.active_ids()
    )
    assert body.vault is not None
    logger.debug("Mesh entry %s finalized by %s", body.position, short_id(finalizer))
    return evolved(after, vault=body.vault, vault_previous=body.previous)


def check_proposal_shape(proposal: Proposal) -> None:
    """Each proposal kind carries exactly the fields that fit it, so an
    approver never hands a vault share to a device named in a proposal that
    is not an enrollment.

    Raises:
        InvalidEntry: problem ``proposal_shape``.
    """
    joins = proposal.kind in (ENROLL, RECOVER)
    fits = (
        proposal.kind in PROPOSAL_KINDS
        and (proposal.new_device is not None) == joins
        and bool(proposal.revocations) == (proposal.kind in (RECOVER, REVOKE))
        and (proposal.kind != THRESHOLD or proposal.threshold >= 1)
        and proposal.threshold >= 0
        and (proposal.kind == AUTH or not proposal.challenge)
        and all(revocation.cutoff >= 0 for revocation in proposal.revocations)
        and len({r.device_id for r in proposal.revocations})
        == len(proposal.revocations)
    )
    if not fits:
        raise invalid(
            "proposal_shape",
            f"The {proposal.kind!r} proposal has fields that do not fit",
        )


def check_proposal_binding(state: MeshState, proposal: Proposal) -> None:
    """The proposal belongs to this mesh and was made on this exact head.

    Raises:
        InvalidEntry: problem ``proposal_shape``, ``wrong_mesh`` or
            ``stale_proposal``.
    """
    check_proposal_shape(proposal)
    if proposal.mesh_id != state.mesh_id:
        raise invalid("wrong_mesh", "The proposal belongs to another mesh")
    if (proposal.base_head, proposal.base_position) != (
        state.head_hash,
        state.position,
    ):
        raise invalid(
            "stale_proposal",
            "The proposal was made on another head of the mesh log",
            base_position=proposal.base_position,
        )


def check_proposer(state: MeshState, signed: Signed, proposal: Proposal) -> None:
    """Enroll and recover are signed by the new device (proof it holds the
    key); other proposals by an active member.

    Raises:
        InvalidEntry: the proposer is not who it must be.
        BadSignature: the proposer's signature does not verify.
    """
    if len(signed.signatures) != 1 or signed.signatures[0].signer != proposal.proposer:
        raise invalid("proposer", "A proposal carries only its proposer's signature")
    if proposal.kind in (ENROLL, RECOVER):
        device = proposal.new_device
        if device is None or device.device_id != proposal.proposer:
            raise invalid("proposer", "A join request is signed by the new device")
        keys = device.keys
    else:
        member = state.devices.get(proposal.proposer)
        if member is None or not member.active:
            raise invalid("proposer", "The proposer is not an active member")
        keys = member.keys
    check_signature(Context.PROPOSAL, keys, signed.body, signed.signatures[0])


def check_endorsements(
    state: MeshState, proposal_body: bytes, approvals: tuple[Signature, ...]
) -> None:
    """At least ``threshold`` distinct active devices endorsed the proposal.

    Raises:
        InvalidEntry: duplicate, unsorted, unknown or revoked signers, or too few.
        BadSignature: an endorsement does not verify (forged, other context).
    """
    signers = [approval.signer for approval in approvals]
    if len(set(signers)) != len(signers):
        raise invalid("duplicate_signer", "A device endorsed the change twice")
    if signers != sorted(signers):
        raise invalid("unsorted_approvals", "Endorsements must be sorted by device")
    for approval in approvals:
        device = state.devices.get(approval.signer)
        if device is None:
            raise invalid(
                "unknown_signer",
                f"{short_id(approval.signer)} is not a member",
                device=approval.signer,
            )
        if not device.active:
            raise invalid(
                "revoked_signer",
                f"{short_id(approval.signer)} is revoked",
                device=approval.signer,
            )
        check_signature(Context.APPROVAL, device.keys, proposal_body, approval)
    if len(signers) < state.threshold:
        raise invalid(
            "threshold_not_met",
            f"{len(signers)} of {state.threshold} required approvals",
            have=len(signers),
            need=state.threshold,
        )


def changed_membership(
    state: MeshState, proposal: Proposal, position: int
) -> MeshState:
    """The membership after ``proposal`` (vault unchanged), with lock-out guards.

    Raises:
        InvalidEntry: the change names unknown or already revoked devices.
        LockoutRefused: the change would lock the person out.
    """
    new = proposal.new_device if proposal.kind in (ENROLL, RECOVER) else None

    # States share a device map until a change adds or revokes a device: the
    # log keeps every state, so a copy per entry would cost O(devices) each.
    alters = new is not None or bool(proposal.revocations)
    devices = dict(state.devices) if alters else state.devices
    if new is not None:
        if new.device_id in devices:
            raise invalid("known_device", f"{short_id(new.device_id)} is known")
        devices[new.device_id] = DeviceState(new, ((position, new.keys),), position)
    for revocation in proposal.revocations:
        device = devices.get(revocation.device_id)
        if device is None or not device.active:
            raise invalid(
                "not_active",
                f"{short_id(revocation.device_id)} is not an active member",
                device=revocation.device_id,
            )
        devices[revocation.device_id] = replace(
            device, revoked_position=position, cutoff=revocation.cutoff
        )

    threshold = _threshold_after(state, proposal, devices)
    check_lockout(devices, threshold, raising=threshold > state.threshold)
    return evolved(state, devices=devices, threshold=threshold)


def _threshold_after(
    state: MeshState, proposal: Proposal, devices: dict[str, DeviceState]
) -> int:
    if proposal.kind == THRESHOLD or proposal.threshold > 0:
        if proposal.threshold < 1:
            raise invalid("threshold", "A threshold must be at least 1")
        return proposal.threshold

    # Policy: threshold 1 only while there is one device. Adding the second
    # raises it to 2 unless the proposal asked for another lawful value.
    before = sum(1 for device in state.devices.values() if device.active)
    after = sum(1 for device in devices.values() if device.active)
    if state.threshold == 1 and before == 1 and after >= 2:
        return 2
    return state.threshold


def check_lockout(
    devices: dict[str, DeviceState], threshold: int, *, raising: bool
) -> None:
    """Raises:
    LockoutRefused: no active device would remain, too few to meet the
        threshold, or a threshold above the number of active devices.
    """
    active = sum(1 for device in devices.values() if device.active)
    if active == 0:
        raise LockoutRefused("The change would revoke the last device of the mesh")
    if threshold > active and raising:
        raise LockoutRefused(
            f"A threshold of {threshold} is above the {active} active devices",
            threshold=threshold,
            active=active,
        )
    if threshold > active:
        # Going down to one device: threshold 2 is then out of reach and 1
        # only lawful with one device, so the revocation itself carries it.
        how = (
            "in the same revocation (revoke --threshold 1)" if active == 1 else "first"
        )
        raise LockoutRefused(
            f"Only {active} active devices would remain for a threshold of "
            f"{threshold}: lower the threshold {how}",
            threshold=threshold,
            active=active,
        )
    check_threshold_one(active, threshold)


def check_threshold_one(active: int, threshold: int) -> None:
    """Threshold 1 is allowed only while the mesh has one active device.

    With two or more, one device alone (a stolen phone) could change the
    mesh; the guard holds at proposal time and when the log is validated, so
    an entry written straight into storage is refused too.

    Raises:
        LockoutRefused: threshold 1 with two or more active devices.
    """
    if threshold == 1 and active > 1:
        raise LockoutRefused(
            f"A threshold of 1 is allowed only while the mesh has one device: "
            f"with {active} active devices one of them alone could change the "
            "mesh; use a threshold of at least 2",
            threshold=threshold,
            active=active,
            rule="threshold_one",
        )


def _single_signer(signed: Signed, after: MeshState, context: Context) -> str:
    if len(signed.signatures) != 1:
        raise invalid("signers", "The entry must be signed by its one finalizer")
    signature = signed.signatures[0]
    device = after.devices.get(signature.signer)
    if device is None or not device.active:
        raise invalid(
            "finalizer_not_active",
            f"{short_id(signature.signer)} is not active after the change",
            device=signature.signer,
        )
    check_signature(context, device.keys, signed.body, signature)
    return signature.signer


def _check_vault(
    generation: VaultGeneration | None,
    number: int,
    threshold: int,
    active_ids: list[str],
) -> None:
    """The generation is the next one, for exactly the active devices."""
    if generation is None:
        raise invalid("no_vault", "The entry must carry a fresh vault generation")
    if generation.number != number or generation.threshold != threshold:
        raise invalid(
            "vault", f"Expected vault generation {number} with threshold {threshold}"
        )
    slots = [(slot.device_id, slot.index) for slot in generation.slots]
    expected = [(device, index + 1) for index, device in enumerate(sorted(active_ids))]
    if slots != expected:
        raise invalid("vault", "The vault shares do not match the active devices")
    if len(generation.public_key) != 32 or any(
        len(slot.commitment) != 32 for slot in generation.slots
    ):
        raise invalid("vault", "The vault generation has malformed keys")


# -- Key rotation and lone vault generations --------------------------------------


def _apply_rotation(state: MeshState, signed: Signed, body: EntryBody) -> MeshState:
    rotation = body.rotation
    if (
        rotation is None
        or body.vault is not None
        or body.proposal
        or body.approvals
        or body.genesis is not None
    ):
        raise invalid("rotation", "A key rotation carries only the new keys")
    device = state.devices.get(rotation.device_id)
    if device is None or not device.active:
        raise invalid("rotation", "Only an active device can rotate its keys")
    new_keys = DevicePublicKeys(rotation.signing_key, rotation.encryption_key)
    new_id = device_id_from_key(rotation.signing_key)
    if any(other.keys.signing == new_keys.signing for other in state.devices.values()):
        raise invalid("rotation", "The new signing key is already in use")

    # Signed by the old key (under the enrollment id) and by the new key.
    _check_exact_signers(
        signed,
        {rotation.device_id: device.keys, new_id: new_keys},
        Context.KEY_ROTATION,
    )
    slot = state.vault.slot_of(rotation.device_id)
    resealed = rotation.resealed
    if slot is None or (resealed.device_id, resealed.index, resealed.commitment) != (
        slot.device_id,
        slot.index,
        slot.commitment,
    ):
        raise invalid("rotation", "The re-sealed share is not the device's own")

    devices = dict(state.devices)
    devices[rotation.device_id] = replace(
        device, key_history=(*device.key_history, (body.position, new_keys))
    )
    slots = tuple(resealed if s is slot else s for s in state.vault.slots)
    vault = replace(state.vault, slots=slots)
    return evolved(state, devices=devices, vault=vault)


def _apply_lone_generation(
    state: MeshState, signed: Signed, body: EntryBody
) -> MeshState:
    if body.proposal or body.approvals or body.rotation or body.genesis:
        raise invalid("extra_fields", "A lone vault generation carries nothing else")
    _single_signer(signed, state, Context.MEMBERSHIP)
    _check_vault(
        body.vault, state.vault.number + 1, state.threshold, state.active_ids()
    )
    assert body.vault is not None
    return evolved(state, vault=body.vault, vault_previous=body.previous)


def is_revocation(signed: Signed) -> bool:
    """Whether an entry revokes a device (fork rule 1)."""
    try:
        body = decode_entry(signed.body)
        if body.kind == REVOKE_DEVICE:
            return True
        if body.kind != ADD_DEVICE or not body.proposal:
            return False
        return bool(open_proposal(body.proposal)[1].revocations)
    except DecodeError:
        return False


def entry_signers(signed: Signed) -> frozenset[str]:
    """Every device that signed an entry: endorsers and finalizers (rule 2)."""
    signers = set(signed.signers())
    try:
        body = decode_entry(signed.body)
    except DecodeError:
        return frozenset(signers)
    signers.update(approval.signer for approval in body.approvals)
    return frozenset(signers)
