"""The scenario language reads like the stories and builds real logs."""

from __future__ import annotations

import pytest

from meshd.errors import InvalidInput, ThresholdNotMet
from meshd.mesh.log import MeshLog
from meshd.mesh.scenario import build, scenario_keys


def test_story_from_the_brief_builds_a_valid_chain() -> None:
    mesh = build(
        """
        genesis A B C t=2      # three devices, 2-of-3
        add D by A,B
        revoke C by A,D
        threshold 3 by A,B
        """
    )

    assert mesh.state.position == 3
    assert mesh.state.threshold == 3
    assert mesh.active_names() == ["A", "B", "D"]
    # Anyone can check the chain from its bytes alone.
    replayed = MeshLog.from_entries([e.encode() for e in mesh.entries()])
    assert replayed.head == mesh.state.head_hash


def test_keys_are_deterministic_per_name_and_rotation() -> None:
    assert scenario_keys("A").device_id == scenario_keys("A").device_id
    assert scenario_keys("A").device_id != scenario_keys("B").device_id
    assert scenario_keys("A", 1).device_id != scenario_keys("A").device_id


def test_a_statement_that_breaks_a_rule_raises_the_real_error() -> None:
    mesh = build("genesis A B C t=2")

    with pytest.raises(ThresholdNotMet):
        mesh.run("add D by A")
    with pytest.raises(InvalidInput, match="Unknown scenario statement"):
        mesh.run("teleport D")


def test_branches_share_history_and_then_fork() -> None:
    mesh = build("genesis A B C t=2")
    other = mesh.branch().run("vault by B")
    mesh.run("vault by A")

    assert mesh.entries()[0] == other.entries()[0]
    assert mesh.state.head_hash != other.state.head_hash
    assert mesh.state.position == other.state.position == 1
