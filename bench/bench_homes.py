"""Device homes with passport histories of several sizes, built once per run.

A real three-device mesh (A, B and C, threshold 2) is written by the mesh
log's own functions; device A's home holds that log, a keystore without a
passphrase (so a daemon can open it unattended) and a store. For each size,
a copy of that home ingests the first N ops written by B and C, alternating,
each having seen the other's previous op, over 500 passport paths: the
history a user with two busy devices would have after N edits.

Building the homes is the ingest benchmark: each ingest is timed, and the
bare cryptography over the same ops (signature verify, key unwrap, payload
decrypt) is timed beside it. The replica and memory benchmarks reuse the
homes, so the run pays for the 100k-op history once.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_support import sized
from meshd.crypto import suite
from meshd.device import Device
from meshd.invite import Invite
from meshd.keystore import DeviceSecrets, Keystore
from meshd.mesh.log import MeshLog
from meshd.mesh.scenario import Scenario, build
from meshd.replica.clock import Timestamp
from meshd.replica.op import OpPayload, decode_op, make_op, open_op

PATHS = 500
# Sync hands ops over in segments of at most this many.
BATCH = 256
# Each extra op in a history is one more millisecond in the past.
SPACING_MS = 1


@dataclass
class Histories:
    """The homes, the op stream they were built from, and the timings."""

    base: Path
    scenario: Scenario
    ops: list[bytes]
    empty: Path
    homes: dict[int, Path] = field(default_factory=dict)
    ingest_seconds: dict[int, float] = field(default_factory=dict)
    crypto_seconds: dict[int, float] = field(default_factory=dict)

    @property
    def reader(self) -> suite.DeviceKeys:
        return self.scenario.key("A")

    @property
    def log(self) -> MeshLog:
        return self.scenario.mesh


def history_sizes() -> tuple[int, ...]:
    return tuple(sized((1_000, 10_000, 100_000), (100, 300, 1_000)))


def repeats_for(size: int) -> int:
    """Fewer repeats for the big sizes, so a full run fits in minutes."""
    if size >= 100_000:
        return 1
    return int(sized(3 if size >= 10_000 else 5, 2))


def make_ops(scenario: Scenario, count: int) -> Iterator[bytes]:
    """Ops by B and C, alternating, each after seeing the other's last one."""
    authors = [scenario.key("B"), scenario.key("C")]
    vector = {keys.device_id: 0 for keys in authors}
    first_ms = int(time.time() * 1000) - count * SPACING_MS - 60_000
    for index in range(count):
        keys = authors[index % 2]
        payload = OpPayload(f"profile/k{index % PATHS}", False, f'"{index}"', "")
        op = make_op(
            keys,
            scenario.mesh,
            sequence=vector[keys.device_id] + 1,
            timestamp=Timestamp(first_ms + index * SPACING_MS, 0),
            version_vector=dict(vector),
            payload=payload,
        )
        vector[keys.device_id] += 1
        yield op.data


def make_empty_home(scenario: Scenario, home: Path) -> None:
    """Device A's home: keystore, mesh log and an empty replica."""
    keys = scenario.key("A")
    Keystore(home).create(DeviceSecrets.of(keys))

    # The storage folder sits beside the home and stays empty: a daemon
    # started on the home polls it and finds nothing new.
    storage = home.parent / "storage"
    storage.mkdir(exist_ok=True)
    state = scenario.state
    device = Device(home, keys)
    device.start_join(
        Invite(state.did, str(storage), state.label or ""),
        [entry.encode() for entry in scenario.entries()],
    )
    device.close()


def ingest_into(home: Path, keys: suite.DeviceKeys, ops: list[bytes]) -> float:
    """Open the device at ``home``, ingest ``ops`` in sync-sized batches;
    returns the seconds the ingest took (opening excluded)."""
    device = Device(home, keys)
    replica = device.replica
    assert replica is not None, "the bench device is not a member"
    started = time.perf_counter()
    for start in range(0, len(ops), BATCH):
        replica.ingest_many(ops[start : start + BATCH], time.time())
    elapsed = time.perf_counter() - started
    known = sum(replica.version_vector().values())
    device.close()
    assert known >= len(ops), f"only {known} of {len(ops)} ops were accepted"
    return elapsed


def time_crypto(scenario: Scenario, ops: list[bytes]) -> float:
    """The cryptography ingest cannot avoid, alone, over the same ops."""
    reader = scenario.key("A")
    decoded = [decode_op(data) for data in ops]
    signing = {m.device_id: m.keys.signing for m in scenario.mesh.active_members()}
    started = time.perf_counter()
    for op in decoded:
        suite.verify(
            suite.Context.OP,
            signing[op.body.author],
            op.signed.body,
            op.signed.signatures[0].signature,
        )
        open_op(op, reader.device_id, reader.encryption_secret)
    return time.perf_counter() - started


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _build(histories: Histories, size: int) -> None:
    import statistics

    ingests: list[float] = []
    cryptos: list[float] = []
    ops = histories.ops[:size]
    for attempt in range(repeats_for(size)):
        home = _copy(histories.empty, histories.base / f"h{size}-{attempt}" / "home")
        ingests.append(ingest_into(home, histories.reader, ops))
        cryptos.append(time_crypto(histories.scenario, ops))
        histories.homes[size] = home
    histories.ingest_seconds[size] = statistics.median(ingests)
    histories.crypto_seconds[size] = statistics.median(cryptos)


@functools.cache
def histories() -> Histories:
    """Build every home once per process (removed at exit)."""
    base = Path(tempfile.mkdtemp(prefix="meshd-bench-"))
    atexit.register(shutil.rmtree, base, True)
    scenario = build("genesis A B C t=2", label="bench")
    sizes = history_sizes()
    ops = list(make_ops(scenario, max(sizes) + extra_ops()))
    empty = base / "empty" / "home"
    empty.parent.mkdir()
    make_empty_home(scenario, empty)
    result = Histories(base, scenario, ops, empty)
    for size in sizes:
        _build(result, size)
    return result


def extra_ops() -> int:
    """Ops past the biggest history: new work on top of an old history."""
    return int(sized(1_000, 100))
