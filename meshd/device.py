"""This device: its place in the mesh, its replica and its side of sync.

Theory of operation
-------------------
A :class:`Device` ties the pure cores to the local SQLite store: the mesh
log (:mod:`meshd.mesh`), the book of proposals, and the passport replica
(:mod:`meshd.replica`). It is also the :class:`~meshd.sync.engine.LocalParty`
of the sync engine: it says what to publish, what it still wants, and judges
each object that storage or a peer hands it. Every object is checked by the
cores before anything is stored; storage is never trusted.

A device is in one of three states:

- ``no_mesh``: keys only.
- ``joining``: it asked to enroll (or recover) and follows the mesh log from
  storage, without being able to read the passport, until an entry adds it.
- ``member``: active in the mesh (or ``revoked``: it was removed).

Who finalizes: any device that holds threshold approvals of a proposal and
will be active after the change writes the entry, after every sync round.
Two finalizers make a fork that the mesh log resolves the same everywhere.

Times: the cores of the mesh take integer milliseconds, the replica float
seconds; this module reads the clock once per call and passes it on.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from meshd.auth import (
    AuthStatement,
    device_proof,
    make_statement,
    statement_digest,
    threshold_proof,
)
from meshd.crypto.encoding import Record, Signed
from meshd.crypto.suite import DeviceKeys, normalize_device_id, short_id
from meshd.errors import (
    DecodeError,
    DeviceRevoked,
    InvalidEntry,
    InvalidInput,
    InvalidState,
    LockoutRefused,
    MeshError,
    NoMesh,
    NotFound,
    ProtocolError,
    RollbackRefused,
    TooManyAttempts,
    UnknownProposal,
)
from meshd.invite import Invite
from meshd.mesh.changes import rotate_device_key, rotate_vault
from meshd.mesh.log import MeshLog, create_mesh
from meshd.mesh.proposals import (
    LOCKED,
    PENDING,
    REJECTED,
    PendingProposal,
    ProposalBook,
    make_join_request,
    propose,
    read_note,
    require_active,
    short_code,
)
from meshd.mesh.records import (
    AUTH,
    ENTRY_KIND_OF_PROPOSAL,
    REVOKE,
    THRESHOLD,
    Proposal,
    Revocation,
)
from meshd.mesh.state import MeshState, changed_membership, entry_hash, read_entry
from meshd.mesh.vaults import proposal_id, recover_vault_seed
from meshd.replica.delegation import MALFORMED as MALFORMED_DELEGATION
from meshd.replica.delegation import VALID as VALID_DELEGATION
from meshd.replica.delegation import delegation_standing
from meshd.replica.head import HeadBody, verify_head
from meshd.replica.ingest import OP_EQUIVOCATION, Decision
from meshd.replica.ingest import Verdict as OpVerdict
from meshd.replica.op import decode_op
from meshd.replica.replica import Replica, ReplicaSettings
from meshd.replica.store import Store
from meshd.rotation import EnrolledKeys, enrolled
from meshd.rpc.codec import echo
from meshd.sync.engine import Outcome, Verdict
from meshd.sync.layout import (
    ApprovalName,
    HeadName,
    LogEntryName,
    ObjectName,
    ProposalRequestName,
    SegmentName,
    SnapshotName,
    content_hash,
    log_entry_name,
    segment_name,
    snapshot_name,
)

logger = logging.getLogger(__name__)

STORE_NAME = "store.sqlite3"
# A segment carries at most this many ops, so one object stays well under
# the engine's size limit and a reader fetches big histories in pieces.
MAX_OPS_PER_SEGMENT = 256

NO_MESH = "no_mesh"
JOINING = "joining"
MEMBER = "member"
REVOKED = "revoked"
# A threshold proof whose approvals are in: it is ready to fetch.
COMPLETE = "complete"

# Op refusals that follow from the mesh log (a revoked device writing on),
# not from tampering: counted, but not shown as storage problems.
_RULE_REFUSALS = frozenset({"past_cutoff", "inactive_author"})
CODE_PATTERN = re.compile(r"[0-9]{6}")
_NOT_FOR_THIS_DEVICE = frozenset({"decryption_failed", "not_a_recipient"})
# The evidence that another copy of this device writes under its id.
DEVICE_CLONED = "device_cloned"
# Storage holds an older head of this device, or one it did not sign, in
# place of the head it wrote.
HEAD_REPLACED = "head_replaced"

# Proposals whose answers this device publishes.
_ANSWERED_STATES = frozenset({PENDING, REJECTED, LOCKED})

# The fewest characters of a device id taken as its start (one group).
MIN_DEVICE_PREFIX = 4

_SETTING_STORAGE = "storage"
_SETTING_ACCEPTED_HEAD = "accepted_head"
_SETTING_REQUEST = "my_request"
_SETTING_SEGMENTS = "published_segments"

# Proposals and answers kept for the event feed until it takes them; older
# ones are dropped when nobody does (a device used without a daemon).
MAX_RECEIVED = 1000


@dataclass(frozen=True)
class ReceivedProposal:
    """A proposal that sync brought from another device."""

    id: str
    kind: str
    summary: str


@dataclass(frozen=True)
class ReceivedAnswer:
    """An approval or a rejection that sync brought from another device."""

    proposal_id: str
    device_id: str
    approved: bool


@dataclass(frozen=True)
class Segment(Record):
    """A batch of one device's signed ops, as published to storage."""

    TAG: ClassVar[str] = "segment"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 16 * 1024 * 1024
    ops: tuple[bytes, ...]


def now_seconds() -> float:
    return time.time()


def mesh_id_of(did: str) -> bytes:
    """The mesh id (genesis hash) a DID is derived from.

    Raises:
        InvalidInput: the text is not a did:human DID.
    """
    prefix = "did:human:"
    body = did[len(prefix) :].upper() if did.startswith(prefix) else ""
    try:
        mesh_id = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{did!r} is not a did:human DID") from exc
    if len(mesh_id) != 32:
        raise InvalidInput(f"{did!r} is not a did:human DID")
    return mesh_id


# A request with all its approvals, not yet made a mesh-log entry: only a
# device that stays in the mesh may write it.
AWAITING_FINALIZER = "approved"


