"""The sync engine: exchange mesh objects with one storage or peer.

Theory of operation
-------------------
The engine knows object *names* (:mod:`meshd.sync.layout`) and moves opaque
bytes; what an object means is the business of the device's local side, a
:class:`LocalParty`, which verifies every object before it trusts it. The
same engine serves storage backends (fsspec) and, later, peers on the LAN or
over Bluetooth: anything that can list, get and put named objects is an
:class:`ObjectStore`.

One round:

1. List the mesh folder once.
2. Push: every object the local side publishes that the listing lacks.
3. Pull: every listed object the local side still wants, fetched in
   dependency order (mesh log by position first, since it decides who may
   write anything else; then snapshots, proposals, approvals, segments by
   sequence, heads last) and handed to the local side one at a time.

What the local side says of each pulled object is final for this round:
*accepted*, *duplicate*, *held* (kept locally and retried by the local side
when what it waits for arrives) or *rejected* (it broke the rules). Rejected
names are remembered so a hostile object costs one fetch, not one per poll,
and each rejection is recorded as a :class:`Problem` that status shows. A
failure of one object never stops the round.

Before the local side sees an object, the engine checks what the name alone
promises: the content hash that content-addressed names carry, and the size
limit (checked by the store before the body is read). Between rounds it
checks freshness: an immutable object once listed (or pushed) never leaves
storage, so one that vanishes from the listing is recorded as
``object_missing`` (a rolled-back or rewritten folder). Its writer, and every
device that holds it, puts it back; once it is listed again the problem is
dropped, so status shows only what is still missing.

Mutable objects (heads) are watched by their version tag
(:attr:`~meshd.sync.layout.HeadName.version`), which the listing carries at
no extra cost:

- A head this engine wrote must keep the version its write got. When the
  listing shows another one (a rolled-back folder, an older copy put over
  it), the engine reads it once: the same bytes re-written are fine; other
  bytes go to the local side, which says whether they are evidence (an older
  head, or one it did not sign), and then the written head is put back. A
  head that vanished is put back too.
- A peer's head is the local side's business: it asks for it again
  (:meth:`LocalParty.wants`) when its version changes. Once a later read of
  a head is accepted, the problems recorded about that head are dropped: the
  peer's view in storage is fresh again.

Without version tags (a storage that offers none) heads are read as before:
a peer's when the local side wants it, the engine's own never.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections import deque
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from meshd.errors import MeshError, NotFound, ProtocolError
from meshd.sync.layout import (
    ApprovalName,
    HeadName,
    LogEntryName,
    ObjectName,
    ProposalRequestName,
    SegmentName,
    SnapshotName,
    content_hash,
)

logger = logging.getLogger(__name__)

# Status shows the most recent problems; older ones are dropped so a hostile
# storage cannot grow the daemon's memory without bound.
MAX_PROBLEMS = 100

# No object of the layout is larger: a segment holds a bounded batch of ops
# and a snapshot a bounded passport. Anything bigger is refused unread.
MAX_OBJECT_SIZE = 16 * 1024 * 1024


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    HELD = "held"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Verdict:
    """What the local side decided about one pulled object.

    ``evidence`` is false for a rejection that says nothing bad about the
    storage: a revoked device's late ops are refused by the rules, not
    because anyone tampered with them, so status does not list them.
    """

    outcome: Outcome
    reason: str = ""
    evidence: bool = True


@dataclass(frozen=True)
class Problem:
    """Tamper or freshness evidence about one object, for status."""

    name: str
    reason: str
    detail: str


@dataclass
class RoundReport:
    """What one round did."""

    pushed: int = 0
    pulled: int = 0
    held: int = 0
    rejected: int = 0
    problems: list[Problem] = field(default_factory=list)


class ObjectStore(Protocol):
    """Where objects live: a storage backend or a peer connection.

    :class:`~meshd.sync.storage.StorageBackend` is one.
    """

    async def list(self, prefix: str = "") -> list[ObjectName]:
        """Every known name under the mesh folder; junk already left out."""
        ...

    async def get(self, name: ObjectName, max_size: int) -> bytes:
        """The object's bytes. Raises NotFound when it is gone, TooLarge when
        it is over ``max_size``."""
        ...

    async def put_immutable(self, name: ObjectName, data: bytes) -> bool: ...

    async def put_mutable(self, name: ObjectName, data: bytes) -> str | None:
        """Write or rewrite the object; the version tag that listings will
        show for it, when the store knows it at once."""
        ...


class LocalParty(Protocol):
    """The device's side of the exchange."""

    def outgoing(self) -> Iterable[tuple[ObjectName, bytes]]:
        """Every object this device publishes (its own and those it relays)."""
        ...

    def wants(self, name: ObjectName) -> bool:
        """Whether the object is unknown locally and worth fetching."""
        ...

    def receive(self, name: ObjectName, data: bytes) -> Verdict:
        """Check and keep (or hold, or reject) one object."""
        ...

    def after_round(self) -> None:
        """Called once a round ends: retry held objects, finalize, etc."""
        ...


