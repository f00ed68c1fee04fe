"""The sync engine's rounds, against an in-memory object store."""

from __future__ import annotations

from collections.abc import Iterable

from meshd.crypto.suite import DeviceKeys
from meshd.errors import NotFound
from meshd.sync.engine import Outcome, SyncEngine, Verdict
from meshd.sync.layout import (
    HeadName,
    LogEntryName,
    ObjectName,
    SegmentName,
    log_entry_name,
    parse_name,
    segment_name,
)

DEVICE = DeviceKeys.generate().device_id


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gets: list[str] = []
        self.lists = 0

    async def list(self, prefix: str = "") -> list[ObjectName]:
        self.lists += 1
        parsed = [parse_name(path) for path in self.objects]
        return [name for name in parsed if name is not None]

    async def get(self, name: ObjectName, max_size: int) -> bytes:
        self.gets.append(name.path)
        if name.path not in self.objects:
            raise NotFound(name.path)
        return self.objects[name.path]

    async def put_immutable(self, name: ObjectName, data: bytes) -> bool:
        return self.objects.setdefault(name.path, data) is data

    async def put_mutable(self, name: ObjectName, data: bytes) -> None:
        self.objects[name.path] = data


class RecordingParty:
    def __init__(self, publish: Iterable[tuple[ObjectName, bytes]] = ()) -> None:
        self.publish = list(publish)
        self.received: list[str] = []
        self.known: set[str] = set()
        self.reject: set[str] = set()
        self.rounds = 0

    def outgoing(self) -> Iterable[tuple[ObjectName, bytes]]:
        # Like a device, it offers its head again only when the head changed.
        offered = self.publish
        self.publish = [(name, data) for name, data in offered if not name.mutable]
        return offered

    def wants(self, name: ObjectName) -> bool:
        return name.path not in self.known

    def receive(self, name: ObjectName, data: bytes) -> Verdict:
        self.received.append(name.path)
        if name.path in self.reject:
            return Verdict(Outcome.REJECTED, "bad_signature")
        self.known.add(name.path)
        return Verdict(Outcome.ACCEPTED)

    def after_round(self) -> None:
        self.rounds += 1


async def test_pull_fetches_the_mesh_log_before_ops_and_heads() -> None:
    store = MemoryStore()
    store.objects[HeadName(DEVICE).path] = b"head"
    store.objects[segment_name(DEVICE, 1, 3, b"ops").path] = b"ops"
    for position in (2, 0, 1):
        entry = bytes([position])
        store.objects[log_entry_name(position, entry).path] = entry
    party = RecordingParty()

    await SyncEngine(party, store).run_round()

    kinds = [type(parse_name(path)) for path in party.received]
    assert kinds == [LogEntryName] * 3 + [SegmentName, HeadName]
    positions = [parse_name(path) for path in party.received[:3]]
    assert [name.position for name in positions if isinstance(name, LogEntryName)] == [
        0,
        1,
        2,
    ]


async def test_sync_client_junk_is_ignored_and_costs_no_fetch() -> None:
    store = MemoryStore()
    entry = log_entry_name(0, b"genesis")
    store.objects[entry.path] = b"genesis"
    store.objects[f"{entry.path} (conflicted copy).seg"] = b"junk"
    store.objects["log/.x.icloud"] = b"junk"
    store.objects["../escape"] = b"junk"
    party = RecordingParty()

    await SyncEngine(party, store).run_round()

    assert store.gets == [entry.path]


async def test_a_rejected_object_is_fetched_once_and_shown_as_a_problem() -> None:
    store = MemoryStore()
    entry = log_entry_name(0, b"forged")
    store.objects[entry.path] = b"forged"
    party = RecordingParty()
    party.reject.add(entry.path)
    engine = SyncEngine(party, store)

    first = await engine.run_round()
    await engine.run_round()

    assert store.gets == [entry.path]
    assert first.rejected == 1
    assert [problem.reason for problem in engine.problems] == ["bad_signature"]


async def test_push_writes_only_what_the_listing_lacks_and_always_the_head() -> None:
    store = MemoryStore()
    present = log_entry_name(0, b"genesis")
    missing = log_entry_name(1, b"next")
    store.objects[present.path] = b"genesis"
    party = RecordingParty(
        [(present, b"genesis"), (missing, b"next"), (HeadName(DEVICE), b"head")]
    )
    party.known = {present.path, missing.path}

    report = await SyncEngine(party, store).run_round()

    assert report.pushed == 2
    assert store.objects[missing.path] == b"next"
    assert store.objects[HeadName(DEVICE).path] == b"head"
    assert store.lists == 1


async def test_an_object_whose_bytes_do_not_match_its_name_is_rejected() -> None:
    store = MemoryStore()
    entry = log_entry_name(0, b"genesis")
    store.objects[entry.path] = b"something else"
    party = RecordingParty()
    engine = SyncEngine(party, store)

    report = await engine.run_round()

    assert party.received == []
    assert [problem.reason for problem in report.problems] == ["hash_mismatch"]


async def test_an_immutable_object_that_vanishes_is_reported_once() -> None:
    store = MemoryStore()
    entry = log_entry_name(0, b"genesis")
    store.objects[entry.path] = b"genesis"
    engine = SyncEngine(RecordingParty(), store)
    await engine.run_round()

    del store.objects[entry.path]
    first = await engine.run_round()
    second = await engine.run_round()

    assert [(p.name, p.reason) for p in first.problems] == [
        (entry.path, "object_missing")
    ]
    assert second.problems == []


async def test_a_refusal_by_the_rules_is_counted_but_is_no_storage_problem() -> None:
    class RulesParty(RecordingParty):
        def receive(self, name: ObjectName, data: bytes) -> Verdict:
            self.received.append(name.path)
            return Verdict(Outcome.REJECTED, "past_cutoff", evidence=False)

    store = MemoryStore()
    late = segment_name(DEVICE, 5, 5, b"late op")
    store.objects[late.path] = b"late op"
    engine = SyncEngine(RulesParty(), store)

    report = await engine.run_round()
    await engine.run_round()

    assert report.rejected == 1
    assert list(engine.problems) == []
    assert store.gets == [late.path]
