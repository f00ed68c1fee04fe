"""Passport merge: the state every replica computes from the same ops.

Theory of operation
-------------------
For each path the merge keeps two things:

- ``newest``: the op with the greatest ``(timestamp, author)`` ever seen on
  the path. In the default mode ("newest-signature") it decides the value.
- ``frontier``: the ops on the path that no other op on the path has seen
  (op *X* has seen op *Y* when ``X.version_vector[Y.author] >= Y.sequence``).
  One op on the frontier means the edits were sequential. Several mean they
  were concurrent: in manual mode that is a conflict, whose provisional
  winner is the newest of them until the person resolves it with an op made
  after seeing them all (it has seen every candidate, so it replaces them).

Replicas deliver ops causally (an op waits until every op in its version
vector is known), so a new op is never already seen by a frontier op, and
both ``newest`` and ``frontier`` depend only on the set of ops, not on the
order or number of times they arrived. The state of one path is a small
record, so it can live in the store and in snapshots instead of the history.

The mode itself is the setting at ``settings/conflict_resolution``, decided
by newest signature (a setting about conflicts cannot wait on a conflict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from meshd.crypto import suite
from meshd.crypto.encoding import Record
from meshd.replica import wire
from meshd.replica.clock import Timestamp
from meshd.replica.paths import (
    CONFLICT_MODE_PATH,
    MODE_MANUAL,
    MODE_NEWEST,
    decode_value,
    set_in_tree,
)

_CONFLICT_PERSON = b"hm1-conflict-id"


@dataclass(frozen=True)
class OpSummary(Record):
    """What the merge keeps of an op: its place in time and its effect."""

    TAG: ClassVar[str] = "op-summary"
    VERSION: ClassVar[int] = 1
    op_id: str
    author: str
    sequence: int
    wall_ms: int
    counter: int
    deleted: bool
    value: str
    picked: str

    @property
    def rank(self) -> tuple[Timestamp, str]:
        """The order of "newest valid signature": timestamp, then device id."""
        return Timestamp(self.wall_ms, self.counter), self.author

    def seen_by(self, version_vector: Mapping[str, int]) -> bool:
        """Whether an op made on ``version_vector`` had seen this op."""
        return version_vector.get(self.author, 0) >= self.sequence

    def to_json(self) -> dict[str, Any]:
        """The candidate as shown to the person (value included)."""
        return {
            "op_id": self.op_id,
            "device_id": self.author,
            "timestamp": str(Timestamp(self.wall_ms, self.counter)),
            "deleted": self.deleted,
            "value": None if self.deleted else decode_value(self.value),
        }


@dataclass(frozen=True)
class PathState(Record):
    """The merged state of one path."""

    TAG: ClassVar[str] = "path-state"
    VERSION: ClassVar[int] = 1
    path: str
    newest: OpSummary
    frontier: tuple[OpSummary, ...]

    def apply(self, op: OpSummary, version_vector: Mapping[str, int]) -> PathState:
        """The state after one more op on this path."""
        newest = max(self.newest, op, key=lambda summary: summary.rank)

        # The new op replaces what it has seen; it joins the frontier unless
        # a frontier op has seen it (only possible out of causal order).
        kept = [entry for entry in self.frontier if not entry.seen_by(version_vector)]
        if not any(entry.op_id == op.op_id for entry in kept):
            kept.append(op)
        frontier = tuple(sorted(kept, key=lambda summary: summary.op_id))
        return PathState(self.path, newest, frontier)

    def encode(self) -> bytes:
        """The same bytes as the generic record encoding, built directly."""
        return wire.pack(
            [
                self.TAG,
                self.VERSION,
                self.path,
                _summary_to_wire(self.newest),
                [_summary_to_wire(entry) for entry in self.frontier],
            ]
        )

    @classmethod
    def decode(cls, data: bytes, max_size: int | None = None) -> PathState:
        """Strict decoding without the generic schema walk (start-up reads
        every path state).

        Raises:
            DecodeError: not a path state.
        """
        limit = max_size if max_size is not None else cls.MAX_SIZE
        path, newest, frontier = wire.fields(
            wire.unpack(data, limit, "path state"), cls.TAG, cls.VERSION, 3
        )
        return cls(
            wire.text(path),
            _summary_from_wire(newest),
            tuple(_summary_from_wire(entry) for entry in wire.items(frontier)),
        )

    @property
    def provisional(self) -> OpSummary:
        """The frontier op that stands until a conflict is resolved."""
        return max(self.frontier, key=lambda summary: summary.rank)

    def winner(self, mode: str) -> OpSummary:
        return self.provisional if mode == MODE_MANUAL else self.newest


def _summary_to_wire(summary: OpSummary) -> list[object]:
    return [
        summary.TAG,
        summary.VERSION,
        summary.op_id,
        summary.author,
        summary.sequence,
        summary.wall_ms,
        summary.counter,
        summary.deleted,
        summary.value,
        summary.picked,
    ]


def _summary_from_wire(value: object) -> OpSummary:
    op_id, author, sequence, wall_ms, counter, deleted, text, picked = wire.fields(
        value, OpSummary.TAG, OpSummary.VERSION, 8
    )
    return OpSummary(
        op_id=wire.text(op_id),
        author=wire.text(author),
        sequence=wire.integer(sequence),
        wall_ms=wire.integer(wall_ms),
        counter=wire.integer(counter),
        deleted=wire.boolean(deleted),
        value=wire.text(text),
        picked=wire.text(picked),
    )


@dataclass(frozen=True)
class ConflictRecord:
    """Concurrent edits of one path, waiting for the person to pick one."""

    conflict_id: str
    path: str
    candidates: tuple[OpSummary, ...]
    provisional: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.conflict_id,
            "path": self.path,
            "provisional": self.provisional,
            "candidates": [candidate.to_json() for candidate in self.candidates],
        }


def conflict_of(state: PathState) -> ConflictRecord | None:
    """The conflict on a path, if its frontier holds concurrent ops."""
    if len(state.frontier) < 2:
        return None
    ids = "\0".join(entry.op_id for entry in state.frontier)
    digest = suite.blake2b(f"{state.path}\0{ids}".encode(), person=_CONFLICT_PERSON)
    return ConflictRecord(
        conflict_id="conflict-" + suite.base32_text(digest[:10]).lower(),
        path=state.path,
        candidates=state.frontier,
        provisional=state.provisional.op_id,
    )


def first_state(path: str, op: OpSummary) -> PathState:
    return PathState(path, op, (op,))


class Merge:
    """The merged passport: path states, applied one op at a time."""

    def __init__(self, states: Iterable[PathState] = ()) -> None:
        self._paths: dict[str, PathState] = {state.path: state for state in states}

    def apply(
        self, path: str, op: OpSummary, version_vector: Mapping[str, int]
    ) -> PathState:
        """Apply one accepted op and return the path's new state."""
        current = self._paths.get(path)
        state = (
            first_state(path, op)
            if current is None
            else current.apply(op, version_vector)
        )
        self._paths[path] = state
        return state

    def states(self) -> list[PathState]:
        return [self._paths[path] for path in sorted(self._paths)]

    def state(self, path: str) -> PathState | None:
        return self._paths.get(path)

    @property
    def mode(self) -> str:
        """The conflict mode in force (a replicated setting)."""
        state = self._paths.get(CONFLICT_MODE_PATH)
        if state is None or state.newest.deleted:
            return MODE_NEWEST
        chosen = decode_value(state.newest.value)
        return MODE_MANUAL if chosen == MODE_MANUAL else MODE_NEWEST

    def winner(self, path: str) -> OpSummary | None:
        """The op whose value a path shows, or ``None`` if never set."""
        state = self._paths.get(path)
        if state is None:
            return None
        if path == CONFLICT_MODE_PATH:
            return state.newest
        return state.winner(self.mode)

    def passport(self) -> dict[str, Any]:
        """The merged passport as a JSON object tree."""
        tree: dict[str, Any] = {}
        for path in sorted(self._paths):
            winner = self.winner(path)
            if winner is not None and not winner.deleted:
                set_in_tree(tree, path, decode_value(winner.value))
        return tree

    def conflicts(self) -> list[ConflictRecord]:
        """Open conflicts, in manual mode only, ordered by path."""
        if self.mode != MODE_MANUAL:
            return []
        found = (conflict_of(self._paths[path]) for path in sorted(self._paths))
        return [
            conflict
            for conflict in found
            if conflict is not None and conflict.path != CONFLICT_MODE_PATH
        ]
