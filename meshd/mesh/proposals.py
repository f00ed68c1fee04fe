"""Proposals and approvals: one mechanism for every threshold-guarded change.

Theory of operation
-------------------
A proposal (enroll, recover, revoke, threshold, rotate, auth) is signed by
its proposer and bound to one head of the mesh log. Approvers answer with a
signed :class:`~meshd.mesh.records.Approval`, whose endorsement is a
signature over the proposal's exact bytes. For enroll and recover the
approver MUST type the 6-digit code the new device shows (derived from the
hash of the request): it binds the approval to this exact request; the
approval then also carries the approver's vault share sealed to the new
device. After too many wrong codes the request is locked.

When ``threshold`` active devices have endorsed it, any device that will be
active after the change may :func:`finalize` it into a mesh-log entry. The
membership part of that entry (the proposal and the endorsements sorted by
device id, dated by the latest approval) is the same on every device; only
the new vault generation is the finalizer's own. Two finalizers make a fork,
and the log's fork rules keep one.

Times are integer milliseconds since the epoch, passed in by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import (
    AssociatedData,
    Context,
    DeviceKeys,
    blake2b,
    constant_time_equal,
    random_bytes,
    seal,
    short_id,
)
from meshd.errors import (
    BadSignature,
    DecodeError,
    DecryptionFailed,
    DeviceRevoked,
    Expired,
    InvalidEntry,
    InvalidInput,
    InvalidState,
    NotAMember,
    ProposalClosed,
    ThresholdNotMet,
    TooManyAttempts,
    UnknownProposal,
    WrongCode,
)
from meshd.mesh.records import (
    APPROVE,
    AUTH,
    ENROLL,
    ENTRY_KIND_OF_PROPOSAL,
    PROPOSAL_KINDS,
    RECOVER,
    REJECT,
    REVOKE,
    THRESHOLD,
    Approval,
    DeviceRecord,
    Directory,
    EntryBody,
    Proposal,
    RequestNote,
    Revocation,
    SealedNote,
)
from meshd.mesh.state import (
    MeshState,
    changed_membership,
    check_proposal_binding,
    check_proposer,
    check_signature,
    next_state,
)
from meshd.mesh.vaults import (
    new_generation,
    open_share,
    proposal_id,
    share_plaintext,
)

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
# How long an enrollment waits for approvals: long enough to walk to another
# device and type a code, short enough that a stale request cannot linger.
DEFAULT_ENROLL_EXPIRY_MS = 5 * MINUTE_MS
# Other proposals wait for devices that may be offline for a while.
DEFAULT_PROPOSAL_EXPIRY_MS = 7 * 24 * 60 * MINUTE_MS
# Three guesses at a 6-digit code give an attacker a 3-in-a-million chance.
MAX_WRONG_CODES = 3
CODE_DIGITS = 6

PENDING = "pending"
APPLIED = "applied"
REJECTED = "rejected"
CANCELLED = "cancelled"
EXPIRED = "expired"
LOCKED = "locked"


def short_code(proposal_body: bytes) -> str:
    """The 6-digit code a new device shows for its request."""
    digest = blake2b(proposal_body, person=b"hm1-short-code")
    return f"{int.from_bytes(digest[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def note_aad(proposal_mesh: bytes, proposer: str, created_at: int) -> AssociatedData:
    return AssociatedData(proposal_mesh, "request-note", proposer, created_at)


# -- Making proposals -----------------------------------------------------------------


def make_join_request(
    state: MeshState,
    keys: DeviceKeys,
    name: str,
    kind: str,
    now: int,
    *,
    replace: Sequence[Revocation] = (),
    threshold: int = 0,
    expires_in: int = DEFAULT_ENROLL_EXPIRY_MS,
) -> Signed:
    """A new device's request to enroll, or to recover when ``replace`` names
    lost devices to revoke in the same change.

    Raises:
        LockoutRefused: the change would lock the person out.
        InvalidEntry: a device to replace is not an active member.
    """
    new_device = DeviceRecord.of(keys.public, kind)
    recipients = {m.device_id: m.keys.encryption for m in state.active_members()}
    recipients[keys.device_id] = keys.public.encryption
    note = SealedNote.seal(
        recipients,
        RequestNote(name, "").encode(),
        note_aad(state.mesh_id, keys.device_id, now),
    )
    proposal = Proposal(
        RECOVER if replace else ENROLL,
        state.mesh_id,
        state.head_hash,
        state.position,
        keys.device_id,
        now,
        now + expires_in,
        new_device,
        tuple(replace),
        threshold,
        b"",
        note,
        random_bytes(16),
    )
    changed_membership(state, proposal, state.position + 1)
    return _signed(proposal.encode(), keys, Context.PROPOSAL)


def propose(
    state: MeshState,
    keys: DeviceKeys,
    kind: str,
    now: int,
    *,
    revocations: Sequence[Revocation] = (),
    threshold: int = 0,
    challenge: bytes = b"",
    reason: str = "",
    expires_in: int = DEFAULT_PROPOSAL_EXPIRY_MS,
) -> Signed:
    """A proposal by an active member: revoke, threshold, rotate or auth.

    Raises:
        InvalidInput: an unknown kind, or a kind that a new device proposes.
        NotAMember / DeviceRevoked: the proposer is not an active member.
        LockoutRefused: the change would lock the person out.
    """
    if kind not in PROPOSAL_KINDS or kind in (ENROLL, RECOVER):
        raise InvalidInput(f"A member cannot propose {kind!r}", field="kind")
    me = state.device_id_of(keys.public)
    require_active(state, me)
    recipients = {m.device_id: m.keys.encryption for m in state.active_members()}
    note = SealedNote.seal(
        recipients,
        RequestNote("", reason).encode(),
        note_aad(state.mesh_id, me, now),
    )
    proposal = Proposal(
        kind,
        state.mesh_id,
        state.head_hash,
        state.position,
        me,
        now,
        now + expires_in,
        None,
        tuple(revocations),
        threshold,
        challenge,
        note,
        random_bytes(16),
    )
    if kind in (REVOKE, THRESHOLD):
        changed_membership(state, proposal, state.position + 1)
    return _signed(proposal.encode(), keys, Context.PROPOSAL, me)


def require_active(state: MeshState, device_id: str) -> None:
    """Raises:
    NotAMember: the device never was a member.
    DeviceRevoked: the device has been revoked.
    """
    member = state.member(device_id)
    if member is None:
        raise NotAMember(f"{short_id(device_id)} is not a member of this mesh")
    if not member.active:
        raise DeviceRevoked(f"{short_id(device_id)} has been revoked")


def _signed(
    body: bytes, keys: DeviceKeys, context: Context, signer: str | None = None
) -> Signed:
    signature = Signature(signer or keys.device_id, keys.sign(context, body))
    return Signed(body, (signature,))


def read_proposal(state: MeshState, signed: Signed) -> Proposal:
    """A proposal checked against ``state``: its kind, head and proposer.

    Raises:
        DecodeError: malformed.
        InvalidEntry: another mesh, another head, or the wrong proposer.
        BadSignature: the proposer's signature does not verify.
    """
    proposal = Proposal.decode(signed.body)
    check_proposal_binding(state, proposal)
    check_proposer(state, signed, proposal)
    return proposal


def read_note(
    proposal: Proposal, keys: DeviceKeys, device_id: str | None = None
) -> RequestNote | None:
    """The proposal's personal text, when this device may read it."""
    if proposal.note is None:
        return None
    try:
        data = proposal.note.open(
            device_id or keys.device_id,
            keys.encryption_secret,
            note_aad(proposal.mesh_id, proposal.proposer, proposal.created_at),
        )
        return RequestNote.decode(data)
    except (DecryptionFailed, DecodeError):
        return None


