"""The sync benchmark at tiny scale: a new device really catches up from S3
and every figure comes in the report's format."""

from __future__ import annotations

import pytest

from bench import bench_sync
from bench.bench_support import SCALE_VARIABLE

FIGURE_KEYS = {"name", "value", "baseline", "ratio", "goal", "met", "unit"}


def test_tiny_sync_bench_reports_requests_and_write_to_read_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SCALE_VARIABLE, "tiny")

    figures = bench_sync.run()["figures"]

    by_unit = {figure["unit"] for figure in figures}
    assert by_unit == {"requests", "ms"}
    for figure in figures:
        assert set(figure) >= FIGURE_KEYS, figure
        assert isinstance(figure["met"], bool)
    recovery = next(f for f in figures if "new device recovers" in f["name"])
    assert recovery["value"] >= 1
    assert "segments" in recovery["detail"]
