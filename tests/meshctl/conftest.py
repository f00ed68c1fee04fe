"""Fixtures of the meshctl tests."""

from __future__ import annotations

import pytest

from tests.daemons import MeshdProcess, meshctl_ok


@pytest.fixture(scope="module")
def founded_meshd(
    shared_meshd: MeshdProcess, tmp_path_factory: pytest.TempPathFactory
) -> MeshdProcess:
    """This module's daemon, after founding a mesh: it may issue delegations."""
    storage = tmp_path_factory.mktemp("founded-storage")
    meshctl_ok(shared_meshd, "init", "--label", "alice", "--storage", str(storage))
    return shared_meshd