@dataclass(frozen=True)
class _Written:
    """A mutable object this engine wrote, and the version it got."""

    name: ObjectName
    data: bytes
    version: str | None


def pull_order(name: ObjectName) -> tuple[int, str, int]:
    """Sort key that fetches objects after what they depend on."""
    match name:
        case LogEntryName(position=position):
            return (0, "", position)
        case SnapshotName(generation=generation):
            return (1, "", generation)
        case ProposalRequestName(proposal_id=proposal_id):
            return (2, proposal_id, 0)
        case ApprovalName(proposal_id=proposal_id):
            return (3, proposal_id, 0)
        case SegmentName(device_id=device_id, first_seq=first_seq):
            return (4, device_id, first_seq)
        case HeadName(device_id=device_id):
            return (5, device_id, 0)
    return (9, "", 0)


class SyncEngine:
    """Runs rounds between one :class:`LocalParty` and one :class:`ObjectStore`."""

    def __init__(self, party: LocalParty, store: ObjectStore) -> None:
        self.party = party
        self.store = store
        self.problems: deque[Problem] = deque(maxlen=MAX_PROBLEMS)
        self._rejected: set[str] = set()
        # Immutable names seen listed or pushed; they must stay listed.
        self._seen: set[str] = set()
        self._missing: set[str] = set()
        # Mutable objects written by this engine, by path.
        self._written: dict[str, _Written] = {}

    async def run_round(self) -> RoundReport:
        """One listing, then push, then pull. Raises StorageUnavailable when the
        store cannot be listed at all; single-object failures are recorded."""
        report = RoundReport()
        listed = {name.path: name for name in await self.store.list()}
        self._check_nothing_vanished(listed, report)
        replaced = await self._check_written(listed, report)
        pushed = await self._push(listed.keys(), report)
        await self._put_back(replaced - pushed, report)
        await self._pull(listed, report)
        self.party.after_round()

        # What the round's end made (a change finalized once enough approvals
        # arrived) goes out now, not a poll interval later.
        await self._push(listed.keys() | pushed, report)
        return report

    async def _push(self, listed: Container[str], report: RoundReport) -> set[str]:
        """Put what the party has to send that is not in storage yet; return
        the names put."""
        pushed: set[str] = set()
        for name, data in self.party.outgoing():
            if name.mutable:
                await self._put_mutable(name, data)
                pushed.add(name.path)
            elif name.path in listed:
                continue
            else:
                await self.store.put_immutable(name, data)
                self._seen.add(name.path)
                pushed.add(name.path)
            report.pushed += 1
        return pushed

    async def _put_mutable(self, name: ObjectName, data: bytes) -> None:
        # Remembered so that a later listing shows whether storage still
        # holds it; like an immutable object, it must never vanish.
        version = await self.store.put_mutable(name, data)
        self._written[name.path] = _Written(name, data, version)
        self._seen.add(name.path)

    async def _check_written(
        self, listed: dict[str, ObjectName], report: RoundReport
    ) -> set[str]:
        """The paths of written mutable objects that storage lost or replaced
        and that must be put back."""
        replaced: set[str] = set()
        for path, written in list(self._written.items()):
            if not await self._still_written(written, listed.get(path), report):
                replaced.add(path)
        return replaced

    async def _still_written(
        self, written: _Written, listed: ObjectName | None, report: RoundReport
    ) -> bool:
        """Whether storage still holds what was written (or something the
        party lets stand). Reads the object only when its version changed."""
        if listed is None:
            return False
        version = getattr(listed, "version", None)
        if version is None or version == written.version:
            return True

        # Remembered at once, so each version is read at most once.
        self._written[listed.path] = dataclasses.replace(written, version=version)

        # A write whose answer had no version: the first listing after it
        # shows the version of what was written.
        if written.version is None:
            return True
        return await self._judge_rewritten(written, report)

    async def _judge_rewritten(self, written: _Written, report: RoundReport) -> bool:
        """Read a written object that got a new version, and judge it."""
        found = await self._read(written.name)
        if found is None:
            return False

        # Rewritten with the same bytes (a sync client touching the file).
        if found == written.data:
            return True

        # Other bytes: the party says whether they are evidence.
        verdict = (
            found if isinstance(found, Verdict) else self._judge(written.name, found)
        )
        self._count(written.name, verdict, report)
        return verdict.outcome is not Outcome.REJECTED

    async def _put_back(self, paths: set[str], report: RoundReport) -> None:
        """Write again what this engine wrote and storage lost or replaced."""
        for path in sorted(paths):
            written = self._written[path]
            logger.warning("Sync: putting %s back in storage", path)
            await self._put_mutable(written.name, written.data)
            report.pushed += 1

    def _check_nothing_vanished(
        self, listed: dict[str, ObjectName], report: RoundReport
    ) -> None:
        # Each vanished name is reported once; it is pushed again by its
        # writer, or by this device when it holds it.
        for path in sorted(self._seen - listed.keys() - self._missing):
            self._missing.add(path)
            self._record(Problem(path, "object_missing", "vanished"), report)

        # What was put back is no longer a problem.
        # TODO: objects no device publishes any more (the request and
        # approvals of a finished proposal) are never put back, so their
        # "missing" problem stays in status until newer problems push it out;
        # harmless, but it asks the person to look at nothing.
        self._forget_missing(self._missing & listed.keys())
        self._missing &= self._seen - listed.keys()
        self._seen.update(path for path, name in listed.items() if not name.mutable)

    def _forget_missing(self, restored: set[str]) -> None:
        """Drop the ``object_missing`` problems of objects listed again."""
        if not restored:
            return
        self._drop_problems(
            lambda problem: (
                problem.reason == "object_missing" and problem.name in restored
            )
        )
        logger.info("Sync: %d missing objects are back in storage", len(restored))

    def _drop_problems(self, solved: Callable[[Problem], bool]) -> None:
        kept = [problem for problem in self.problems if not solved(problem)]
        if len(kept) < len(self.problems):
            self.problems.clear()
            self.problems.extend(kept)

    async def _pull(self, listed: dict[str, ObjectName], report: RoundReport) -> None:
        # Ask what is wanted only when its turn comes: an approval is wanted
        # once the proposal it answers, fetched earlier this round, is known.
        for name in sorted(listed.values(), key=pull_order):
            if name.path in self._rejected or not self.party.wants(name):
                continue
            verdict = await self._fetch_one(name)
            if verdict is None:
                continue
            self._count(name, verdict, report)

    async def _fetch_one(self, name: ObjectName) -> Verdict | None:
        found = await self._read(name)
        if found is None or isinstance(found, Verdict):
            return found
        return self._judge(name, found)

    async def _read(self, name: ObjectName) -> bytes | Verdict | None:
        """The object's bytes; a rejection if they break what the name
        promises; None if it is gone."""
        try:
            data = await self.store.get(name, MAX_OBJECT_SIZE)
        except NotFound:
            # Listed a moment ago, gone now: storage dropped it or is
            # eventually consistent. Try again next round.
            logger.debug("Sync pull: %s vanished after listing", name.path)
            return None
        except ProtocolError as exc:
            return Verdict(Outcome.REJECTED, exc.reason)
        expected = getattr(name, "hash", None)
        if expected is not None and content_hash(data) != expected:
            return Verdict(Outcome.REJECTED, "hash_mismatch")
        return data

    def _judge(self, name: ObjectName, data: bytes) -> Verdict:
        try:
            return self.party.receive(name, data)
        except MeshError as exc:
            return Verdict(Outcome.REJECTED, exc.reason)

    def _count(self, name: ObjectName, verdict: Verdict, report: RoundReport) -> None:
        if verdict.outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE):
            report.pulled += verdict.outcome is Outcome.ACCEPTED
            if name.mutable:
                # A later version was taken: what was wrong with an earlier
                # one (stale, withheld entries) is no longer so.
                self._drop_problems(lambda problem: problem.name == name.path)
            return
        if verdict.outcome is Outcome.HELD:
            report.held += 1
            return
        if not name.mutable:
            self._rejected.add(name.path)
        report.rejected += 1
        if not verdict.evidence:
            logger.info("Sync: refused %s (%s)", name.path, verdict.reason)
            return
        self._record(Problem(name.path, verdict.reason, "rejected"), report)

    def _record(self, problem: Problem, report: RoundReport) -> None:
        self.problems.append(problem)
        report.problems.append(problem)
        logger.warning("Sync: %s %s (%s)", problem.detail, problem.name, problem.reason)
