"""The mesh state as a value: every accepted entry leaves the states before
it as they were, however the state after it was built."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshd.mesh.scenario import build
from meshd.mesh.state import entry_hash, evolved


def test_states_before_a_change_keep_their_members_and_threshold() -> None:
    mesh = build("genesis A B C t=2; threshold 3 by A,B")
    before_changes = mesh.state.head_hash
    mesh.run("threshold 2 by A,B,C; add D by A,B; revoke C by A,D")

    assert mesh.log is not None
    earlier = mesh.log.state_at(before_changes)
    assert earlier is not None
    assert earlier.threshold == 3
    assert earlier.member(mesh.id("D")) is None
    assert sorted(earlier.active_ids()) == sorted(mesh.id(n) for n in "ABC")
    assert mesh.state.member(mesh.id("C")).active is False  # type: ignore[union-attr]


def test_an_evolved_state_equals_the_replaced_one() -> None:
    state = build("genesis A B C t=2; vault by A").state
    head = entry_hash(build("genesis A B t=2").entries()[0])

    changes = {"head_hash": head, "threshold": 1, "last_kind": "x"}
    derived = evolved(state, **changes)
    assert derived == replace(state, **changes)  # type: ignore[arg-type]
    assert state.threshold == 2


def test_evolving_a_field_the_state_does_not_have_is_refused() -> None:
    state = build("genesis A B t=2").state

    with pytest.raises(TypeError, match="tresHold"):
        evolved(state, tresHold=3)
