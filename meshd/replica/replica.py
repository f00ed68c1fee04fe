"""The replica: merge, ingest rules and the SQLite store tied together.

Every accepted op is stored together with the path state and version vector
it changes, in one transaction, so the store never holds an op without its
effect or an effect without its op. Start-up reads the merged path states,
not the history. The merged passport as shown is stored too, in the same
transaction, so opening a replica and reading its passport costs one stored
value; the path states are decoded only when something needs them (an edit,
an ingest, the conflicts), which keeps start-up flat in the passport's size.

Held ops (see :mod:`meshd.replica.ingest`) are stored and retried after each
accepted op, after a snapshot, after a membership change and whenever the
caller asks (:meth:`Replica.retry_held`), for example as the clock moves on.
The hold is capped (:data:`MAX_HELD_OPS`, :data:`MAX_HELD_BYTES`): once it
is full, a new op that would be held is refused instead (reason
``hold_full``), so a member or a hostile storage flooding ops that cannot be
used yet (timestamps far ahead, unknown heads) cannot grow the store without
bound. Ops already held are never evicted by newcomers: which ops are kept
depends only on the order they arrived in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from meshd.crypto import suite
from meshd.crypto.encoding import Record
from meshd.crypto.vault import vault_secret
from meshd.errors import (
    BadSignature,
    DecodeError,
    DecryptionFailed,
    DeviceRevoked,
    InvalidInput,
    NotAMember,
    NotFound,
    StoreError,
)
from meshd.mesh.view import MembershipView
from meshd.replica.clock import HybridClock, Timestamp, seconds_to_ms
from meshd.replica.delegation import (
    Delegation,
    capability_id,
    issue_delegation,
    valid_delegations,
)
from meshd.replica.head import HeadBody, make_head
from meshd.replica.ingest import (
    DEFAULT_SKEW_MS,
    OP_EQUIVOCATION,
    AcceptedOp,
    Decision,
    Reader,
    Verdict,
    decide,
)
from meshd.replica.merge import ConflictRecord, Merge, PathState, conflict_of
from meshd.replica.op import (
    VAULT_RECIPIENT,
    OpPayload,
    SignedOp,
    decode_op,
    make_op,
    open_op,
)
from meshd.replica.paths import JSONValue, encode_value, validate_path
from meshd.replica.snapshot import (
    Snapshot,
    SnapshotState,
    decode_snapshot,
    make_snapshot,
    open_snapshot,
    verify_snapshot,
)
from meshd.replica.store import Store

logger = logging.getLogger(__name__)

# A snapshot every 500 ops keeps a new device's first sync to at most 500 ops
# after the newest snapshot, at the cost of one state-sized write per 500 ops.
DEFAULT_SNAPSHOT_EVERY = 500
# Passes over the held ops after a change; each pass can only unblock ops
# that depend on the previous one, and held ops are capped by this bound.
_MAX_RETRY_PASSES = 64
_HELD_OP = "op"
# A device catching up holds a few ops at a time (clock skew, a mesh-log entry
# not pulled yet); ten thousand ops or 64 MiB is far beyond that and still
# bounds what a flood can make this device store and retry.
MAX_HELD_OPS = 10_000
MAX_HELD_BYTES = 64 * 1024 * 1024
# The reason of an op refused because the hold is full.
HOLD_FULL = "hold_full"
# The replica_meta key of the merged passport as shown (canonical JSON).
_PASSPORT_KEY = "passport"
# The newest snapshot serves new devices; one more covers a finalizer race in
# which the newest is discarded with the losing side of a fork.
_SNAPSHOTS_KEPT = 2


@dataclass(frozen=True)
class ReplicaSettings:
    skew_ms: int = DEFAULT_SKEW_MS
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    max_held_ops: int = MAX_HELD_OPS
    max_held_bytes: int = MAX_HELD_BYTES


@dataclass(frozen=True)
class ReplicaMeta(Record):
    """The replica's bookkeeping, stored in the same transaction as each op."""

    TAG: ClassVar[str] = "replica-meta"
    VERSION: ClassVar[int] = 1
    version_vector: dict[str, int]
    wall_ms: int
    counter: int
    since_snapshot: int


