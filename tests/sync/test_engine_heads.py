"""The sync engine watches heads by the version tag of the listing: it reads
a head only when its version changed, and puts back its own head when
storage holds something else."""

from __future__ import annotations

import dataclasses
import itertools

from meshd.crypto.suite import DeviceKeys
from meshd.sync.engine import Outcome, SyncEngine, Verdict
from meshd.sync.layout import HeadName, ObjectName
from tests.sync.test_engine import DEVICE, MemoryStore, RecordingParty

_versions = itertools.count(1)


class VersionedStore:
    """The memory store of the engine tests, with a listing that tags each
    head with a write counter as S3 tags objects with an ETag;
    ``tagged=False`` plays a store without tags."""

    def __init__(self, tagged: bool = True) -> None:
        self.tagged = tagged
        self.memory = MemoryStore()
        self.objects = self.memory.objects
        self.gets = self.memory.gets
        self.versions: dict[str, str] = {}
        self.puts: list[str] = []

    def plant(self, name: ObjectName, data: bytes) -> None:
        """A write by the provider, not through the engine."""
        self.objects[name.path] = data
        self.versions[name.path] = str(next(_versions))

    async def list(self, prefix: str = "") -> list[ObjectName]:
        names = await self.memory.list(prefix)
        if not self.tagged:
            return names
        return [
            dataclasses.replace(name, version=self.versions.get(name.path))
            if isinstance(name, HeadName)
            else name
            for name in names
        ]

    async def get(self, name: ObjectName, max_size: int) -> bytes:
        return await self.memory.get(name, max_size)

    async def put_immutable(self, name: ObjectName, data: bytes) -> bool:
        return await self.memory.put_immutable(name, data)

    async def put_mutable(self, name: ObjectName, data: bytes) -> str | None:
        self.puts.append(name.path)
        self.plant(name, data)
        return self.versions[name.path] if self.tagged else None


class JudgingParty(RecordingParty):
    """A party that refuses an older head of its own, and never pulls its
    own head (the engine watches it)."""

    def wants(self, name: ObjectName) -> bool:
        return name != OWN and super().wants(name)

    def receive(self, name: ObjectName, data: bytes) -> Verdict:
        self.received.append(name.path)
        if data == b"older head":
            return Verdict(Outcome.REJECTED, "head_replaced")
        return Verdict(Outcome.ACCEPTED)


OWN = HeadName(DEVICE)


async def _engine_that_wrote_its_head(store: VersionedStore) -> SyncEngine:
    engine = SyncEngine(JudgingParty([(OWN, b"newest head")]), store)
    await engine.run_round()
    store.gets.clear()
    store.puts.clear()
    return engine


async def test_an_own_head_replaced_by_an_older_one_is_put_back() -> None:
    store = VersionedStore()
    engine = await _engine_that_wrote_its_head(store)
    store.plant(OWN, b"older head")

    report = await engine.run_round()

    assert store.objects[OWN.path] == b"newest head"
    assert store.gets == [OWN.path]
    assert [(p.name, p.reason) for p in report.problems] == [
        (OWN.path, "head_replaced")
    ]


async def test_an_own_head_rewritten_with_the_same_bytes_is_left_alone() -> None:
    store = VersionedStore()
    engine = await _engine_that_wrote_its_head(store)
    store.plant(OWN, b"newest head")

    report = await engine.run_round()
    await engine.run_round()

    assert store.gets == [OWN.path]  # read once, at its new version
    assert store.puts == []
    assert report.problems == []


async def test_an_idle_round_reads_no_head() -> None:
    store = VersionedStore()
    engine = await _engine_that_wrote_its_head(store)

    await engine.run_round()

    assert store.gets == []
    assert store.puts == []
    assert store.memory.lists == 2


async def test_without_versions_an_own_head_is_never_read_again() -> None:
    store = VersionedStore(tagged=False)
    engine = await _engine_that_wrote_its_head(store)
    store.plant(OWN, b"older head")

    report = await engine.run_round()

    assert store.gets == []
    assert report.problems == []


async def test_a_peer_head_problem_is_dropped_once_a_later_one_is_taken() -> None:
    class StaleFirstParty(RecordingParty):
        def wants(self, name: ObjectName) -> bool:
            return True

        def receive(self, name: ObjectName, data: bytes) -> Verdict:
            if data == b"stale":
                return Verdict(Outcome.REJECTED, "head_went_backwards")
            return Verdict(Outcome.ACCEPTED)

    store = VersionedStore()
    peer = HeadName(DeviceKeys.generate().device_id)
    store.objects[peer.path] = b"stale"
    engine = SyncEngine(StaleFirstParty(), store)
    first = await engine.run_round()

    store.plant(peer, b"fresh")
    await engine.run_round()

    assert [p.reason for p in first.problems] == ["head_went_backwards"]
    assert list(engine.problems) == []