# -- Approving ---------------------------------------------------------------------


def approval_for(
    state: MeshState,
    proposal_signed: Signed,
    keys: DeviceKeys,
    now: int,
    code: str | None = None,
) -> Signed:
    """This device's approval of a proposal.

    Raises:
        WrongCode: enroll and recover need the code the new device shows.
        Expired: the proposal has expired.
        NotAMember / DeviceRevoked: this device is not an active member.
        LockoutRefused: the change would lock the person out.
    """
    proposal = read_proposal(state, proposal_signed)
    _check_open(proposal, now)
    me = state.device_id_of(keys.public)
    require_active(state, me)
    if proposal.kind in (ENROLL, RECOVER):
        expected = short_code(proposal_signed.body)
        if code is None or not constant_time_equal(code.encode(), expected.encode()):
            raise WrongCode()
    if proposal.kind in ENTRY_KIND_OF_PROPOSAL:
        changed_membership(state, proposal, state.position + 1)

    # Enrollment and recovery hand the new device this approver's share.
    sealed_share = b""
    if proposal.kind in (ENROLL, RECOVER) and proposal.new_device is not None:
        share = open_share(state.vault, keys, me)
        sealed_share = seal(proposal.new_device.encryption_key, share_plaintext(share))
    approval = Approval(
        proposal_id(proposal_signed.body),
        me,
        APPROVE,
        keys.sign(Context.APPROVAL, proposal_signed.body),
        state.vault.number,
        sealed_share,
        now,
    )
    return _signed(approval.encode(), keys, Context.APPROVAL, me)