@dataclass(frozen=True)
class SnapshotBase(Record):
    """The snapshot state a replica started from (ops it covers may be absent)."""

    TAG: ClassVar[str] = "snapshot-base"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 8 * 1024 * 1024
    version_vector: dict[str, int]
    paths: tuple[PathState, ...]


class _StoreKnowledge:
    """What the ingest decision asks, answered from the replica."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    def version_vector(self) -> Mapping[str, int]:
        return self._replica._vector

    def has_op(self, op_id: str) -> bool:
        return self._replica.store.has_op(op_id)

    def op_at(self, author: str, sequence: int) -> str | None:
        return self._replica.store.op_at(author, sequence)


class Replica:
    """This device's replica of the passport."""

    def __init__(
        self,
        store: Store,
        keys: suite.DeviceKeys,
        view: MembershipView,
        settings: ReplicaSettings,
        vault_seed: bytes | None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.view = view
        self.settings = settings
        self.reader = Reader(
            keys.device_id,
            keys.encryption_secret,
            None if vault_seed is None else vault_secret(vault_seed),
        )
        self._knowledge = _StoreKnowledge(self)
        self._load()

    @classmethod
    def open(
        cls,
        path: Path,
        keys: suite.DeviceKeys,
        view: MembershipView,
        settings: ReplicaSettings | None = None,
        vault_seed: bytes | None = None,
    ) -> Replica:
        """Open the replica stored at ``path`` (a file, created if absent).

        ``vault_seed`` is given only after a recovery rebuilt the vault: it
        lets this device read ops and snapshots not wrapped to it.

        Raises:
            StoreError: the store cannot be opened or read.
        """
        store = Store.open(path)
        replica = cls(store, keys, view, settings or ReplicaSettings(), vault_seed)
        logger.info(
            "Replica opened for %s: %s ops known",
            suite.short_id(keys.device_id),
            sum(replica._vector.values()),
        )
        return replica

    def close(self) -> None:
        self.store.close()

    # TODO: the merged passport is kept in clear in the SQLite file (only
    # the ops and snapshots are encrypted); on a disk without full-disk
    # encryption, someone who copies the file reads the passport.
    def _load(self) -> None:
        # State comes from the materialized path states, not the history.
        meta_bytes = self.store.meta("meta")
        meta = (
            ReplicaMeta({}, 0, 0, 0)
            if meta_bytes is None
            else ReplicaMeta.decode(meta_bytes)
        )
        self._vector: dict[str, int] = dict(meta.version_vector)
        self._clock = HybridClock(Timestamp(meta.wall_ms, meta.counter))
        self._since_snapshot = meta.since_snapshot

        # Path states are decoded on first use (see :attr:`_merge`).
        self._loaded_merge: Merge | None = None
        self._passport_text: bytes | None = None
        self._passport_changed = False
        # Held ops (count, bytes), read from the store when first needed.
        self._held_usage: tuple[int, int] | None = None

    @property
    def _merge(self) -> Merge:
        """The merged state, decoded from the store the first time it is needed."""
        if self._loaded_merge is None:
            states = self.store.path_states()
            self._loaded_merge = Merge(PathState.decode(data) for data in states)
        return self._loaded_merge

    def _save_meta(self) -> None:
        last = self._clock.last
        meta = ReplicaMeta(
            self._vector, last.wall_ms, last.counter, self._since_snapshot
        )
        self.store.put_meta("meta", meta.encode())

        # The shown passport follows the path states in the same transaction.
        if self._passport_changed:
            self._passport_text = _passport_text(self._merge.passport())
            self.store.put_meta(_PASSPORT_KEY, self._passport_text)
            self._passport_changed = False

    # -- Reading ------------------------------------------------------------------

    def passport(self) -> dict[str, Any]:
        """The merged passport as a JSON object tree (a fresh copy)."""
        if self._passport_text is None:
            self._passport_text = self.store.meta(_PASSPORT_KEY)
        if self._passport_text is None:
            # A store written before the shown passport was kept.
            self._passport_text = _passport_text(self._merge.passport())
        tree: dict[str, Any] = json.loads(self._passport_text)
        return tree

    def get(self, path: str) -> JSONValue:
        """The value at ``path`` (a leaf or a whole section).

        Raises:
            InvalidInput: the path is malformed.
            NotFound: nothing is set at the path.
        """
        node: Any = self.passport()
        for segment in validate_path(path).split("/"):
            if not isinstance(node, dict) or segment not in node:
                raise NotFound(f"Nothing is set at {path}", path=path)
            node = node[segment]
        return node

    def conflicts(self) -> list[ConflictRecord]:
        """Open conflicts (manual mode only)."""
        return self._merge.conflicts()

    @property
    def mode(self) -> str:
        return self._merge.mode

    def version_vector(self) -> dict[str, int]:
        return dict(self._vector)

    def path_states(self) -> list[PathState]:
        return self._merge.states()

    def ops_since(self, version_vector: Mapping[str, int]) -> list[bytes]:
        """Stored ops a peer with ``version_vector`` lacks, in causal order."""
        return self.store.ops_after(version_vector)

    def held(self) -> list[tuple[str, str]]:
        """Held ops as (op id, reason)."""
        return [(op_id, reason) for op_id, reason, _ in self.store.held(_HELD_OP)]

    def head(self, now: float) -> bytes:
        """This device's signed head: its own sequence and its version vector."""
        body = HeadBody(
            mesh_id=self.view.mesh_id,
            device=self.keys.device_id,
            sequence=self._vector.get(self.keys.device_id, 0),
            version_vector=dict(self._vector),
            wall_ms=seconds_to_ms(now),
            mesh_head=self.view.head_hash,
        )
        return make_head(self.keys, body)

    # -- Local edits ----------------------------------------------------------------

    def local_set(self, path: str, value: JSONValue, now: float) -> str:
        """Set ``path`` to a JSON value; returns the new op id.

        Raises:
            InvalidInput: bad path or value.
            DeviceRevoked: this device is no longer an active member.
            StoreError: the op could not be stored (nothing changed).
        """
        payload = OpPayload(validate_path(path), False, encode_value(value), "")
        return self._local(payload, now)

    def local_delete(self, path: str, now: float) -> str:
        """Delete ``path``; returns the new op id (see :meth:`local_set`)."""
        return self._local(OpPayload(validate_path(path), True, "", ""), now)

    def add_capability(self, name: str, data: JSONValue, now: float) -> tuple[str, str]:
        """Add (or replace) the capability called ``name``; returns its id and
        the op id. The id is derived from the name (see
        :mod:`meshd.replica.delegation`).

        Raises:
            InvalidInput: bad name or data.
        """
        identifier = capability_id(name)
        value = {"name": name, "data": data}
        return identifier, self.local_set(f"capabilities/{identifier}", value, now)

    def issue_delegation(
        self,
        agent_key: bytes,
        capabilities: list[str],
        expires_at: float,
        now: float,
    ) -> Delegation:
        """Sign a delegation for an agent key and store it in the passport.

        Raises:
            InvalidInput: bad key, capabilities or expiry.
            DeviceRevoked: this device is no longer active.
        """
        delegation = issue_delegation(
            self.keys, self.view, agent_key, capabilities, int(expires_at), int(now)
        )
        path = f"delegations/{delegation.delegation_id}"
        self.local_set(path, delegation.to_json(), now)
        return delegation

    def valid_delegations(self, now: float) -> list[Delegation]:
        """Delegations that hold now (see :func:`valid_delegations`)."""
        return valid_delegations(self.passport(), self.view, int(now))

    def resolve(self, conflict_id: str, op_id: str, now: float) -> str:
        """Settle a conflict with one of its candidates; returns the new op id.

        The new op carries the chosen value and has seen every candidate, so
        it replaces them all on every replica.

        Raises:
            NotFound: no such open conflict.
            InvalidInput: ``op_id`` is not one of its candidates.
        """
        conflict = next(
            (c for c in self.conflicts() if c.conflict_id == conflict_id), None
        )
        if conflict is None:
            raise NotFound(f"No open conflict {conflict_id}", conflict_id=conflict_id)
        chosen = next((c for c in conflict.candidates if c.op_id == op_id), None)
        if chosen is None:
            raise InvalidInput(f"{op_id} is not a candidate of {conflict_id}")
        payload = OpPayload(conflict.path, chosen.deleted, chosen.value, op_id)
        return self._local(payload, now)

    def _local(self, payload: OpPayload, now: float) -> str:
        me = self.view.member(self.keys.device_id)
        if me is None or not me.active:
            raise DeviceRevoked("This device cannot edit the passport any more")
        now_ms = seconds_to_ms(now)
        sequence = self._vector.get(self.keys.device_id, 0) + 1
        op = make_op(
            self.keys,
            self.view,
            sequence=sequence,
            timestamp=self._clock.tick(now_ms),
            version_vector=self._vector,
            payload=payload,
        )
        self._commit(AcceptedOp(op, payload), now_ms)
        logger.info(
            "Passport op %s made: sequence %s", suite.short_id(op.op_id), sequence
        )
        self._maybe_snapshot(now_ms)
        return op.op_id

    # -- Foreign ops ----------------------------------------------------------------

    def ingest(self, data: bytes, now: float) -> Decision:
        """Decide on one foreign op and store the outcome (see
        :mod:`meshd.replica.ingest` for the verdicts and reasons).

        Raises:
            StoreError: the outcome could not be stored (nothing changed).
        """
        return self.ingest_many([data], now)[0]

    def ingest_many(self, ops: Iterable[bytes], now: float) -> list[Decision]:
        """Decide on a batch of foreign ops (e.g. one sync segment), store the
        outcome in one transaction, then retry held ops in the same one.

        Raises:
            StoreError: nothing of the batch was stored.
        """
        now_ms = seconds_to_ms(now)
        try:
            with self.store.transaction():
                decisions = self._ingest_batch(ops, now_ms)
                if any(d.verdict is Verdict.ACCEPTED for d in decisions):
                    self._retry_held(now_ms)
                self._save_meta()
        except StoreError:
            self._load()  # the in-memory merge ran ahead of the rolled-back store
            raise
        self._log_batch(decisions)
        self._maybe_snapshot(now_ms)
        return decisions

    def retry_held(self, now: float) -> int:
        """Retry held ops (e.g. as the clock moves on); returns how many left
        the hold.

        Raises:
            StoreError: nothing was changed.
        """
        now_ms = seconds_to_ms(now)
        try:
            with self.store.transaction():
                released = self._retry_held(now_ms)
                self._save_meta()
        except StoreError:
            self._load()
            raise
        self._maybe_snapshot(now_ms)
        return released

    def _ingest_batch(self, ops: Iterable[bytes], now_ms: int) -> list[Decision]:
        decisions = []
        # Once an op of an author is refused as an equivocation, its later ops
        # in the same batch were made on the refused one: they are refused
        # too, so this replica never stacks the other copy's ops on its own.
        equivocating: set[str] = set()
        for data in ops:
            decision = self._ingest_one(data, now_ms, equivocating)
            if decision.reason == OP_EQUIVOCATION and decision.author not in (
                equivocating
            ):
                equivocating.add(decision.author)
                # Only a holder of the author's signing key can make one: one
                # line per author and batch, and status shows the evidence.
                logger.warning(
                    "Op %s from %s refused: another op holds sequence %s",
                    suite.short_id(decision.op_id),
                    suite.short_id(decision.author),
                    decision.sequence,
                )
            decisions.append(decision)
        return decisions

    def _ingest_one(
        self, data: bytes, now_ms: int, equivocating: Collection[str] = frozenset()
    ) -> Decision:
        decision = decide(
            data, self.view, self._knowledge, self.reader, now_ms, self.settings.skew_ms
        )
        if decision.author in equivocating and decision.verdict in _USABLE:
            decision = _refused_as_equivocation(decision)
        if decision.accepted is not None:
            # Accept each op before deciding the next, so an op and its
            # successor can arrive in the same batch.
            self._accept(decision.accepted, now_ms, observe=True)
        elif decision.verdict is Verdict.HELD:
            return self._hold(decision, data, now_ms)
        elif decision.verdict is Verdict.REJECTED:
            # Debug only: anyone who can write to storage can trigger this.
            logger.debug(
                "Op %s from %s rejected: %s",
                suite.short_id(decision.op_id),
                suite.short_id(decision.author),
                decision.reason,
            )
        return decision

    def _hold(self, decision: Decision, data: bytes, now_ms: int) -> Decision:
        """Keep an op for a later retry, or refuse it when the hold is full."""
        if self.store.is_held(decision.op_id):
            self.store.hold(decision.op_id, _HELD_OP, decision.reason, now_ms, data)
            return decision

        # Newcomers are refused rather than older ops evicted: the outcome
        # depends only on the arrival order, and ops held first stay.
        count, size = self._held_totals()
        if (
            count + 1 > self.settings.max_held_ops
            or size + len(data) > self.settings.max_held_bytes
        ):
            return Decision(
                Verdict.REJECTED,
                HOLD_FULL,
                decision.op_id,
                decision.author,
                decision.sequence,
            )
        self.store.hold(decision.op_id, _HELD_OP, decision.reason, now_ms, data)
        self._held_usage = (count + 1, size + len(data))
        return decision

    def _held_totals(self) -> tuple[int, int]:
        if self._held_usage is None:
            self._held_usage = self.store.held_totals(_HELD_OP)
        return self._held_usage

    def _release(self, op_id: str, data: bytes) -> None:
        self.store.release(op_id)
        if self._held_usage is not None:
            count, size = self._held_usage
            self._held_usage = (count - 1, size - len(data))

    def _retry_held(self, now_ms: int) -> int:
        released = 0
        for _ in range(_MAX_RETRY_PASSES):
            progress = False
            for op_id, reason, data in self.store.held(_HELD_OP):
                decision = decide(
                    data,
                    self.view,
                    self._knowledge,
                    self.reader,
                    now_ms,
                    self.settings.skew_ms,
                )
                if decision.verdict is Verdict.HELD:
                    if decision.reason != reason:
                        self.store.hold(op_id, _HELD_OP, decision.reason, now_ms, data)
                    continue
                self._release(op_id, data)
                released += 1
                if decision.accepted is not None:
                    self._accept(decision.accepted, now_ms, observe=True)
                    progress = True
            if not progress:
                break
        return released

    def _accept(self, accepted: AcceptedOp, now_ms: int, *, observe: bool) -> None:
        """Store an op and its effect; the caller holds the transaction."""
        body = accepted.op.body
        self.store.add_op(
            accepted.op.op_id, body.author, body.sequence, accepted.op.data
        )
        path = accepted.payload.path
        before = self._merge.state(path)
        state = self._merge.apply(path, accepted.summary, body.version_vector)
        had_conflict = before is not None and len(before.frontier) > 1
        self._store_path_state(state, had_conflict or len(state.frontier) > 1)
        self._vector[body.author] = body.sequence
        self._passport_changed = True
        if observe:
            self._clock.observe(body.timestamp, now_ms)
        self._since_snapshot += 1

    def _commit(self, accepted: AcceptedOp, now_ms: int) -> None:
        try:
            with self.store.transaction():
                self._accept(accepted, now_ms, observe=False)
                self._save_meta()
        except StoreError:
            self._load()
            raise

    def _store_path_state(self, state: PathState, conflicts: bool = True) -> None:
        self.store.put_path_state(state.path, state.encode())
        if not conflicts:
            return  # no conflict before or after: the conflicts table stays
        conflict = conflict_of(state)
        self.store.put_conflict(
            state.path,
            None if conflict is None else conflict.conflict_id,
            "" if conflict is None else json.dumps(conflict.to_json()),
        )

    def _log_batch(self, decisions: list[Decision]) -> None:
        counts: dict[str, int] = {}
        for decision in decisions:
            counts[decision.verdict.value] = counts.get(decision.verdict.value, 0) + 1
        logger.debug("Replica ingest finished: %s", counts)

        # One line per batch, not per op: a flood must not flood the log too.
        refused = [d for d in decisions if d.reason == HOLD_FULL]
        if refused:
            logger.warning(
                "Replica hold full: %s ops refused, first %s from %s"
                " (at most %s ops or %s bytes wait for a retry)",
                len(refused),
                suite.short_id(refused[0].op_id),
                suite.short_id(refused[0].author),
                self.settings.max_held_ops,
                self.settings.max_held_bytes,
            )

    # -- Snapshots ------------------------------------------------------------------

    def make_snapshot(self, now: float) -> bytes:
        """Write a snapshot of the whole merged state and return its bytes.

        Raises:
            DeviceRevoked: this device is no longer active.
            StoreError: the snapshot could not be stored.
        """
        me = self.view.member(self.keys.device_id)
        if me is None or not me.active:
            raise DeviceRevoked("A revoked device cannot write snapshots")
        now_ms = seconds_to_ms(now)
        snapshot = make_snapshot(
            self.keys, self.view, self._vector, self._merge.states(), now_ms
        )
        with self.store.transaction():
            self.store.add_snapshot(snapshot.snapshot_id, now_ms, snapshot.data)
            self.store.prune_snapshots(_SNAPSHOTS_KEPT)
            self._since_snapshot = 0
            self._save_meta()
        logger.info(
            "Snapshot %s written: %s paths",
            suite.short_id(snapshot.snapshot_id),
            len(self._merge.states()),
        )
        return snapshot.data

    def newest_snapshot(self) -> bytes | None:
        return self.store.newest_snapshot()

    def _maybe_snapshot(self, now_ms: int) -> None:
        me = self.view.member(self.keys.device_id)
        if self._since_snapshot >= self.settings.snapshot_every and me and me.active:
            self.make_snapshot(now_ms / 1000)

    def load_snapshot(self, data: bytes, now: float) -> Decision:
        """Start from (or catch up with) a snapshot written by any member.

        Ops this replica already stored and the snapshot does not cover are
        applied on top of it, so nothing is lost either way.

        Raises:
            StoreError: nothing was changed.
        """
        now_ms = seconds_to_ms(now)
        try:
            snapshot, state = self._open_snapshot(data)
        except _Refused as refused:
            return Decision(refused.verdict, refused.reason)
        vector = state.version_vector
        done = Decision(
            Verdict.DUPLICATE, "not_newer", snapshot.snapshot_id, snapshot.body.author
        )
        if all(seq <= self._vector.get(device, 0) for device, seq in vector.items()):
            return done
        if any(self._past_cutoff(device, seq) for device, seq in vector.items()):
            return Decision(Verdict.REJECTED, "past_cutoff", snapshot.snapshot_id)

        base = SnapshotBase(vector, state.paths)
        try:
            with self.store.transaction():
                self.store.put_meta("base", base.encode())
                self.store.add_snapshot(snapshot.snapshot_id, now_ms, data)
                self._replace_state(base, now_ms)
                self._retry_held(now_ms)
                self._save_meta()
        except StoreError:
            self._load()
            raise
        logger.info("Snapshot %s loaded", suite.short_id(snapshot.snapshot_id))
        return Decision(
            Verdict.ACCEPTED, "accepted", snapshot.snapshot_id, snapshot.body.author
        )

    def _open_snapshot(self, data: bytes) -> tuple[Snapshot, SnapshotState]:
        try:
            snapshot, _ = decode_snapshot(data)
            if snapshot.body.mesh_id != self.view.mesh_id:
                raise _Refused(Verdict.REJECTED, "wrong_mesh")
            if self.view.position_of(snapshot.body.mesh_head) is None:
                raise _Refused(Verdict.HELD, "unknown_head")
            snapshot = verify_snapshot(data, self.view)
        except DecodeError as exc:
            raise _Refused(Verdict.REJECTED, "malformed") from exc
        except NotAMember as exc:
            raise _Refused(Verdict.REJECTED, "not_a_member") from exc
        except BadSignature as exc:
            raise _Refused(Verdict.REJECTED, "bad_signature") from exc
        readable = self.reader.device_id in snapshot.body.wrapped_keys
        if not readable and self.reader.vault_secret is None:
            raise _Refused(Verdict.HELD, "not_a_recipient")
        try:
            return snapshot, open_snapshot(snapshot, self.reader)
        except (DecryptionFailed, DecodeError) as exc:
            raise _Refused(Verdict.REJECTED, "decryption_failed") from exc

    def _past_cutoff(self, device: str, sequence: int) -> bool:
        member = self.view.member(device)
        if member is None or member.active:
            return False
        return member.cutoff is None or sequence > member.cutoff

    # -- Rebuilding -----------------------------------------------------------------

    def _base(self) -> SnapshotBase:
        data = self.store.meta("base")
        return SnapshotBase({}, ()) if data is None else SnapshotBase.decode(data)

    def recompute(
        self, base: SnapshotBase | None = None
    ) -> tuple[Merge, dict[str, int]]:
        """The merged state recomputed from the base snapshot and stored ops
        (pure: nothing is written)."""
        base = base or self._base()
        merge = Merge(base.paths)
        vector = dict(base.version_vector)
        for data in self.store.ops_in_order():
            op = decode_op(data)
            body = op.body
            if body.sequence <= vector.get(body.author, 0):
                continue  # covered by the base snapshot
            accepted = AcceptedOp(op, open_stored_payload(op, self.reader))
            merge.apply(accepted.payload.path, accepted.summary, body.version_vector)
            vector[body.author] = body.sequence
        return merge, vector

    def materialized_state_is_consistent(self) -> bool:
        """Whether the stored merged state equals one recomputed from the ops."""
        merge, vector = self.recompute()
        stored = Merge(PathState.decode(d) for d in self.store.path_states())
        shown = self.store.meta(_PASSPORT_KEY)
        return (
            merge.states() == stored.states() == self._merge.states()
            and vector == self._vector
            and (shown is None or json.loads(shown) == merge.passport())
        )

    def _replace_state(self, base: SnapshotBase, now_ms: int) -> None:
        merge, vector = self.recompute(base)
        self._loaded_merge = merge
        self._vector = vector
        self._passport_changed = True
        self.store.clear_merged_state()
        for state in merge.states():
            self._store_path_state(state)
        # The clock moves past what the snapshot holds, within the skew bound.
        for state in merge.states():
            stamp = state.newest.rank[0]
            if stamp.wall_ms <= now_ms + self.settings.skew_ms:
                self._clock.observe(stamp, now_ms)

    # -- Membership -----------------------------------------------------------------

    def membership_changed(self, now: float) -> int:
        """Apply a change of the mesh log: drop ops of revoked devices past
        their cut-off, retry held ops and write a snapshot for the new members.
        Returns how many stored ops were dropped.

        Raises:
            StoreError: nothing was changed.
        """
        now_ms = seconds_to_ms(now)
        try:
            with self.store.transaction():
                dropped = self._drop_past_cutoff()
                if dropped:
                    self._replace_state(self._base(), now_ms)
                self._retry_held(now_ms)
                self._save_meta()
        except StoreError:
            self._load()
            raise
        me = self.view.member(self.keys.device_id)
        if me is not None and me.active:
            self.make_snapshot(now)
        return dropped

    def _drop_past_cutoff(self) -> int:
        dropped = 0
        for device in sorted(self._vector):
            member = self.view.member(device)
            if member is None or member.active:
                continue
            # TODO: a base snapshot loaded before the revocation may still hold
            # values from ops past the cut-off; they stay until a newer
            # snapshot replaces the base, so such a value can linger.
            dropped += self.store.delete_ops_after(device, member.cutoff or 0)
        if dropped:
            logger.warning("Replica dropped %s ops past a revocation cut-off", dropped)
        return dropped


# Verdicts under which an op would be kept (now or for a retry).
_USABLE = frozenset({Verdict.ACCEPTED, Verdict.HELD})


def _refused_as_equivocation(decision: Decision) -> Decision:
    """The same op, refused: it follows an equivocation of its author."""
    return Decision(
        Verdict.REJECTED,
        OP_EQUIVOCATION,
        decision.op_id,
        decision.author,
        decision.sequence,
    )


def _passport_text(passport: dict[str, Any]) -> bytes:
    """The stored form of the shown passport: canonical JSON."""
    text = json.dumps(passport, sort_keys=True, separators=(",", ":"))
    return text.encode()


class _Refused(Exception):
    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


def open_stored_payload(op: SignedOp, reader: Reader) -> OpPayload:
    """Decrypt an op this replica accepted earlier.

    Raises:
        DecryptionFailed: the store holds an op this device cannot read.
    """
    recipient = reader.device_id
    secret = reader.encryption_secret
    if recipient not in op.body.wrapped_keys and reader.vault_secret is not None:
        recipient, secret = VAULT_RECIPIENT, reader.vault_secret
    return open_op(op, recipient, secret)
