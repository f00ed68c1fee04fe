"""Cost of validating a mesh log, as a ratio against one bare Ed25519 verify.

A 1,000-entry log (membership changes, each with a proposal, endorsements
and a finalizer signature, alternating with lone vault rotations) is
validated from its stored bytes; in the same run, 1,000 bare verifies give
the unit. Validation records its own signature checks (one untimed run), so
the goal follows the log's make-up, and replaying exactly those checks gives
a second baseline that costs what the signatures alone cost. Ratios, not
seconds, so the figures mean the same on any machine.

Run: ``python -m bench.bench_meshlog``
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from bench.bench_support import at_most, interleaved_medians, sized
from meshd.crypto.suite import DeviceKeys, sign_raw, verify, verify_raw
from meshd.mesh import state, vaults
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
    log = MeshLog.from_entries(stored)
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


def recorded_verifies(stored: list[bytes]) -> list[tuple[Any, ...]]:
    """The signature checks validating the log makes, with their exact
    arguments (one untimed run)."""
    calls: list[tuple[Any, ...]] = []
    originals = (state.verify, vaults.verify)

    def recording(*args: Any) -> None:
        calls.append(args)
        originals[0](*args)

    state.verify = vaults.verify = recording
    try:
        _time_validation(stored)
    finally:
        state.verify, vaults.verify = originals
    return calls


def _time_replay(calls: list[tuple[Any, ...]]) -> float:
    start = time.perf_counter()
    for args in calls:
        verify(*args)
    return time.perf_counter() - start


def run() -> dict[str, Any]:
    """Validate the log, as many bare verifies, and the log's own signature
    checks replayed alone, turn about, REPEATS times.

    Goals: an entry costs at most its own signature checks plus one verify's
    worth of everything else (decoding, hashing, the state change); and,
    measured against the very checks it makes (its messages are longer than
    the bare verify's), validation costs at most 1.5 times its signatures.
    """
    entries = int(sized(ENTRIES, 100))
    repeats = int(sized(REPEATS, 2))
    stored = make_log(entries)
    calls = recorded_verifies(stored)
    validation, verifies = interleaved_medians(
        functools.partial(_time_validation, stored),
        functools.partial(_time_verifies, len(stored)),
        repeats,
    )
    validation_again, replay = interleaved_medians(
        functools.partial(_time_validation, stored),
        functools.partial(_time_replay, calls),
        repeats,
    )
    per_entry = validation / len(stored)
    per_verify = verifies / len(stored)
    signatures = len(calls) / len(stored)
    return {
        "figures": [
            at_most(
                f"mesh log: one of {len(stored)} entries, in bare verifies",
                per_entry,
                per_verify,
                signatures + 1,
            ),
            at_most(
                "mesh log: validation vs its own signature checks alone",
                validation_again,
                replay,
                1.5,
            ),
        ],
        "signatures_checked_per_entry": round(signatures, 2),
        "entry_validation_us": round(per_entry * 1e6, 1),
        "bare_verify_us": round(per_verify * 1e6, 1),
        "own_signature_checks_us_per_entry": round(replay / len(stored) * 1e6, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
