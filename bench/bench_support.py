"""What every benchmark shares: the scale switch, the figure format, medians.

``MESHD_BENCH_SCALE=tiny`` runs every benchmark with small sizes and one or
two repeats, so a test can check the harness in seconds; the default
``full`` runs the sizes the goals are stated for.

A figure is one row of the report: ``value`` (ours) and ``baseline``
(measured in the same run, on the same machine, at the same time), their
``ratio``, the ``goal`` the ratio is held to, and whether it was ``met``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

SCALE_VARIABLE = "MESHD_BENCH_SCALE"
SCALES = ("tiny", "full")


def scale() -> str:
    """``tiny`` or ``full`` (the default), from ``MESHD_BENCH_SCALE``.

    Raises:
        ValueError: the variable names no known scale.
    """
    chosen = os.environ.get(SCALE_VARIABLE, "full").strip().lower() or "full"
    if chosen not in SCALES:
        raise ValueError(f"{SCALE_VARIABLE} must be one of {', '.join(SCALES)}")
    return chosen


def sized(full: Any, tiny: Any) -> Any:
    """``full`` at full scale, ``tiny`` at tiny scale."""
    return tiny if scale() == "tiny" else full


def at_least(name: str, value: float, baseline: float, goal: float) -> dict[str, Any]:
    """A throughput figure: baseline time over ours, held to ``>= goal``."""
    ratio = baseline / value if value else float("inf")
    return figure(name, value, baseline, ratio, f">= {goal:g}", ratio >= goal, "s")


def at_most(
    name: str, value: float, baseline: float, goal: float, unit: str = "s"
) -> dict[str, Any]:
    """A cost figure: our value over the baseline's, held to ``<= goal``."""
    ratio = value / baseline if baseline else float("inf")
    return figure(name, value, baseline, ratio, f"<= {goal:g}", ratio <= goal, unit)


def figure(
    name: str,
    value: float,
    baseline: float | None,
    ratio: float | None,
    goal: str,
    met: bool,
    unit: str,
) -> dict[str, Any]:
    """One row of the report, in the format ``python -m bench`` tabulates."""
    return {
        "name": name,
        "value": value,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "met": bool(met),
        "unit": unit,
    }


def median_time(work: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``work``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_medians(
    first: Callable[[], float], second: Callable[[], float], repeats: int
) -> tuple[float, float]:
    """Medians of two timers run turn about, so a burst of load from another
    process on the shared machine hits both sides alike."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeats):
        ours.append(first())
        theirs.append(second())
    return statistics.median(ours), statistics.median(theirs)
