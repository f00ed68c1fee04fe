"""Shared fixtures: real meshd daemons in subprocesses (see tests/daemons.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons import (
    MeshdFactory,
    MeshdProcess,
)


@pytest.fixture(scope="module")
def shared_meshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshdProcess]:
    """One daemon for a whole test module, for tests that do not change it."""
    base = tmp_path_factory.mktemp("shared-meshd")
    base.chmod(0o700)
    factory = MeshdFactory(base)
    try:
        yield factory.start()
    finally:
        factory.stop_all()


@pytest.fixture
def meshd_factory(tmp_path: Path) -> Iterator[MeshdFactory]:
    """Start any number of daemons; all are stopped and checked at the end."""
    base = tmp_path / "meshd"
    base.mkdir(mode=0o700)
    factory = MeshdFactory(base)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def meshd(meshd_factory: MeshdFactory) -> MeshdProcess:
    """One running daemon in a fresh home."""
    return meshd_factory.start()