class Device:
    """One device's mesh membership, proposals and replica over its store."""

    def __init__(
        self,
        home: Path,
        keys: DeviceKeys,
        clock: Callable[[], float] = now_seconds,
        settings: ReplicaSettings | None = None,
    ) -> None:
        self.home = home
        self.keys = keys
        self.clock = clock
        self.settings = settings or ReplicaSettings()
        self.store = Store.open(home / STORE_NAME)
        self.book = ProposalBook()
        self.log: MeshLog | None = None
        self.replica: Replica | None = None
        self.vault_seed: bytes | None = None
        # Peers whose head was read since their last new segment, and the
        # version it had then (None: the storage gives no versions); it is
        # read again when the listing shows another version.
        self._checked_heads: set[str] = set()
        self._head_versions: dict[str, str | None] = {}
        self._fetched_segments: set[str] = set()
        self._published_head: bytes | None = None
        self._offered_head: HeadBody | None = None
        self._entry_names_at: tuple[bytes, frozenset[str]] = (b"", frozenset())
        # The last op sequence of each device that storage lists a segment
        # for, so a head that claims more is seen to reference missing ops.
        self._listed_sequences: dict[str, int] = {}
        self._received: deque[ReceivedProposal | ReceivedAnswer] = deque(
            maxlen=MAX_RECEIVED
        )
        self._load()

    # -- Loading ---------------------------------------------------------------

    def _load(self) -> None:
        entries = [data for _, _, data in self.store.mesh_entries()]
        if not entries:
            return
        head = self.store.setting(_SETTING_ACCEPTED_HEAD)
        self.log = MeshLog.from_entries(
            entries, self.keys, bytes.fromhex(head) if head else None
        )
        # After a key rotation this device still signs as its enrollment id.
        self.keys = enrolled(self.keys, self.log.state)
        now_ms = self._now_ms()
        for _, data in self.store.proposals():
            self._load_proposal(data, now_ms)
        self._restore_wrong_codes()
        self._open_replica_if_member()

    def _load_proposal(self, data: bytes, now_ms: int) -> None:
        assert self.log is not None
        try:
            pending = self.book.add(self.log.state, Signed.decode(data))
        except MeshError as exc:
            logger.debug("Stored proposal no longer fits the mesh: %s", exc)
            return
        for _, approval in self.store.approvals(pending.id.hex()):
            try:
                self.book.receive(self.log.state, Signed.decode(approval), now_ms)
            except MeshError as exc:
                logger.debug("Stored approval skipped: %s", exc)
        self.book.settle(self.log.state)

    def _restore_wrong_codes(self) -> None:
        """Give the book back the wrong codes typed here before a restart."""
        known = {pending.id.hex() for pending in self.book.all()}
        for identifier, attempts in self.store.wrong_codes().items():
            if identifier in known:
                self.book.restore_wrong_codes(bytes.fromhex(identifier), attempts)

    def _open_replica_if_member(self) -> None:
        if self.replica is not None or self.log is None:
            return
        if self.log.member(self.keys.device_id) is None:
            return
        self.replica = Replica(
            self.store, self.keys, self.log, self.settings, self.vault_seed
        )

    def close(self) -> None:
        self.store.close()

    # -- Facts -----------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def device_id(self) -> str:
        return self.keys.device_id

    @property
    def storage_url(self) -> str | None:
        return self.store.setting(_SETTING_STORAGE)

    @property
    def mesh_id(self) -> bytes | None:
        return None if self.log is None else self.log.mesh_id

    @property
    def state_name(self) -> str:
        if self.log is None:
            return NO_MESH
        member = self.log.member(self.device_id)
        if member is None:
            return JOINING
        return MEMBER if member.active else REVOKED

    def require_log(self) -> MeshLog:
        """Raises:
        NoMesh: this device has no mesh yet.
        """
        if self.log is None:
            raise NoMesh()
        return self.log

    def require_member(self) -> tuple[MeshLog, Replica]:
        """Raises:
        NoMesh: no mesh, or not enrolled yet.
        DeviceRevoked: this device was revoked.
        """
        log = self.require_log()
        if self.replica is None:
            raise NoMesh(
                "This device is not enrolled yet: approve its request on another device"
            )
        require_active(log.state, self.device_id)
        return log, self.replica

    # -- Creating and joining --------------------------------------------------

    def create_mesh(self, label: str, storage: str, name: str, kind: str) -> MeshState:
        """Found a new mesh with this device as its only member.

        Raises:
            InvalidState: this device already belongs to a mesh.
        """
        if self.log is not None:
            raise InvalidState(
                "This device already belongs to a mesh: to start over, stop its"
                " daemon and move its home away"
            )
        if not label.strip():
            raise InvalidInput("The label must not be empty", field="label")
        log, genesis = create_mesh(label, self.keys, name, kind, self._now_ms())
        with self.store.transaction():
            self.store.set_setting(_SETTING_STORAGE, storage)
            self._store_entry(log, genesis)
        self.log = log
        self._open_replica_if_member()
        return log.state

    def invite(self) -> str:
        log = self.require_log()
        storage = self.storage_url or ""
        return Invite(log.state.did, storage, log.state.label or "").to_text()

    def start_join(self, invite: Invite, entries: Iterable[bytes]) -> None:
        """Adopt the mesh log fetched from the invite's storage.

        Raises:
            InvalidState: this device already belongs to a mesh.
            InvalidInput: the storage serves another mesh than the invite's.
        """
        log = self.joining_log(invite, entries)
        with self.store.transaction():
            self._adopt(invite, log)

    def joining_log(self, invite: Invite, entries: Iterable[bytes]) -> MeshLog:
        """The mesh log fetched from the invite's storage, checked but not
        kept: a join or recovery that is refused leaves this device as it was.

        Raises:
            InvalidState: this device already belongs to a mesh.
            InvalidInput: the storage serves another mesh than the invite's.
        """
        if self.log is not None and not self._may_ask_again(invite):
            raise InvalidState(self._belonging())
        signed = [Signed.decode(data) for data in entries]
        log = MeshLog.from_entries(signed, self.keys)
        if log.state.did != invite.did:
            raise InvalidInput(
                "The storage holds another mesh than the invite names",
                field="invite",
            )
        return log

    def _adopt(self, invite: Invite, log: MeshLog) -> None:
        """Keep the log of the mesh this device asks to join (in the caller's
        transaction); a request made before here is replaced."""
        identifier = self.store.setting(_SETTING_REQUEST)
        if self.log is not None and identifier is not None:
            try:
                self.book.cancel(bytes.fromhex(identifier), self.device_id)
            except MeshError as exc:
                logger.debug("Earlier request not cancelled: %s", exc)
        self.store.set_setting(_SETTING_STORAGE, invite.storage)
        for entry in log.entries:
            self._store_entry(log, entry)
        self.log = log

    def _belonging(self) -> str:
        """Why this device cannot ask another mesh, and how to start over."""
        assert self.log is not None
        state = self.log.state
        mesh = f"{state.label} ({state.did})" if state.label else state.did
        how = "stop its daemon and move its home away"
        if self.state_name == JOINING:
            return (
                f"This device is waiting to join the mesh {mesh}: to cancel that"
                f" and join another mesh instead, {how}"
            )
        if self.state_name == REVOKED:
            return f"This device was revoked from the mesh {mesh}: to start over, {how}"
        return f"This device already belongs to the mesh {mesh}: to start over, {how}"

    def _may_ask_again(self, invite: Invite) -> bool:
        """A device still joining may ask the same mesh again: its request may
        have expired, been locked by wrong codes on an approver (which this
        device cannot see) or been closed by a change of the mesh. The new
        request replaces the old one here; the old one expires elsewhere."""
        assert self.log is not None
        return self.state_name == JOINING and self.log.state.did == invite.did

    def lost_devices(
        self, replace: Iterable[str], log: MeshLog | None = None
    ) -> list[str]:
        """Check the devices a recovery replaces (in ``log``, by default this
        device's), before anything is stored.

        Raises:
            InvalidInput: a text names no single device (see
                :func:`resolve_device_id`).
            NotFound / DeviceRevoked: not an active device of the mesh.
            LockoutRefused: too few devices would remain to approve it.
        """
        log = log or self.require_log()
        found: list[str] = []
        for text in replace:
            device_id = resolve_device_id(text, log.state.devices)
            member = log.member(device_id)
            if member is None:
                raise NotFound(f"{short_id(device_id)} is not a device of this mesh")
            if not member.active:
                raise DeviceRevoked(f"{short_id(device_id)} is already revoked")
            if device_id not in found:
                found.append(device_id)
        _check_recovery_approvers(log.state, found)
        return found

    def request_enrollment(
        self,
        name: str,
        kind: str,
        replace: Mapping[str, int] | None = None,
        joining: tuple[Invite, MeshLog] | None = None,
    ) -> dict[str, Any]:
        """Make this device's join request, or its recovery request when
        ``replace`` maps lost device ids to their op cut-offs.

        ``joining`` is the invite and the log (see :meth:`joining_log`) of the
        mesh asked; they are kept only once the request is made.

        Raises:
            LockoutRefused / InvalidEntry: the mesh refuses such a change.
        """
        log = joining[1] if joining is not None else self.require_log()
        revocations = [
            Revocation(device_id, cutoff)
            for device_id, cutoff in sorted((replace or {}).items())
        ]
        signed = make_join_request(
            log.state, self.keys, name, kind, self._now_ms(), replace=revocations
        )
        with self.store.transaction():
            if joining is not None:
                self._adopt(*joining)
            pending = self.book.add(log.state, signed)
            self.store.put_proposal(pending.id.hex(), signed.encode())
            self.store.set_setting(_SETTING_REQUEST, pending.id.hex())
        return {
            "request_id": pending.id.hex(),
            "code": short_code(signed.body),
            "required_approvals": log.state.threshold,
            "kind": pending.proposal.kind,
        }

    def my_request(self) -> dict[str, Any] | None:
        """The state of this device's own join or recovery request."""
        pending = self._own_request()
        if pending is None:
            return None
        state = self.state_name
        return {
            "request_id": pending.id.hex(),
            "code": short_code(pending.signed.body),
            "approvals": len(pending.approvals),
            "rejections": len(pending.rejections),
            "required": pending.required,
            "state": "applied" if state == MEMBER else pending.status,
        }

    def _own_request(self) -> PendingProposal | None:
        """This device's own join or recovery request, expiry applied."""
        identifier = self.store.setting(_SETTING_REQUEST)
        if identifier is None or self.log is None:
            return None
        self.book.expire(self._now_ms())
        try:
            return self.book.get(bytes.fromhex(identifier))
        except UnknownProposal:
            return None

    def request_state(self) -> str | None:
        """How this device's own request stands (``pending``, ``expired``,
        ``cancelled``, ``locked``, ``rejected``, or :data:`AWAITING_FINALIZER`
        once it has its approvals), or None without one.

        The same string object while the state holds, so status can tell a
        change by identity.
        """
        pending = self._own_request()
        if pending is None:
            return None
        if pending.status == PENDING and 0 < pending.required <= len(pending.approvals):
            return AWAITING_FINALIZER
        return pending.status

    # -- Proposals -------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        log = self.require_log()
        found = []
        for pending in self.book.pending(self._now_ms()):
            # A threshold proof that has its approvals needs nobody any more
            # (`meshctl proof ID` fetches it); a request its device replaced
            # by asking again is not shown.
            if (
                pending.proposal.kind == AUTH
                and len(pending.approvals) >= log.state.threshold
            ) or self._newer_request(pending) is not None:
                continue
            summary = pending.summary(pending.required)
            summary["summary"] = self._describe(pending.proposal)
            summary["reason"] = self._reason(pending.proposal)
            threshold = self._threshold_after(pending.proposal)
            if threshold is not None:
                summary["threshold"] = threshold
            summary["code_required"] = pending.code_required
            if pending.proposal.revocations:
                summary["cutoffs"] = {
                    r.device_id: r.cutoff for r in pending.proposal.revocations
                }
            found.append(summary)
        return found

    def _describe(self, proposal: Proposal) -> str:
        """What approving changes, in words: the change itself, a threshold
        it sets on the way, and the proposer's reason."""
        text = self._describe_change(proposal)
        threshold = self._threshold_after(proposal)
        if threshold is not None and proposal.kind != THRESHOLD:
            text += f" and set the threshold to {threshold}"

        # An auth proposal's reason is already its whole description.
        reason = self._reason(proposal)
        if reason and proposal.kind != AUTH:
            text += f"; reason: {reason}"
        return text

    def _reason(self, proposal: Proposal) -> str:
        """The reason the proposer gave, when this device may read it."""
        note = read_note(proposal, self.keys, self.device_id)
        return note.reason if note is not None else ""

    def _threshold_after(self, proposal: Proposal) -> int | None:
        """The threshold a membership change leaves, when it differs from
        the one in force (None when it keeps it, or is no such change)."""
        state = self.require_log().state
        if proposal.kind not in ENTRY_KIND_OF_PROPOSAL:
            return None
        try:
            after = changed_membership(state, proposal, state.position + 1)
        except MeshError:
            return proposal.threshold or None
        return after.threshold if after.threshold != state.threshold else None

    def _describe_change(self, proposal: Proposal) -> str:
        log = self.require_log()
        cutoffs = ", ".join(str(r.cutoff) for r in proposal.revocations)
        kept = f" (keeps its ops up to {cutoffs})" if cutoffs else ""
        if proposal.new_device is not None:
            new = short_id(proposal.new_device.device_id)
            lost = ", ".join(short_id(r.device_id) for r in proposal.revocations)
            kind = proposal.new_device.kind
            if lost:
                return f"recover on new {kind} {new}, replacing {lost}{kept}"
            return f"enroll new {kind} {new}"
        if proposal.kind == REVOKE:
            names = [
                f"{log.state.device_name(r.device_id) or ''} {short_id(r.device_id)}"
                for r in proposal.revocations
            ]
            return "revoke " + ", ".join(name.strip() for name in names) + kept
        if proposal.kind == THRESHOLD:
            return f"set threshold to {proposal.threshold}"
        if proposal.kind == AUTH:
            # The person approving must see what the proof will say.
            note = read_note(proposal, self.keys, self.device_id)
            return note.reason if note is not None and note.reason else "authenticate"
        return str(proposal.kind)

    def _resolve_id(self, text: str) -> bytes:
        """A proposal id from its full hex or a unique prefix."""
        cleaned = text.strip().lower()
        matches = [p.id for p in self.book.all() if p.id.hex().startswith(cleaned)]
        if not cleaned or len(matches) != 1:
            shown = echo(text)
            raise UnknownProposal(
                f"No single proposal matches {shown!r}", proposal=shown
            )
        return matches[0]

    def approve(self, text: str, code: str | None) -> dict[str, Any]:
        """Raises:
        InvalidInput: an enrollment or recovery without a 6-digit code (a
            missing or malformed code never costs one of the attempts).
        InvalidState: this device already rejected it; its answer stands.
        """
        log, _ = self.require_member()
        identifier = self._resolve_id(text)
        pending = self.book.get(identifier)

        # Checked before the code, so typing the newer request's code on an
        # older one costs no attempt.
        newer = self._newer_request(pending)
        if newer is not None:
            raise InvalidState(
                "The new device asked again: approve its newest request "
                f"{short_id(newer.id.hex())} with the code it shows now",
                newer=newer.id.hex(),
            )
        if pending.code_required and not CODE_PATTERN.fullmatch(code or ""):
            raise InvalidInput(
                "Type the 6-digit code shown on the new device (--code)",
                field="code",
            )
        attempts = pending.wrong_codes
        try:
            signed = self.book.approve(
                identifier, log.state, self.keys, self._now_ms(), code
            )
        except TooManyAttempts:
            self._reject_locked(identifier)
            raise
        finally:
            # Stored before the answer goes out, so that restarting the
            # daemon gives no new guesses at the code.
            if pending.wrong_codes != attempts:
                self.store.set_wrong_codes(identifier.hex(), pending.wrong_codes)
        self._store_approval(identifier, signed)
        self.try_finalize()
        return self._proposal_result(identifier)

    def _newer_request(self, pending: PendingProposal) -> PendingProposal | None:
        """The newest open request of the same new device, when it is not
        ``pending`` itself: a device that runs ``join`` again replaces its
        request, and only the newest one's code is on its screen."""
        new = pending.proposal.new_device
        if new is None:
            return None
        same_device = [
            other
            for other in self.book.pending(self._now_ms())
            if other.proposal.new_device is not None
            and other.proposal.new_device.device_id == new.device_id
        ]
        newest = max(
            same_device,
            key=lambda other: (other.proposal.created_at, other.id),
            default=pending,
        )
        return None if newest is pending else newest

    def _reject_locked(self, identifier: bytes) -> None:
        """Answer no to a request this device locked after wrong codes.

        The lock is this device's own; its published rejection tells the
        other devices and the new device that it will not approve, so they
        count it (and see the request rejected once it cannot pass).
        """
        log = self.require_log()
        pending = self.book.get(identifier)
        if self.device_id in pending.rejections:
            return
        signed = self.book.reject(identifier, log.state, self.keys, self._now_ms())
        self._store_approval(identifier, signed)

    def reject(self, text: str) -> dict[str, Any]:
        """Raises:
        InvalidState: this device already answered; an answer is published
            once, under this device's name, and never replaced.
        """
        log, _ = self.require_member()
        identifier = self._resolve_id(text)
        pending = self.book.get(identifier)
        if self.device_id in pending.approvals or self.device_id in pending.rejections:
            raise InvalidState(
                "This device already answered this proposal; its answer stands",
                proposal=identifier.hex(),
            )
        signed = self.book.reject(identifier, log.state, self.keys, self._now_ms())
        self._store_approval(identifier, signed)
        return {"id": identifier.hex(), "state": self.book.get(identifier).status}

    def propose_revoke(
        self, device: str, reason: str, threshold: int = 0
    ) -> dict[str, Any]:
        """Propose revoking a device, approved by this device.

        ``threshold`` (0 keeps the current one) sets the threshold in the
        same change: going down to one device needs threshold 1 there.

        Raises:
            NotFound: no such device.
            InvalidInput: a negative threshold, or ``device`` names no single
                device (see :func:`resolve_device_id`).
            LockoutRefused: the change would lock the person out.
        """
        log, replica = self.require_member()
        device_id = resolve_device_id(device, log.state.devices)
        if log.member(device_id) is None:
            raise NotFound(f"{short_id(device_id)} is not a device of this mesh")
        if threshold < 0:
            raise InvalidInput("A threshold is at least 1", field="threshold")
        cutoff = replica.version_vector().get(device_id, 0)
        result = self._propose_and_approve(
            REVOKE,
            revocations=[Revocation(device_id, cutoff)],
            reason=reason,
            threshold=threshold,
        )

        # The person sees which of the device's ops stay: those up to here.
        result["device_id"] = device_id
        result["cutoff"] = cutoff
        return result

    def propose_threshold(self, threshold: int) -> dict[str, Any]:
        log, _ = self.require_member()
        if threshold < 1:
            raise InvalidInput("A threshold is at least 1", field="threshold")
        if threshold == log.state.threshold:
            raise InvalidInput(
                f"The threshold is already {threshold}", field="threshold"
            )
        return self._propose_and_approve(THRESHOLD, threshold=threshold)

    def _propose_and_approve(self, kind: str, **details: Any) -> dict[str, Any]:
        log, _ = self.require_member()
        now_ms = self._now_ms()
        signed = propose(log.state, self.keys, kind, now_ms, **details)
        pending = self.book.add(log.state, signed)
        self.store.put_proposal(pending.id.hex(), signed.encode())
        approval = self.book.approve(pending.id, log.state, self.keys, now_ms)
        self._store_approval(pending.id, approval)
        self.try_finalize()
        result = self._proposal_result(pending.id)
        result["proposal_id"] = result["id"]
        return result

    def _proposal_result(self, identifier: bytes) -> dict[str, Any]:
        """How a proposal stands: ``required`` is the threshold it was made
        under, and a threshold proof with its approvals in is ``complete``
        (it never becomes an entry; ``meshctl proof`` fetches it)."""
        pending = self.book.get(identifier)
        state = pending.status
        if pending.proposal.kind == AUTH and state == PENDING:
            active = set(self.require_log().state.active_ids())
            if len(active & set(pending.approvals)) >= pending.required:
                state = COMPLETE
        return {
            "id": identifier.hex(),
            "approvals": len(pending.approvals),
            "required": pending.required,
            "state": state,
        }

    def _store_approval(self, identifier: bytes, signed: Signed) -> None:
        approver = signed.signatures[0].signer
        key = f"{identifier.hex()}/{approver}"
        self.store.put_approval(key, identifier.hex(), signed.encode())

    def try_finalize(self) -> list[str]:
        """Finalize every ready proposal this device may finalize."""
        if self.log is None or self.state_name != MEMBER:
            return []
        done = []
        for pending in self.book.pending(self._now_ms()):
            # An auth proposal never becomes an entry: its approvals are a proof.
            if pending.proposal.kind == AUTH or not self.book.ready(
                pending.id, self.log.state
            ):
                continue
            try:
                entry = self.book.finalize(
                    pending.id, self.log.state, self.keys, self._now_ms()
                )
            except MeshError as exc:
                logger.info(
                    "Proposal %s not finalized here: %s", pending.id.hex()[:12], exc
                )
                continue
            self.accept_entry(entry)
            done.append(pending.id.hex())
        return done

    # -- Accepting mesh-log entries --------------------------------------------

    def accept_entry(self, signed: Signed) -> None:
        """Apply one mesh-log entry and store it with what it changes.

        Raises:
            RollbackRefused / InvalidEntry / BadSignature / DecodeError.
        """
        log = self.require_log()
        before = log.head
        log.receive(signed)
        if log.head == before:
            return
        with self.store.transaction():
            for entry in log.entries:
                self._store_entry(log, entry)
        self._after_membership_change()

    def _store_entry(self, log: MeshLog, signed: Signed) -> None:
        position = read_entry(signed).position
        self.store.put_mesh_entry(position, entry_hash(signed), signed.encode())
        self.store.set_setting(_SETTING_ACCEPTED_HEAD, log.head.hex())

    def _after_membership_change(self) -> None:
        assert self.log is not None
        applied = [p.id for p in self.book.all() if self._applied(p.id, self.log)]
        self.book.settle(self.log.state, applied)
        self._open_replica_if_member()
        if self.replica is not None:
            self.replica.membership_changed(self.clock())

    @staticmethod
    def _applied(identifier: bytes, log: MeshLog) -> bool:
        for entry in log.entries[1:]:
            body = read_entry(entry)
            if (
                body.proposal
                and proposal_id(Signed.decode(body.proposal).body) == identifier
            ):
                return True
        return False

    # -- Recovery --------------------------------------------------------------

    def try_rebuild_vault(self) -> bool:
        """On a recovering device: rebuild the vault seed from the shares."""
        identifier = self.store.setting(_SETTING_REQUEST)
        if self.vault_seed is not None or identifier is None or self.log is None:
            return False
        pending = self.book.get(bytes.fromhex(identifier))
        if len(pending.approvals) < self.log.state.threshold:
            return False
        state = self.log.state
        self.vault_seed = recover_vault_seed(
            state.vault,
            state.active_members(),
            pending.signed,
            pending.approvals.values(),
            self.keys,
        )
        return True

    # -- The sync party --------------------------------------------------------

    def outgoing(self) -> Iterable[tuple[ObjectName, bytes]]:
        """Everything this device publishes; the engine skips what is listed."""
        if self.log is None:
            return []
        found: list[tuple[ObjectName, bytes]] = []
        for index, entry in enumerate(self.log.entries):
            data = entry.encode()
            found.append((log_entry_name(index, data), data))
        for pending in self.book.all():
            # The answers of a rejected or locked request are published too:
            # they are how the other devices learn that it cannot pass.
            if pending.status not in _ANSWERED_STATES:
                continue
            found.append(
                (ProposalRequestName(pending.id.hex()), pending.signed.encode())
            )
            for device, signed in [
                *pending.approvals.items(),
                *pending.rejections.items(),
            ]:
                found.append((ApprovalName(pending.id.hex(), device), signed.encode()))
        found.extend(self._outgoing_replica())
        return found

    def _outgoing_replica(self) -> list[tuple[ObjectName, bytes]]:
        if self.replica is None or self.state_name != MEMBER:
            return []
        found: list[tuple[ObjectName, bytes]] = []
        for first, last, data in self._my_segments():
            found.append((segment_name(self.device_id, first, last, data), data))
        snapshot = self.replica.newest_snapshot()
        if snapshot is not None:
            generation = self.require_log().state.vault.number
            found.append((snapshot_name(generation, snapshot), snapshot))
        head = self.replica.head(self.clock())
        vector = tuple(sorted(self.replica.version_vector().items()))
        marker = repr(vector).encode() + self.require_log().head
        if marker != self._published_head:
            self._published_head = marker
            self._offered_head = HeadBody.decode(Signed.decode(head).body)
            found.append((HeadName(self.device_id), head))
        return found

    def _my_segments(self) -> list[tuple[int, int, bytes]]:
        """This device's ops cut into segments. Each segment is made once and
        kept, so it always has the same bytes and so the same name."""
        assert self.replica is not None
        bounds = _parse_bounds(self.store.setting(_SETTING_SEGMENTS))
        covered = bounds[-1][1] if bounds else 0
        vector = self.replica.version_vector()
        if vector.get(self.device_id, 0) > covered:
            # Only this device's ops after the last segment: everyone else's
            # sequence is set to what this replica already holds.
            fresh = self.replica.ops_since({**vector, self.device_id: covered})
            with self.store.transaction():
                for start in range(0, len(fresh), MAX_OPS_PER_SEGMENT):
                    chunk = fresh[start : start + MAX_OPS_PER_SEGMENT]
                    first = covered + start + 1
                    last = first + len(chunk) - 1
                    self.store.put_meta(
                        f"segment:{first}", Segment(tuple(chunk)).encode()
                    )
                    bounds.append((first, last))
                self.store.set_setting(
                    _SETTING_SEGMENTS, ",".join(f"{a}-{b}" for a, b in bounds)
                )
        found = []
        for first, last in bounds:
            data = self.store.meta(f"segment:{first}")
            if data is not None:
                found.append((first, last, data))
        return found

    def _entry_names(self) -> frozenset[str]:
        """Storage names of the accepted entries, recomputed when the head moves
        (storage names hash the whole signed entry, not only its body)."""
        assert self.log is not None
        head, names = self._entry_names_at
        if head != self.log.head:
            names = frozenset(
                log_entry_name(index, entry.encode()).path
                for index, entry in enumerate(self.log.entries)
            )
            self._entry_names_at = (self.log.head, names)
        return names

    def wants(self, name: ObjectName) -> bool:
        if self.log is None:
            return False
        match name:
            case LogEntryName():
                return name.path not in self._entry_names()
            case ProposalRequestName(proposal_id=identifier):
                # Stale requests stay in storage: read each one once.
                if name.path in self._fetched_segments:
                    return False
                return not any(p.id.hex() == identifier for p in self.book.all())
            case ApprovalName(proposal_id=identifier, device_id=device):
                return self._wants_approval(identifier, device)
            case SegmentName():
                return self._wants_segment(name)
            case HeadName(device_id=device, version=version):
                # This device's own head is watched by the sync engine, which
                # wrote it; a peer's is read again when its version changes.
                if device == self.device_id:
                    return False
                if device not in self._checked_heads:
                    return True
                read_at = self._head_versions.get(device)
                return version is not None and version != read_at
            case SnapshotName():
                return (
                    self.replica is not None and name.path not in self._fetched_segments
                )
        return False

    def _wants_approval(self, identifier: str, device: str) -> bool:
        for pending in self.book.all():
            if pending.id.hex() == identifier:
                return (
                    device not in pending.approvals and device not in pending.rejections
                )
        return False

    def _wants_segment(self, name: SegmentName) -> bool:
        listed = self._listed_sequences.get(name.device_id, 0)
        self._listed_sequences[name.device_id] = max(listed, name.last_seq)
        if self.replica is None or name.path in self._fetched_segments:
            return False

        # Ops past what the replica holds are new: a peer's, or this device's
        # own, written before its home was restored from an older copy.
        if name.last_seq > self.replica.version_vector().get(name.device_id, 0):
            return True

        # A range already held is fetched only when its bytes differ from the
        # ops held for it: other ops at taken sequences, the evidence of an
        # equivocation or of a second copy of a device.
        if self._holds_segment(name):
            self._fetched_segments.add(name.path)
            return False
        return True

    def _holds_segment(self, name: SegmentName) -> bool:
        """Whether the ops held for the segment's range are exactly its ops.

        One range read of the store per listed segment and daemon start.
        """
        ops = self.store.ops_between(name.device_id, name.first_seq, name.last_seq)
        if not ops:
            # TODO: a range covered by a loaded snapshot has no ops here to
            # compare with, so an equivocation hidden behind a snapshot is
            # not shown on a device that joined from that snapshot.
            return True
        data = Segment(tuple(ops)).encode()
        return segment_name(name.device_id, name.first_seq, name.last_seq, data) == (
            name
        )

    def receive(self, name: ObjectName, data: bytes) -> Verdict:
        match name:
            case LogEntryName():
                return self._receive_entry(data)
            case ProposalRequestName():
                self._fetched_segments.add(name.path)
                return self._receive_proposal(data)
            case ApprovalName():
                return self._receive_approval(name, data)
            case SegmentName():
                return self._receive_segment(name, data)
            case HeadName():
                return self._receive_head(name, data)
            case SnapshotName():
                return self._receive_snapshot(name, data)
        return Verdict(Outcome.REJECTED, "unknown_object")

    def _receive_entry(self, data: bytes) -> Verdict:
        before = self.require_log().head
        try:
            self.accept_entry(Signed.decode(data))
        except RollbackRefused as exc:
            # The losing side of a fork stays in storage: the fork rules
            # decided it, nobody tampered with it.
            return Verdict(Outcome.REJECTED, exc.reason, "rule" not in exc.details)
        if self.require_log().head == before:
            return Verdict(Outcome.HELD, "waiting_for_predecessor")
        return Verdict(Outcome.ACCEPTED)

    def _receive_proposal(self, data: bytes) -> Verdict:
        log = self.require_log()
        signed = Signed.decode(data)
        try:
            pending = self.book.add(log.state, signed)
        except InvalidEntry as exc:
            # Proposals of earlier heads stay in storage after they were
            # applied or dropped: history, not tampering.
            if exc.details.get("problem") == "stale_proposal":
                return Verdict(Outcome.DUPLICATE)
            raise
        self.store.put_proposal(pending.id.hex(), data)
        self._received.append(
            ReceivedProposal(
                pending.id.hex(),
                pending.proposal.kind,
                self._describe(pending.proposal),
            )
        )
        return Verdict(Outcome.ACCEPTED)

    def _receive_approval(self, name: ApprovalName, data: bytes) -> Verdict:
        log = self.require_log()
        signed = Signed.decode(data)
        if signed.signatures and signed.signatures[0].signer != name.device_id:
            return Verdict(Outcome.REJECTED, "misplaced_approval")
        pending = self.book.receive(log.state, signed, self._now_ms())

        # Keep the answer the book counts: an approval after a rejection by
        # the same device must not replace the rejection in the store.
        held = pending.rejections.get(name.device_id)
        if held is not None and held is not signed:
            return Verdict(Outcome.REJECTED, "answer_changed")
        self._store_approval(pending.id, signed)
        if pending.approvals.get(name.device_id) is signed or held is signed:
            self._received.append(
                ReceivedAnswer(pending.id.hex(), name.device_id, held is None)
            )
        return Verdict(Outcome.ACCEPTED)

    def _receive_segment(self, name: SegmentName, data: bytes) -> Verdict:
        assert self.replica is not None
        self._fetched_segments.add(name.path)
        self._checked_heads.discard(name.device_id)
        segment = Segment.decode(data)
        if not _segment_fits_name(segment, name):
            return Verdict(Outcome.REJECTED, "misplaced_segment")
        decisions = self.replica.ingest_many(segment.ops, self.clock())
        rejected = [d for d in decisions if d.verdict is OpVerdict.REJECTED]
        if any(d.reason == OP_EQUIVOCATION for d in rejected):
            return self._equivocation(name)
        if name.device_id == self.device_id:
            self._adopted(name, decisions)
        if rejected:
            reason = rejected[0].reason
            return Verdict(Outcome.REJECTED, reason, reason not in _RULE_REFUSALS)
        if any(d.verdict is OpVerdict.HELD for d in decisions):
            return Verdict(Outcome.HELD, "ops_held")
        return Verdict(Outcome.ACCEPTED)

    def _equivocation(self, name: SegmentName) -> Verdict:
        """Evidence for status: a segment with other ops at held sequences.

        Under this device's own id it means another copy of this device (its
        home copied, or restored while the original runs) signs with its keys.
        """
        if name.device_id == self.device_id:
            # TODO: the copies keep writing; each next op of either copy may
            # take a sequence the other copy takes too, and then the other
            # devices keep only one of the two writes. Revoking one copy
            # ends it.
            logger.warning(
                "Device %s: another copy of this device is writing: %s holds"
                " ops under its id that it did not write",
                short_id(self.device_id),
                name.path,
            )
            return Verdict(Outcome.REJECTED, DEVICE_CLONED)
        logger.warning(
            "Device %s signed two different ops at one sequence: %s refused,"
            " the ops accepted first are kept",
            short_id(name.device_id),
            name.path,
        )
        return Verdict(Outcome.REJECTED, OP_EQUIVOCATION)

    def _adopted(self, name: SegmentName, decisions: list[Decision]) -> None:
        """Say when this device took back ops of its own from storage."""
        adopted = sum(d.verdict is OpVerdict.ACCEPTED for d in decisions)
        if adopted:
            logger.warning(
                "Device %s: took %s ops of its own from %s that its store lacked"
                " (a home restored from an older copy, or another copy running)",
                short_id(self.device_id),
                adopted,
                name.path,
            )

    def _receive_head(self, name: HeadName, data: bytes) -> Verdict:
        """Check a peer's head for freshness before keeping it.

        Segments and mesh-log entries are pulled before heads in a round, so
        by now this device holds everything an honest head refers to.
        """
        if name.device_id == self.device_id:
            return self._receive_own_head(data)
        self._checked_heads.add(name.device_id)
        self._head_versions[name.device_id] = name.version
        log = self.require_log()
        head = verify_head(data, log)
        if head.device != name.device_id:
            return Verdict(Outcome.REJECTED, "misplaced_head")

        # A replayed older head: storage rolls the peer back.
        stored = self.store.heads().get(name.device_id)
        if stored is not None:
            previous = HeadBody.decode(Signed.decode(stored).body)
            if (head.sequence, head.wall_ms) < (previous.sequence, previous.wall_ms):
                return Verdict(Outcome.REJECTED, "head_went_backwards")

        # The peer has seen mesh-log entries that storage does not show here:
        # withheld entries (a revocation, one side of a fork).
        if log.position_of(head.mesh_head) is None:
            return Verdict(Outcome.REJECTED, "mesh_log_withheld")

        # The peer wrote ops that no listed segment holds.
        known = self._known_sequence(name.device_id)
        if head.sequence > known:
            return Verdict(Outcome.REJECTED, "segment_missing")
        self.store.put_head(name.device_id, data)
        return Verdict(Outcome.ACCEPTED)

    def _receive_own_head(self, data: bytes) -> Verdict:
        """Judge what storage holds under this device's head instead of the
        head it wrote: the sync engine puts the written one back when this
        refuses it.

        An older head of this device, or one it did not sign, is evidence
        that storage replaced it. A newer one signed with its keys is not:
        another copy of this device wrote it (shown by its ops, as
        ``device_cloned``).
        """
        try:
            head = verify_head(data, self.require_log())
        except MeshError:
            return Verdict(Outcome.REJECTED, HEAD_REPLACED)
        offered = self._offered_head
        if head.device != self.device_id or offered is None:
            return Verdict(Outcome.REJECTED, HEAD_REPLACED)
        if (head.sequence, head.wall_ms) < (offered.sequence, offered.wall_ms):
            return Verdict(Outcome.REJECTED, HEAD_REPLACED)
        return Verdict(Outcome.DUPLICATE)

    def _known_sequence(self, device: str) -> int:
        listed = self._listed_sequences.get(device, 0)
        if self.replica is None:
            return listed
        return max(listed, self.replica.version_vector().get(device, 0))

    def _receive_snapshot(self, name: SnapshotName, data: bytes) -> Verdict:
        assert self.replica is not None
        self._fetched_segments.add(name.path)
        decision = self.replica.load_snapshot(data, self.clock())
        if decision.verdict is OpVerdict.REJECTED:
            # A snapshot sealed before this device joined or rotated its keys
            # is not for it; later ops and snapshots are.
            sealed_to_others = decision.reason in _NOT_FOR_THIS_DEVICE
            return Verdict(Outcome.REJECTED, decision.reason, not sealed_to_others)
        return Verdict(Outcome.ACCEPTED)

    def after_round(self) -> None:
        if self.state_name == JOINING:
            try:
                self.try_rebuild_vault()
            except MeshError as exc:
                logger.warning("Vault not rebuilt yet: %s", exc)
        self.try_finalize()
        if self.replica is not None:
            self.replica.retry_held(self.clock())

    def take_received(self) -> list[ReceivedProposal | ReceivedAnswer]:
        """The proposals and answers that sync brought in since the last call,
        in the order they came."""
        found = list(self._received)
        self._received.clear()
        return found

    # -- Key rotation --------------------------------------------------------------

    def prepare_rotation(self, new_keys: DeviceKeys) -> Signed:
        """The entry that rotates this device to ``new_keys``, not yet applied.

        Raises:
            NoMesh / DeviceRevoked: this device is not an active member.
        """
        log, _ = self.require_member()
        return rotate_device_key(log.state, self.keys, new_keys, self._now_ms())

    def complete_rotation(self, entry: Signed, new_keys: DeviceKeys) -> None:
        """Apply a rotation made by :meth:`prepare_rotation` and use the new keys.

        The device keeps its enrollment id; a fresh vault generation follows,
        because the mesh directory is still sealed to the old encryption key.

        Raises:
            InvalidEntry / RollbackRefused: the log moved on since it was made.
        """
        log = self.require_log()
        keys = EnrolledKeys(new_keys, self.device_id)
        self.accept_entry(entry)
        log.use_reader(keys)
        self.keys = keys
        self.replica = Replica(self.store, keys, log, self.settings, self.vault_seed)
        self.accept_entry(rotate_vault(log.state, keys, self._now_ms()))
        logger.info("Device %s now signs with its new keys", short_id(self.device_id))

    # -- Authentication proofs -------------------------------------------------------

    def prove(self, challenge: str, audience: str, threshold: bool) -> dict[str, Any]:
        """A proof by this device, or (``threshold``) an auth proposal whose
        approvals make a proof of the mesh; see :mod:`meshd.auth`.

        Raises:
            InvalidInput: an empty or oversized challenge.
            NoMesh / DeviceRevoked: this device is not an active member.
        """
        log, _ = self.require_member()
        state, now_ms = log.state, self._now_ms()
        if not threshold:
            statement = make_statement(state, challenge, audience, now_ms, 1)
            return device_proof(statement, self.keys)
        data = make_statement(
            state, challenge, audience, now_ms, state.threshold
        ).encode()
        what = f"prove identity to {audience or 'anyone'} for challenge {challenge}"
        result = self._propose_and_approve(
            AUTH, challenge=statement_digest(data), reason=what
        )
        self.store.put_meta(f"auth:{result['id']}", data)
        return self.auth_proof(result["id"])

    def auth_proof(self, text: str) -> dict[str, Any]:
        """How far a threshold proof is; with ``proof`` once enough approved.

        Raises:
            UnknownProposal: no threshold proof of this device has that id.
        """
        log = self.require_log()
        identifier = self._resolve_id(text)
        pending = self.book.get(identifier)
        data = self.store.meta(f"auth:{identifier.hex()}")
        if pending.proposal.kind != AUTH or data is None:
            raise UnknownProposal("No proof asked on this device has that id")
        active = set(log.state.active_ids())
        approvals = [s for d, s in sorted(pending.approvals.items()) if d in active]
        required = AuthStatement.decode(data).threshold
        result: dict[str, Any] = {
            "proposal_id": identifier.hex(),
            "approvals": len(approvals),
            "required": required,
            "state": COMPLETE if len(approvals) >= required else pending.status,
        }
        if len(approvals) >= required:
            result["proof"] = threshold_proof(data, pending.signed.body, approvals)
        return result

    # -- Delegations -----------------------------------------------------------------

    def issue_delegation(
        self, agent_key: bytes, capabilities: list[str], expires_at: float
    ) -> dict[str, Any]:
        """Sign a delegation for an agent key and file it in the passport.

        Raises:
            InvalidInput: bad key, capabilities or expiry.
            NoMesh / DeviceRevoked: this device is not an active member.
        """
        _, replica = self.require_member()
        now = self.clock()
        delegation = replica.issue_delegation(agent_key, capabilities, expires_at, now)
        return {**delegation.to_json(), "valid": True, "reason": VALID_DELEGATION}

    def delegations(self) -> list[dict[str, Any]]:
        """Every delegation in the passport, each marked valid now or not,
        with the ``reason`` it does not hold (``ok`` when it does)."""
        _, replica = self.require_member()
        now = int(self.clock())
        entries = replica.passport().get("delegations", {})
        if not isinstance(entries, dict):
            return []
        found = []
        for delegation_id, value in sorted(entries.items()):
            reason = delegation_standing(delegation_id, value, replica.view, now)

            # A malformed entry is shown by the name it is filed under only:
            # its own fields, if any, are not a delegation's.
            shown = {"id": delegation_id} if reason == MALFORMED_DELEGATION else value
            found.append(
                {**shown, "valid": reason == VALID_DELEGATION, "reason": reason}
            )
        return found


