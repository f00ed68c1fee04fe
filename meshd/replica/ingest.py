"""Deciding what to do with an op from another device (sans-IO).

Every foreign op gets exactly one :class:`Decision`:

- ``accepted``: checked, decrypted, ready to merge.
- ``duplicate``: already known (same op id, or a sequence a snapshot covers);
  ingesting it again changes nothing.
- ``held``: not wrong, but not usable yet; kept and retried later. Reasons:
  ``unknown_head`` (made under a mesh-log entry this device lacks),
  ``clock_ahead`` (timestamp beyond the skew bound, so its author's clock is
  ahead; trusting it would let that device win every write),
  ``missing_dependencies`` (an op it was made on, its author's previous op
  included, has not arrived: ops are merged in causal order so that no op is
  lost and every replica merges the same way), ``not_a_recipient`` (the
  payload key was not wrapped to this device, e.g. it joined later; a
  snapshot that covers the op makes it a duplicate).
- ``rejected``: breaks the rules and is dropped. Reasons: ``malformed``,
  ``wrong_mesh``, ``not_a_member``, ``inactive_author``, ``bad_signature``,
  ``past_cutoff``, ``op_equivocation`` (another op of the same author already
  holds that sequence: the author signed two histories, or two copies of one
  device are writing; the op accepted first stays, so every replica keeps
  what it has and the refusal is evidence to show), ``decryption_failed``,
  ``invalid_payload``.

The checks run cheapest first and never decrypt an op that will be held.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from meshd.errors import BadSignature, DecodeError, DecryptionFailed, InvalidInput
from meshd.mesh.view import MemberInfo, MembershipView
from meshd.replica.merge import OpSummary
from meshd.replica.op import (
    VAULT_RECIPIENT,
    OpPayload,
    SignedOp,
    decode_op,
    open_op,
    verify_op,
)
from meshd.replica.paths import decode_value, validate_path

logger = logging.getLogger(__name__)

# Five minutes, as the design's default; long enough for ordinary clock drift
# between a person's devices, short enough that a skewed clock cannot pin a
# value for long.
DEFAULT_SKEW_MS = 5 * 60 * 1000

# The reason of an op refused because its author already has another op at
# that sequence here.
OP_EQUIVOCATION = "op_equivocation"


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    HELD = "held"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AcceptedOp:
    """An op that passed every check, with its plaintext."""

    op: SignedOp
    payload: OpPayload

    @property
    def summary(self) -> OpSummary:
        body = self.op.body
        return OpSummary(
            op_id=self.op.op_id,
            author=body.author,
            sequence=body.sequence,
            wall_ms=body.wall_ms,
            counter=body.counter,
            deleted=self.payload.deleted,
            value=self.payload.value,
            picked=self.payload.picked,
        )


@dataclass(frozen=True)
class Decision:
    """What became of one op, and why."""

    verdict: Verdict
    reason: str
    op_id: str = ""
    author: str = ""
    sequence: int = 0
    accepted: AcceptedOp | None = None

    @property
    def is_final(self) -> bool:
        """Whether the op needs no retry (anything but held)."""
        return self.verdict is not Verdict.HELD


class KnownOps(Protocol):
    """What the receiving replica knows, as the decision needs it."""

    def version_vector(self) -> Mapping[str, int]: ...

    def has_op(self, op_id: str) -> bool: ...

    def op_at(self, author: str, sequence: int) -> str | None:
        """The id of the stored op of ``author`` at ``sequence``, if any."""
        ...


@dataclass(frozen=True)
class Reader:
    """The keys this device reads ops with: its own, and the vault's if it
    rebuilt the vault (recovery)."""

    device_id: str
    encryption_secret: bytes
    vault_secret: bytes | None = None


def decide(
    data: bytes,
    view: MembershipView,
    known: KnownOps,
    reader: Reader,
    now_ms: int,
    skew_ms: int = DEFAULT_SKEW_MS,
) -> Decision:
    """Decide whether to accept, ignore, hold or reject one op."""
    try:
        op = decode_op(data)
    except DecodeError:
        return Decision(Verdict.REJECTED, "malformed")
    body = op.body

    def verdict(
        kind: Verdict, reason: str, accepted: AcceptedOp | None = None
    ) -> Decision:
        return Decision(kind, reason, op.op_id, body.author, body.sequence, accepted)

    # Cheap identity checks first: a known op is ignored whatever else it says.
    if body.mesh_id != view.mesh_id:
        return verdict(Verdict.REJECTED, "wrong_mesh")
    # Ops past this device's version vector cannot be stored yet: only ops
    # within it need a look-up to tell a duplicate from an equivocation.
    seen = known.version_vector().get(body.author, 0) >= body.sequence
    if seen and known.has_op(op.op_id):
        return verdict(Verdict.DUPLICATE, "known")
    if view.position_of(body.mesh_head) is None:
        return verdict(Verdict.HELD, "unknown_head")

    # Authority: a member active at the op's head, signature by its key then,
    # and not past the cut-off its revocation set.
    problem = _authority_problem(op, view)
    if problem is not None:
        return verdict(Verdict.REJECTED, problem)

    # Place in the author's sequence and in causal order.
    placement = _placement(op, view, known, now_ms, skew_ms)
    if placement is not None:
        return verdict(*placement)

    # Only now pay for decryption.
    return _open(op, reader, verdict)


def _authority_problem(op: SignedOp, view: MembershipView) -> str | None:
    body = op.body
    then = view.member_at(body.author, body.mesh_head)
    if then is None:
        return "not_a_member"
    if not then.active:
        return "inactive_author"
    try:
        verify_op(op, then.keys.signing)
    except BadSignature:
        return "bad_signature"
    if _past_cutoff(view.member(body.author), body.sequence):
        return "past_cutoff"
    return None


def _past_cutoff(member: MemberInfo | None, sequence: int) -> bool:
    if member is None or member.active:
        return False
    return member.cutoff is None or sequence > member.cutoff


def _placement(
    op: SignedOp, view: MembershipView, known: KnownOps, now_ms: int, skew_ms: int
) -> tuple[Verdict, str] | None:
    body = op.body
    vector = known.version_vector()
    if vector.get(body.author, 0) >= body.sequence:
        if known.op_at(body.author, body.sequence) is not None:
            return Verdict.REJECTED, OP_EQUIVOCATION
        return Verdict.DUPLICATE, "covered"
    if body.wall_ms > now_ms + skew_ms:
        return Verdict.HELD, "clock_ahead"
    if _missing_dependencies(body.version_vector, vector, view):
        return Verdict.HELD, "missing_dependencies"
    return None


def _missing_dependencies(
    needed: Mapping[str, int], have: Mapping[str, int], view: MembershipView
) -> bool:
    for device, sequence in needed.items():
        # Ops of a revoked device past its cut-off will never be accepted, so
        # an op made on them waits only for those up to the cut-off.
        member = view.member(device)
        if member is not None and not member.active and member.cutoff is not None:
            sequence = min(sequence, member.cutoff)
        if have.get(device, 0) < sequence:
            return True
    return False


def _open(op: SignedOp, reader: Reader, verdict: _Verdict) -> Decision:
    wrapped = op.body.wrapped_keys
    if reader.device_id in wrapped:
        recipient, secret = reader.device_id, reader.encryption_secret
    elif reader.vault_secret is not None and VAULT_RECIPIENT in wrapped:
        recipient, secret = VAULT_RECIPIENT, reader.vault_secret
    else:
        return verdict(Verdict.HELD, "not_a_recipient")
    try:
        payload = open_op(op, recipient, secret)
    except DecryptionFailed:
        return verdict(Verdict.REJECTED, "decryption_failed")
    except DecodeError:
        return verdict(Verdict.REJECTED, "invalid_payload")
    if not _payload_is_valid(payload):
        return verdict(Verdict.REJECTED, "invalid_payload")
    return verdict(Verdict.ACCEPTED, "accepted", AcceptedOp(op, payload))


def _payload_is_valid(payload: OpPayload) -> bool:
    try:
        validate_path(payload.path)
        if payload.deleted:
            return payload.value == ""
        decode_value(payload.value)
    except (InvalidInput, ValueError):
        return False
    return True


class _Verdict(Protocol):
    def __call__(
        self, kind: Verdict, reason: str, accepted: AcceptedOp | None = None
    ) -> Decision: ...