def rejection_for(
    state: MeshState, proposal_signed: Signed, keys: DeviceKeys, now: int
) -> Signed:
    """This device's signed rejection of a proposal.

    Raises:
        NotAMember / DeviceRevoked: this device is not an active member.
    """
    read_proposal(state, proposal_signed)
    me = state.device_id_of(keys.public)
    require_active(state, me)
    approval = Approval(proposal_id(proposal_signed.body), me, REJECT, b"", 0, b"", now)
    return _signed(approval.encode(), keys, Context.APPROVAL, me)


def _check_open(proposal: Proposal, now: int) -> None:
    if now > proposal.expires_at:
        raise Expired("The request has expired", expires_at=proposal.expires_at)


def read_approval(
    state: MeshState, signed: Signed, wanted: bytes, proposal_body: bytes
) -> Approval:
    """An approval or rejection checked against ``state``.

    Raises:
        InvalidEntry: not for this proposal, or not from an active member.
        BadSignature: a signature does not verify.
    """
    approval = Approval.decode(signed.body)
    if approval.proposal_id != wanted or approval.decision not in (APPROVE, REJECT):
        raise InvalidEntry("The approval is not for this proposal", problem="other")
    device = state.devices.get(approval.approver)
    if device is None or not device.active:
        raise InvalidEntry(
            f"Approval from {short_id(approval.approver)}, not an active member",
            problem="not_active",
            device=approval.approver,
        )
    if len(signed.signatures) != 1 or signed.signatures[0].signer != approval.approver:
        raise InvalidEntry(
            "An approval carries its approver's signature only", problem="signers"
        )
    check_signature(Context.APPROVAL, device.keys, signed.body, signed.signatures[0])
    if approval.decision == APPROVE:
        endorsement = Signature(approval.approver, approval.endorsement)
        check_signature(Context.APPROVAL, device.keys, proposal_body, endorsement)
    return approval


# -- Finalizing ---------------------------------------------------------------------


def finalize(
    state: MeshState,
    proposal_signed: Signed,
    approvals: Iterable[Signed],
    keys: DeviceKeys,
) -> Signed:
    """Turn an approved proposal into a mesh-log entry signed by this device.

    ``state`` must have been read with this device's keys (its directory is
    needed to seal the names of the new vault generation).

    Raises:
        ThresholdNotMet: fewer than ``threshold`` distinct valid approvals.
        NotAMember / DeviceRevoked: this device is not active after the change
            (a device being revoked cannot finalize its own revocation).
        InvalidState: the proposal is not a membership change, or this device
            cannot read the mesh directory.
        LockoutRefused: the change would lock the person out.
    """
    proposal = read_proposal(state, proposal_signed)
    kind = ENTRY_KIND_OF_PROPOSAL.get(proposal.kind)
    if kind is None:
        raise InvalidState(f"A {proposal.kind} proposal does not change the mesh")
    endorsements, latest = _endorsements(state, proposal_signed, approvals)

    # The finalizer must be active AFTER the change.
    position = state.position + 1
    after = changed_membership(state, proposal, position)
    me = state.device_id_of(keys.public)
    require_active(after, me)
    directory = _next_directory(state, proposal, keys, me)
    recipients = {m.device_id: m.keys.encryption for m in after.active_members()}
    generation = new_generation(
        state.vault.number + 1, after.threshold, recipients, directory, state.head_hash
    )

    body = EntryBody(
        position,
        state.head_hash,
        kind,
        latest,
        None,
        proposal_signed.encode(),
        endorsements,
        None,
        generation,
    )
    entry = _signed(body.encode(), keys, Context.MEMBERSHIP, me)
    next_state(state, entry)  # never hand out an entry the log would refuse
    logger.info(
        "Proposal %s finalized by %s at position %s",
        proposal.kind,
        short_id(me),
        position,
    )
    return entry