def resolve_device_id(text: str, known: Iterable[str]) -> str:
    """The device id that ``text`` names: a whole id (known or not), or the
    unique start of a known one, grouped or not, in any case.

    A start needs :data:`MIN_DEVICE_PREFIX` characters, so that a slip of one
    or two letters never picks a device.

    Raises:
        InvalidInput: neither a device id nor the start of exactly one.
    """
    try:
        return normalize_device_id(text)
    except InvalidInput:
        pass

    # Compared without dashes, so that a start cut inside a group matches too.
    typed = "".join(ch for ch in text if ch not in "- ").upper()
    if len(typed) < MIN_DEVICE_PREFIX or not typed.isascii():
        raise InvalidInput(f"{text!r} is not a device id", field="device_id")
    found = sorted(d for d in known if d.replace("-", "").startswith(typed))
    if not found:
        raise InvalidInput(
            f"{text!r} is not a device id, nor the start of one in this mesh",
            field="device_id",
        )
    if len(found) > 1:
        shown = ", ".join(short_id(device) for device in found)
        raise InvalidInput(
            f"{text!r} starts several device ids ({shown}): type more of it",
            field="device_id",
        )
    return found[0]


def _check_recovery_approvers(state: MeshState, lost: list[str]) -> None:
    """A recovery is approved by devices of the mesh, and the lost devices it
    replaces cannot approve: at least the threshold must remain.

    Raises:
        LockoutRefused: fewer active devices than the threshold would remain.
    """
    remaining = len(set(state.active_ids()) - set(lost))
    if lost and remaining < state.threshold:
        raise LockoutRefused(
            f"Recovery must be approved by {state.threshold} of the devices it"
            f" does not replace (the threshold): replacing {len(lost)} of the"
            f" {len(state.active_ids())} active devices leaves {remaining}",
            rule="recovery_approvers",
            threshold=state.threshold,
            remaining=remaining,
        )


