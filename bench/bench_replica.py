"""Cost of the replica, as ratios against baselines measured in the same run.

1. Ingest: 10,000 foreign ops from two devices (verify, decrypt, merge and
   commit, in sync-segment batches of 500) against the bare crypto loop over
   the same ops (signature verify, key unwrap and payload decrypt only).
   Figure: crypto time / ingest time; goal >= 0.5 (the replica's own work
   costs at most as much as the cryptography it cannot avoid).
2. Start-up: opening a store that holds a 100,000-op history over 500 paths
   (snapshots every 500 ops, as designed) and reading the passport, against
   (a) an empty store, goal <= 3, and (b) a store holding the same 500-path
   state without the history (started from a snapshot), goal <= 3. Start-up
   reads the merged path states, never the history, so (b) shows it is
   O(state); (a) also counts decoding those 500 path states, which an empty
   store does not have, so it grows with the size of the passport.

Sizes are arguments so the benchmark can run small:
``python -m bench.bench_replica --ops 2000 --history 5000``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshd.crypto import suite
from meshd.crypto.vault import new_seed, vault_public_key
from meshd.mesh.view import MemberInfo
from meshd.replica import Replica, ReplicaSettings
from meshd.replica.clock import Timestamp
from meshd.replica.op import OpPayload, decode_op, make_op, open_op

OPS = 10_000
HISTORY = 100_000
BATCH = 500
PATHS = 500
REPEATS = 5
START_MS = 1_800_000_000_000


@dataclass
class StaticMembership:
    """A mesh log that never changes: enough for a benchmark."""

    devices: list[suite.DeviceKeys]
    mesh_id: bytes
    head_hash: bytes
    vault_public_key: bytes
    position: int = 0
    threshold: int = 2

    def __post_init__(self) -> None:
        self._members = {
            keys.device_id: MemberInfo(
                keys.device_id, keys.public, "laptop", True, 0, None, None
            )
            for keys in self.devices
        }

    def member(self, device_id: str) -> MemberInfo | None:
        return self._members.get(device_id)

    def active_members(self) -> list[MemberInfo]:
        return [self._members[device_id] for device_id in sorted(self._members)]

    def position_of(self, entry_hash: bytes) -> int | None:
        return 0 if entry_hash == self.head_hash else None

    def member_at(self, device_id: str, entry_hash: bytes) -> MemberInfo | None:
        return self.member(device_id) if entry_hash == self.head_hash else None


def make_mesh() -> StaticMembership:
    devices = [suite.DeviceKeys.generate() for _ in range(3)]
    return StaticMembership(
        devices, os.urandom(32), os.urandom(32), vault_public_key(new_seed())
    )


def make_ops(view: StaticMembership, count: int) -> Iterator[bytes]:
    """Ops by the first two devices, alternating, each made after seeing the
    other's previous one (so they arrive in causal order)."""
    authors = view.devices[:2]
    vector = {keys.device_id: 0 for keys in authors}
    for index in range(count):
        keys = authors[index % 2]
        payload = OpPayload(f"profile/k{index % PATHS}", False, str(index), "")
        op = make_op(
            keys,
            view,
            sequence=vector[keys.device_id] + 1,
            timestamp=Timestamp(START_MS + index, 0),
            version_vector=dict(vector),
            payload=payload,
        )
        vector[keys.device_id] += 1
        yield op.data


def time_crypto(view: StaticMembership, ops: list[bytes]) -> float:
    reader = view.devices[2]
    decoded = [decode_op(data) for data in ops]
    keys = {m.device_id: m.keys.signing for m in view.active_members()}
    start = time.perf_counter()
    for op in decoded:
        suite.verify(
            suite.Context.OP,
            keys[op.body.author],
            op.signed.body,
            op.signed.signatures[0].signature,
        )
        open_op(op, reader.device_id, reader.encryption_secret)
    return time.perf_counter() - start


def ingest_all(replica: Replica, ops: list[bytes]) -> None:
    now = START_MS / 1000 + len(ops)
    for start in range(0, len(ops), BATCH):
        replica.ingest_many(ops[start : start + BATCH], now)


def time_ingest(view: StaticMembership, ops: list[bytes], directory: Path) -> float:
    path = directory / f"ingest-{time.monotonic_ns()}.sqlite3"
    replica = Replica.open(path, view.devices[2], view)
    start = time.perf_counter()
    ingest_all(replica, ops)
    elapsed = time.perf_counter() - start
    assert sum(replica.version_vector().values()) == len(ops)
    replica.close()
    return elapsed


def time_open(path: Path, view: StaticMembership) -> float:
    start = time.perf_counter()
    replica = Replica.open(path, view.devices[2], view)
    replica.passport()
    elapsed = time.perf_counter() - start
    replica.close()
    return elapsed


def build_history(view: StaticMembership, count: int, path: Path) -> None:
    replica = Replica.open(path, view.devices[2], view, ReplicaSettings())
    batch: list[bytes] = []
    for data in make_ops(view, count):
        batch.append(data)
        if len(batch) == BATCH * 2:
            ingest_all(replica, batch)
            batch = []
    ingest_all(replica, batch)
    replica.close()


def figure(name: str, value: float, baseline: float, goal: str) -> dict[str, Any]:
    # Ingest is a throughput ratio (baseline time over ours); start-up is a
    # cost ratio (our time over the baseline's).
    ratio = baseline / value if goal == ">= 0.5" else value / baseline
    met = ratio >= 0.5 if goal == ">= 0.5" else ratio <= 3
    return {
        "name": name,
        "value": value,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "met": met,
    }


def run(ops: int = OPS, history: int = HISTORY) -> dict[str, Any]:
    """Both figures; sizes configurable so the benchmark can run small."""
    view = make_mesh()
    stream = list(make_ops(view, ops))
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        crypto = statistics.median(time_crypto(view, stream) for _ in range(3))
        ingest = statistics.median(
            time_ingest(view, stream, directory) for _ in range(3)
        )
        built = directory / "history.sqlite3"
        build_history(view, history, built)
        empty = directory / "empty.sqlite3"
        Replica.open(empty, view.devices[2], view).close()
        state_only = directory / "state-only.sqlite3"
        copy_state(built, state_only, view)
        loaded = statistics.median(time_open(built, view) for _ in range(REPEATS))
        fresh = statistics.median(time_open(empty, view) for _ in range(REPEATS))
        same = statistics.median(time_open(state_only, view) for _ in range(REPEATS))
    return {
        "figures": [
            figure(f"ingest {ops} ops (crypto/ingest)", ingest, crypto, ">= 0.5"),
            figure(f"start-up, {history}-op history vs empty", loaded, fresh, "<= 3"),
            figure(
                f"start-up, {history}-op history vs same state", loaded, same, "<= 3"
            ),
        ]
    }


def copy_state(source: Path, target: Path, view: StaticMembership) -> None:
    """A store with the same merged state and no history: a new device that
    started from the source's snapshot."""
    replica = Replica.open(source, view.devices[2], view)
    snapshot = replica.make_snapshot(START_MS / 1000)
    replica.close()
    fresh = Replica.open(target, view.devices[2], view)
    fresh.load_snapshot(snapshot, START_MS / 1000)
    fresh.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=OPS)
    parser.add_argument("--history", type=int, default=HISTORY)
    arguments = parser.parse_args()
    for row in run(arguments.ops, arguments.history)["figures"]:
        print(
            f"{row['name']}: ratio {row['ratio']:.2f} (goal {row['goal']}, "
            f"{'met' if row['met'] else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
