"""Random sequences of proposals and approvals, as a state machine: the mesh
never falls below its threshold, and devices that see the same entries in
any order (forks included) reach the same state."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meshd.crypto.encoding import Signed
from meshd.errors import MeshError
from meshd.mesh.log import MeshLog
from meshd.mesh.proposals import approval_for, finalize, propose
from meshd.mesh.records import THRESHOLD
from meshd.mesh.scenario import build

NAMES = ["A", "B", "C", "D", "E", "F"]
approvers = st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True)


class MeshMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mesh = build("genesis A B C t=2")
        self.seen: list[Signed] = list(self.mesh.entries())

    def _try(self, statement: str) -> None:
        with contextlib.suppress(MeshError):
            self.seen.append(self.mesh.step(statement.split()))

    @rule(name=st.sampled_from(NAMES), by=approvers)
    def enroll(self, name: str, by: list[str]) -> None:
        self._try(f"add {name} by {','.join(by)}")

    @rule(name=st.sampled_from(NAMES), by=approvers)
    def revoke(self, name: str, by: list[str]) -> None:
        self._try(f"revoke {name} by {','.join(by)}")

    @rule(threshold=st.integers(1, 5), by=approvers)
    def set_threshold(self, threshold: int, by: list[str]) -> None:
        self._try(f"threshold {threshold} by {','.join(by)}")

    @rule(by=st.sampled_from(NAMES))
    def rotate_vault(self, by: str) -> None:
        self._try(f"vault by {by}")

    @rule(
        threshold=st.integers(1, 4),
        first=st.sampled_from(NAMES),
        second=st.sampled_from(NAMES),
    )
    def two_finalizers(self, threshold: int, first: str, second: str) -> None:
        """Two devices finalize the same approvals at once: a fork."""
        state, active = self.mesh.state, self.mesh.active_names()
        with contextlib.suppress(MeshError):
            proposal = propose(
                state, self.mesh.key(active[0]), THRESHOLD, 0, threshold=threshold
            )
            approvals = [
                approval_for(state, proposal, self.mesh.key(name), 0)
                for name in active[: state.threshold]
            ]
            for name in (first, second):
                keys = self.mesh.key(name)
                entry = finalize(state.read_directory(keys), proposal, approvals, keys)
                self.seen.append(entry)
                with contextlib.suppress(MeshError):
                    self.mesh.mesh.apply(entry)

    @invariant()
    def never_below_threshold(self) -> None:
        state = self.mesh.state
        assert 1 <= state.threshold <= len(state.active_ids())
        # One device alone never changes a mesh of several.
        assert state.threshold > 1 or len(state.active_ids()) == 1

    @rule(data=st.data())
    def any_order_gives_the_same_state(self, data: st.DataObject) -> None:
        rest = data.draw(st.permutations(self.seen[1:]))
        log = MeshLog(self.seen[0])
        for entry in rest:
            with contextlib.suppress(MeshError):
                log.receive(entry)

        assert log.head == self.mesh.state.head_hash
        assert log.state.active_ids() == self.mesh.state.active_ids()
        assert log.state.threshold == self.mesh.state.threshold
        assert log.state.equivocators == self.mesh.state.equivocators


MeshMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMeshMachine = MeshMachine.TestCase
