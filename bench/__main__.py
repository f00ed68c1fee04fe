"""``python -m bench``: run every benchmark, print a table, write a JSON report.

Each benchmark module has ``run() -> dict``. A result either holds a list of
figures under ``"figures"`` (each with ``name``, ``value``, ``baseline``,
``ratio``, ``goal``, ``met`` and ``unit``) or is a flat mapping, which is shown as is.
The machines are shared and noisy, so absolute times mean little: figures are
ratios against a baseline measured in the same run, as medians of repeats.

``MESHD_BENCH_SCALE=tiny`` runs everything small, in seconds (see
:mod:`bench.bench_support`); the default is ``full``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.bench_support import scale

MODULES = (
    "bench.bench_meshlog",
    "bench.bench_replica",
    "bench.bench_storage",
    "bench.bench_rpc",
    "bench.bench_memory",
    "bench.bench_sync",
)


def _machine() -> dict[str, Any]:
    import os

    return {
        "scale": scale(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _rows(module: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    figures = result.get("figures")
    if isinstance(figures, list):
        return [{"module": module, **figure} for figure in figures]
    return [
        {"module": module, "name": key, "value": value} for key, value in result.items()
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = ("name", "value", "baseline", "unit", "ratio", "goal", "met")
    table = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[index]) for line in table))
        if table
        else len(column)
        for index, column in enumerate(columns)
    ]
    print(
        "  ".join(
            column.ljust(width) for column, width in zip(columns, widths, strict=True)
        )
    )
    for line in table:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(line, widths, strict=True)
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", action="append", help="run only these modules")
    parser.add_argument("--report", default="bench/report.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    seconds: dict[str, float] = {}
    run_started = time.monotonic()
    for module in MODULES:
        if args.only and not any(name in module for name in args.only):
            continue
        print(f"-- {module}", flush=True)
        started = time.monotonic()
        try:
            result = importlib.import_module(module).run()
        except Exception:
            traceback.print_exc()
            failed.append(module)
            continue
        rows.extend(_rows(module, result))
        seconds[module] = round(time.monotonic() - started, 1)
        print(f"   done in {seconds[module]} s", flush=True)

    _print_table(rows)
    report = {
        "machine": _machine(),
        "seconds": {"total": round(time.monotonic() - run_started, 1), **seconds},
        "failed": failed,
        "figures": rows,
    }
    Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    print(f"Report written to {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