def joinable_log_entries(
    fetched: Sequence[tuple[LogEntryName, bytes | None]],
) -> list[bytes]:
    """The mesh-log entries a joining or recovering device can build on,
    position first: those whose bytes match the hash in their name.

    An object that does not match its name is junk or damage, and members
    leave it aside too; it only stops a join when the chain has no valid
    entry at its position below the newest valid one (or no genesis), since
    the device would then ask on a log members do not have.

    Args:
        fetched: each listed entry's name and bytes (None: unreadable).

    Raises:
        ProtocolError: a position the chain needs holds only damaged files.
    """
    valid = {
        name: data
        for name, data in fetched
        if data is not None and content_hash(data) == name.hash
    }
    damaged = sorted(
        (name for name, _ in fetched if name not in valid),
        key=lambda name: name.position,
    )
    reached = {name.position for name in valid}
    newest = max(reached, default=0)

    # Damage past the newest valid entry, or beside a valid one, is left aside.
    # TODO: a damaged newest entry looks like junk at the next position, so
    # the device then asks on the log before it; members close such a request
    # and the person must delete the damaged file and ask again. Reading the
    # signed heads first would tell the newest position members hold.
    for name in damaged:
        if name.position in reached or name.position > newest:
            logger.warning("Mesh log entry %s left aside: damaged", name.path)
            continue
        raise ProtocolError(
            f"The mesh log in storage lacks entry {name.position}: its file "
            f"{name.path} is damaged: delete the damaged file, and members put "
            "it back on their next sync; then ask again",
            object=name.path,
        )
    if not valid:
        raise ProtocolError("The invite's storage holds no readable mesh log yet")
    return [valid[name] for name in sorted(valid, key=lambda name: name.position)]


def _segment_fits_name(segment: Segment, name: SegmentName) -> bool:
    """Whether a segment holds exactly the ops its name says: those of its
    device, at sequences first..last, in order.

    Signatures are checked op by op by the replica; this catches a segment
    moved under another device or another range.

    Raises:
        DecodeError: an op is malformed.
    """
    bodies = [decode_op(op).body for op in segment.ops]
    places = [(body.author, body.sequence) for body in bodies]
    expected = range(name.first_seq, name.last_seq + 1)
    return places == [(name.device_id, sequence) for sequence in expected]


def _parse_bounds(text: str | None) -> list[tuple[int, int]]:
    if not text:
        return []
    bounds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            bounds.append((int(first), int(last)))
        except ValueError as exc:
            raise DecodeError("Stored segment bounds are damaged") from exc
    return bounds
