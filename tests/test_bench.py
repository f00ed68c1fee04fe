"""The benchmark harness at tiny scale: every module runs and reports figures
in the one format, with a goal and whether it was met."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import MODULES
from bench.bench_support import SCALE_VARIABLE, scale
from tests.daemons import clean_environment

PROJECT = Path(__file__).resolve().parents[1]
FIGURE_KEYS = {"module", "name", "value", "baseline", "ratio", "goal", "met", "unit"}


def test_tiny_bench_run_reports_every_module_in_the_figure_format(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--report", str(report_path)],
        cwd=PROJECT,
        env=clean_environment({SCALE_VARIABLE: "tiny"}),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(report_path.read_text())
    assert report["failed"] == []
    assert report["machine"]["scale"] == "tiny"
    assert {row["module"] for row in report["figures"]} == set(MODULES)
    for row in report["figures"]:
        assert set(row) >= FIGURE_KEYS, row
        assert isinstance(row["met"], bool)
        assert row["goal"]
        assert row["name"] in completed.stdout


def test_unknown_bench_scale_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCALE_VARIABLE, "huge")

    with pytest.raises(ValueError, match="tiny"):
        scale()