def _endorsements(
    state: MeshState, proposal_signed: Signed, approvals: Iterable[Signed]
) -> tuple[tuple[Signature, ...], int]:
    """Valid endorsements, one per device, sorted by device id; the latest
    approval time (which dates the entry, so it is the same everywhere)."""
    wanted = proposal_id(proposal_signed.body)
    found: dict[str, tuple[Signature, int]] = {}
    for signed in approvals:
        try:
            approval = read_approval(state, signed, wanted, proposal_signed.body)
        except (InvalidEntry, BadSignature, DecodeError) as exc:
            logger.debug("Approval skipped: %s", exc)
            continue
        if approval.decision == APPROVE:
            signature = Signature(approval.approver, approval.endorsement)
            found[approval.approver] = (signature, approval.created_at)
    if len(found) < state.threshold:
        raise ThresholdNotMet(
            f"{len(found)} of {state.threshold} required approvals",
            approvals=len(found),
            required=state.threshold,
        )
    chosen = [found[device] for device in sorted(found)]
    return tuple(s for s, _ in chosen), max(t for _, t in chosen)


def _next_directory(
    state: MeshState, proposal: Proposal, keys: DeviceKeys, me: str
) -> Directory:
    # TODO: a device that cannot read the directory (a new device finalizing
    # its own enrollment) is refused, although it could read it with the
    # rebuilt vault seed; until then an existing member must finalize.
    if state.directory is None:
        raise InvalidState("This device cannot read the mesh directory")
    names = dict(state.directory.names)
    notes = dict(state.directory.notes)
    note = read_note(proposal, keys, me)
    if proposal.new_device is not None:
        names[proposal.new_device.device_id] = note.device_name if note else ""
    for revocation in proposal.revocations:
        if note is not None and note.reason:
            notes[revocation.device_id] = note.reason
    return Directory(state.directory.label, names, notes)


# -- The book of pending proposals -----------------------------------------------------


@dataclass
class PendingProposal:
    """A proposal this device knows of, with the answers collected so far."""

    signed: Signed
    proposal: Proposal
    id: bytes
    approvals: dict[str, Signed] = field(default_factory=dict)
    rejections: dict[str, Signed] = field(default_factory=dict)
    status: str = PENDING
    wrong_codes: int = 0
    # The threshold in force on the head the proposal was made on: the
    # approvals it needs, whatever threshold its change leaves behind.
    required: int = 0

    @property
    def code_required(self) -> bool:
        return self.proposal.kind in (ENROLL, RECOVER)

    def summary(self, required: int) -> dict[str, object]:
        return {
            "id": self.id.hex(),
            "kind": self.proposal.kind,
            "approvals": len(self.approvals),
            "rejections": len(self.rejections),
            "required": required,
            "expires_at": self.proposal.expires_at,
            "state": self.status,
        }


