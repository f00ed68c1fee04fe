"""Cost of validating a mesh log, as a ratio against one bare Ed25519 verify.

A 1,000-entry log (membership changes, each with a proposal, endorsements
and a finalizer signature, alternating with lone vault rotations) is
validated from its stored bytes; in the same run, 1,000 bare verifies give
the unit. Ratios, not seconds, so the figure means the same on any machine.

Run: ``python -m bench.bench_meshlog``
"""

from __future__ import annotations

import statistics
import time

from meshd.crypto.encoding import Signed
from meshd.crypto.suite import DeviceKeys, sign_raw, verify_raw
from meshd.mesh.log import MeshLog
from meshd.mesh.scenario import build

ENTRIES = 1_000
VERIFIES = 1_000
REPEATS = 5


def make_log(entries: int = ENTRIES) -> list[bytes]:
    """The stored bytes of a log with ``entries`` entries (genesis included)."""
    mesh = build("genesis A B C t=2")
    for index in range(1, entries):
        if index % 2:
            threshold = 3 if mesh.state.threshold == 2 else 2
            mesh.run(f"threshold {threshold} by A,B,C")
        else:
            mesh.run("vault by A")
    return [entry.encode() for entry in mesh.entries()]


def _time_validation(stored: list[bytes]) -> float:
    start = time.perf_counter()
    log = MeshLog.from_entries([Signed.decode(data) for data in stored])
    elapsed = time.perf_counter() - start
    assert log.position == len(stored) - 1
    return elapsed


def _time_verifies(count: int = VERIFIES) -> float:
    seed = bytes(range(32))
    message = b"bench" * 40
    signature = sign_raw(seed, message)
    public = DeviceKeys(seed, seed).public.signing
    start = time.perf_counter()
    for _ in range(count):
        verify_raw(public, message, signature)
    return time.perf_counter() - start


def run() -> dict[str, float]:
    """Validate a 1,000-entry log and 1,000 bare verifies, REPEATS times."""
    stored = make_log()
    validations = [_time_validation(stored) for _ in range(REPEATS)]
    verifies = [_time_verifies() for _ in range(REPEATS)]
    per_entry = statistics.median(validations) / len(stored)
    per_verify = statistics.median(verifies) / VERIFIES
    return {
        "entries": float(len(stored)),
        "entry_validation_us": per_entry * 1e6,
        "bare_verify_us": per_verify * 1e6,
        "entry_cost_in_verifies": per_entry / per_verify,
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
