"""Cost of the passport replica, as ratios against baselines of the same run.

1. Ingest, at 1k, 10k and 100k foreign ops (verify, decrypt, merge and
   commit, in sync-segment batches, through a real device's store), against
   the bare cryptography over the same ops (signature verify, key unwrap and
   payload decrypt). Figure: crypto time / ingest time; goal >= 0.5 (the
   replica's own work costs at most as much as the cryptography it cannot
   avoid). The same ratio at every size shows the cost is linear in the ops.
2. New work on an old history: 1k more ops ingested on top of the biggest
   history, against the same number on top of the smallest; goal <= 1.5
   (ingest does not slow down as the history grows).
3. Start-up as a user feels it: opening the device (SQLite store, mesh log,
   proposals, replica) and reading the passport once, with each history,
   against the same device with an empty history; goal <= 3. Beside it the
   replica alone (opening its store and reading the passport). Both
   histories write the same 500 passport paths, so the biggest against the
   smallest history (goal <= 1.5) shows start-up does not grow with history.

Sizes follow ``MESHD_BENCH_SCALE`` (see :mod:`bench.bench_support`).
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench.bench_homes import Histories, histories, ingest_into
from bench.bench_support import at_least, at_most, interleaved_medians, sized
from meshd.device import STORE_NAME, Device
from meshd.replica import Replica

INGEST_GOAL = 0.5
STARTUP_GOAL = 3.0
GROWTH_GOAL = 1.5


def open_device(home: Path, histories: Histories) -> float:
    """Seconds to open the device at ``home`` and read its passport."""
    started = time.perf_counter()
    device = Device(home, histories.reader)
    assert device.replica is not None
    device.replica.passport()
    elapsed = time.perf_counter() - started
    device.close()
    return elapsed


def open_replica(home: Path, histories: Histories) -> float:
    """Seconds to open the replica alone at ``home`` and read the passport."""
    started = time.perf_counter()
    replica = Replica.open(home / STORE_NAME, histories.reader, histories.log)
    replica.passport()
    elapsed = time.perf_counter() - started
    replica.close()
    return elapsed


def ingest_figures(built: Histories) -> list[dict[str, Any]]:
    return [
        at_least(
            f"ingest {size} ops (crypto/ingest)",
            built.ingest_seconds[size],
            built.crypto_seconds[size],
            INGEST_GOAL,
        )
        for size in sorted(built.homes)
    ]


def growth_figure(built: Histories) -> dict[str, Any]:
    """The same number of new ops on the biggest and the smallest history."""
    smallest, biggest = min(built.homes), max(built.homes)
    extra = len(built.ops) - biggest
    times = {}
    for size in (smallest, biggest):
        home = built.base / f"grow{size}" / "home"
        shutil.copytree(built.homes[size], home)
        times[size] = ingest_into(home, built.reader, built.ops[size : size + extra])
    return at_most(
        f"ingest {extra} new ops on {biggest} vs {smallest}-op history",
        times[biggest],
        times[smallest],
        GROWTH_GOAL,
    )


def startup_figures(built: Histories, repeats: int) -> list[dict[str, Any]]:
    figures = []
    for size in sorted(built.homes):
        loaded, empty = interleaved_medians(
            functools.partial(open_device, built.homes[size], built),
            lambda: open_device(built.empty, built),
            repeats,
        )
        figures.append(
            at_most(
                f"start-up, {size}-op history vs empty", loaded, empty, STARTUP_GOAL
            )
        )
    smallest, biggest = built.homes[min(built.homes)], built.homes[max(built.homes)]
    loaded, small = interleaved_medians(
        functools.partial(open_device, biggest, built),
        functools.partial(open_device, smallest, built),
        repeats,
    )
    figures.append(
        at_most(
            f"start-up, {max(built.homes)} vs {min(built.homes)}-op history",
            loaded,
            small,
            GROWTH_GOAL,
        )
    )
    loaded, empty = interleaved_medians(
        lambda: open_replica(biggest, built),
        lambda: open_replica(built.empty, built),
        repeats,
    )
    figures.append(
        at_most(
            f"replica-only start-up, {max(built.homes)}-op history vs empty",
            loaded,
            empty,
            STARTUP_GOAL,
        )
    )
    return figures


def run() -> dict[str, Any]:
    """Every replica figure; the homes are shared with the memory benchmark."""
    built = histories()
    repeats = int(sized(7, 3))
    figures = ingest_figures(built)
    figures.append(growth_figure(built))
    figures.extend(startup_figures(built, repeats))
    return {"figures": figures}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