class ProposalBook:
    """Pending proposals and their approvals (pure: the daemon stores bytes).

    The daemon re-loads it with :meth:`add` and :meth:`receive` from the
    stored Signed bytes. Approvals should go through :meth:`approve`, which
    counts wrong codes; :func:`approval_for` alone does not. The daemon keeps
    each count on disk and gives it back with :meth:`restore_wrong_codes`.
    """

    def __init__(self, max_wrong_codes: int = MAX_WRONG_CODES) -> None:
        self._entries: dict[bytes, PendingProposal] = {}
        self._max_wrong_codes = max_wrong_codes

    def add(self, state: MeshState, signed: Signed) -> PendingProposal:
        """Record a proposal read from storage, a peer or this device.

        Raises:
            DecodeError / InvalidEntry / BadSignature: the proposal is not valid.
        """
        identifier = proposal_id(signed.body)
        known = self._entries.get(identifier)
        if known is not None:
            return known
        proposal = read_proposal(state, signed)
        pending = PendingProposal(
            signed, proposal, identifier, required=state.threshold
        )
        self._entries[identifier] = pending
        logger.info(
            "Proposal %s %s added", pending.proposal.kind, identifier.hex()[:12]
        )
        return pending

    def get(self, identifier: bytes) -> PendingProposal:
        """Raises:
        UnknownProposal: no such proposal.
        """
        pending = self._entries.get(identifier)
        if pending is None:
            raise UnknownProposal(proposal=identifier.hex())
        return pending

    def all(self) -> list[PendingProposal]:
        return list(self._entries.values())

    def pending(self, now: int) -> list[PendingProposal]:
        """Open proposals, oldest first; expired ones are closed on the way."""
        self.expire(now)
        found = [p for p in self._entries.values() if p.status == PENDING]
        return sorted(found, key=lambda p: (p.proposal.created_at, p.id))

    def expire(self, now: int) -> None:
        for pending in self._entries.values():
            if pending.status == PENDING and now > pending.proposal.expires_at:
                pending.status = EXPIRED

    def check_code(self, identifier: bytes, code: str | None, now: int) -> None:
        """Check the code typed on an approver, counting wrong attempts.

        Raises:
            WrongCode: the code does not match (attempts remain).
            TooManyAttempts: too many wrong codes; the request is locked.
            Expired / ProposalClosed: the proposal is no longer open.
        """
        pending = self._open(identifier, now)
        if not pending.code_required:
            return
        expected = short_code(pending.signed.body)
        if code is not None and constant_time_equal(code.encode(), expected.encode()):
            return
        # The caller stores the new count (see restore_wrong_codes), so a
        # restart of the daemon gives a guesser no new tries.
        pending.wrong_codes += 1
        if pending.wrong_codes >= self._max_wrong_codes:
            pending.status = LOCKED
            raise TooManyAttempts(attempts=pending.wrong_codes)
        raise WrongCode(attempts_left=self._max_wrong_codes - pending.wrong_codes)

    def restore_wrong_codes(self, identifier: bytes, attempts: int) -> None:
        """Take back a count of wrong codes kept from before a restart.

        The count never goes down, and an open request that reached the
        limit is locked again.

        Raises:
            UnknownProposal: no such proposal.
        """
        pending = self.get(identifier)
        pending.wrong_codes = max(pending.wrong_codes, attempts)
        locked = pending.wrong_codes >= self._max_wrong_codes
        if locked and pending.status == PENDING and pending.code_required:
            pending.status = LOCKED

    def approve(
        self,
        identifier: bytes,
        state: MeshState,
        keys: DeviceKeys,
        now: int,
        code: str | None = None,
    ) -> Signed:
        """Approve on this device (the code first, for enroll and recover).

        Raises:
            InvalidState: this device already rejected the proposal.
            WrongCode / TooManyAttempts / Expired / ProposalClosed: see
                :meth:`check_code`; and whatever :func:`approval_for` raises.
        """
        # A closed request says so first: locked, it stays locked even for
        # the device whose lock answered it with a rejection.
        pending = self._open(identifier, now)
        if state.device_id_of(keys.public) in pending.rejections:
            raise InvalidState(
                "This device already answered this proposal; its answer stands",
                proposal=identifier.hex(),
            )
        self.check_code(identifier, code, now)
        self._refuse_lookalikes(pending, now)
        signed = approval_for(state, pending.signed, keys, now, code)
        pending.approvals[state.device_id_of(keys.public)] = signed
        return signed

    def _refuse_lookalikes(self, pending: PendingProposal, now: int) -> None:
        """Refuse while another open join request shows the same code.

        Six digits can be ground out by an attacker who sees a request and
        makes a look-alike; the person then cannot tell which one they mean.

        Raises:
            InvalidState: another open request shows the same code.
        """
        if not pending.code_required:
            return
        code = short_code(pending.signed.body)
        for other in self.pending(now):
            if (
                other is not pending
                and other.code_required
                and (short_code(other.signed.body) == code)
            ):
                raise InvalidState(
                    "Two pending requests show the same code: cancel both and "
                    "ask again from the new device"
                )

    def reject(
        self, identifier: bytes, state: MeshState, keys: DeviceKeys, now: int
    ) -> Signed:
        """Reject on this device; the rejection is recorded and published.

        A request this device locked after wrong codes may still be rejected,
        so that the other devices and the new device learn that it will not
        approve.

        Raises:
            UnknownProposal / Expired / ProposalClosed: not open here.
        """
        pending = self.get(identifier)
        if pending.status != LOCKED:
            pending = self._open(identifier, now)
        signed = rejection_for(state, pending.signed, keys, now)
        self._record(pending, state, signed, state.device_id_of(keys.public), REJECT)
        return signed

    def receive(self, state: MeshState, signed: Signed, now: int) -> PendingProposal:
        """Record an approval or rejection made on another device; an
        approval by a device whose rejection is held is not counted.

        Raises:
            UnknownProposal: the proposal is not known here (yet).
            InvalidEntry / BadSignature / DecodeError: the answer is not valid.
        """
        approval = Approval.decode(signed.body)
        pending = self.get(approval.proposal_id)
        read_approval(state, signed, pending.id, pending.signed.body)
        self._record(pending, state, signed, approval.approver, approval.decision)
        return pending

    def _record(
        self,
        pending: PendingProposal,
        state: MeshState,
        signed: Signed,
        device: str,
        decision: str,
    ) -> None:
        # A device answers once. Holding both answers of one device (signed
        # by a hostile device, or met in either order), the rejection wins,
        # so every device counts the same approvals whatever came first.
        if decision == APPROVE and device in pending.rejections:
            logger.warning(
                "Approval by %s of proposal %s ignored: it rejected it before",
                short_id(device),
                pending.id.hex()[:12],
            )
            return
        if decision == APPROVE:
            pending.approvals[device] = signed
        else:
            pending.approvals.pop(device, None)
            pending.rejections[device] = signed

        # Rejected once the devices that have not rejected cannot reach it.
        remaining = len(state.active_ids()) - len(pending.rejections)
        if pending.status == PENDING and remaining < state.threshold:
            pending.status = REJECTED

    def cancel(self, identifier: bytes, device_id: str) -> None:
        """Cancel a request; only its proposer may.

        Raises:
            InvalidInput: the device is not the proposer.
        """
        pending = self.get(identifier)
        if pending.proposal.proposer != device_id:
            raise InvalidInput("Only the device that asked can cancel a request")
        pending.status = CANCELLED

    def ready(self, identifier: bytes, state: MeshState) -> bool:
        """Whether enough active devices approved to finalize."""
        pending = self.get(identifier)
        if pending.status != PENDING or pending.proposal.base_head != state.head_hash:
            return False
        active = set(state.active_ids())
        return len(active & set(pending.approvals)) >= state.threshold

    def finalize(
        self, identifier: bytes, state: MeshState, keys: DeviceKeys, now: int
    ) -> Signed:
        """Raises: as :func:`finalize`, plus Expired / ProposalClosed."""
        pending = self._open(identifier, now)
        return finalize(state, pending.signed, pending.approvals.values(), keys)

    def settle(self, state: MeshState, applied: Iterable[bytes] = ()) -> None:
        """Close proposals that were applied, or that no longer fit the head."""
        done = set(applied)
        for pending in self._entries.values():
            if pending.id in done:
                pending.status = APPLIED
            elif pending.status == PENDING and (
                pending.proposal.base_head != state.head_hash
                and pending.proposal.kind != AUTH
            ):
                # TODO: a proposal made on an older head is closed rather than
                # carried over, so any new entry (even a periodic vault
                # rotation) makes the person ask and approve again.
                pending.status = CANCELLED

    def _open(self, identifier: bytes, now: int) -> PendingProposal:
        pending = self.get(identifier)
        if pending.status == LOCKED:
            raise TooManyAttempts()
        if pending.status == PENDING and now > pending.proposal.expires_at:
            pending.status = EXPIRED
        if pending.status == EXPIRED:
            raise Expired(expires_at=pending.proposal.expires_at)
        if pending.status != PENDING:
            raise ProposalClosed(state=pending.status)
        return pending
