"""Two ops of one device at one sequence: the first accepted stays everywhere.

A device whose home was copied (a backup restored while the original still
runs) signs two different ops with the same sequence. Each replica keeps the
one it accepted first and refuses the other with ``op_equivocation``, the
evidence that status shows.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

from meshd.replica import Replica, Verdict

from .replica_harness import START, Mesh

OP_EQUIVOCATION = "op_equivocation"


class ClonedMesh(Mesh):
    """Device 0 and a copy of its store, both writing; device 1 observes."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, 2)
        self.replicas[0].local_set("profile/name", "Alice", START)
        self.shared = self.replicas[0].ops_since({})
        self.replicas[0].close()
        original = directory / "device-0.sqlite3"
        shutil.copy(original, directory / "copy.sqlite3")
        self.replicas[0] = self.open(0)
        self.copy = Replica.open(
            directory / "copy.sqlite3", self.keys[0], self.view, self.settings
        )
        self.observers: list[Replica] = []

    def observer(self) -> Replica:
        """A fresh replica of device 1 that holds the shared first op."""
        index = len(self.observers)
        replica = Replica.open(
            self.directory / f"observer-{index}.sqlite3",
            self.keys[1],
            self.view,
            self.settings,
        )
        for data in self.shared:
            replica.ingest(data, START)
        self.observers.append(replica)
        return replica

    def rename_on_both(self) -> None:
        """The original and the copy each set a different name at sequence 2."""
        self.replicas[0].local_set("profile/name", "Alice at home", START + 1)
        self.copy.local_set("profile/name", "Alice on the copy", START + 2)

    def close(self) -> None:
        super().close()
        for replica in [self.copy, *self.observers]:
            replica.close()


def writes_of(replica: Replica, since: int) -> list[bytes]:
    """The ops ``replica`` wrote after its own sequence ``since``."""
    me = replica.keys.device_id
    return replica.ops_since({me: since})


def test_the_second_op_at_a_taken_sequence_is_refused_in_either_order(
    tmp_path: Path,
) -> None:
    mesh = ClonedMesh(tmp_path)
    mesh.rename_on_both()
    [original] = writes_of(mesh.replicas[0], 1)
    [copied] = writes_of(mesh.copy, 1)

    for first, second, kept in [
        (original, copied, "Alice at home"),
        (copied, original, "Alice on the copy"),
    ]:
        observer = mesh.observer()
        assert observer.ingest(first, START + 3).verdict is Verdict.ACCEPTED
        refused = observer.ingest(second, START + 3)
        assert (refused.verdict, refused.reason) == (Verdict.REJECTED, OP_EQUIVOCATION)
        assert refused.author == mesh.keys[0].device_id
        assert refused.sequence == 2
        assert observer.get("profile/name") == kept

        # Delivering both again, in any order, changes nothing.
        for data in (second, first, second):
            observer.ingest(data, START + 4)
        assert observer.get("profile/name") == kept
        assert observer.materialized_state_is_consistent()
    mesh.close()


def test_every_delivery_order_leaves_each_replica_stable(tmp_path: Path) -> None:
    mesh = ClonedMesh(tmp_path)
    for second, replica in enumerate([mesh.replicas[0], mesh.copy]):
        replica.local_set("profile/email", f"copy-{second}@example.org", START + 1)
        replica.local_set("settings/theme", f"theme-{second}", START + 2)
    ops = writes_of(mesh.replicas[0], 1) + writes_of(mesh.copy, 1)

    for order in itertools.permutations(ops):
        observer = mesh.observer()
        decisions = [observer.ingest(data, START + 3) for data in order]
        passport = observer.passport()
        vector = observer.version_vector()

        # One op per sequence was kept; every other was refused as evidence.
        refused = [d for d in decisions if d.verdict is Verdict.REJECTED]
        assert {d.reason for d in refused} == {OP_EQUIVOCATION}
        assert vector[mesh.keys[0].device_id] == 3
        assert not observer.held()

        # Any later delivery, of either side, moves nothing.
        for data in [*reversed(order), *order]:
            decision = observer.ingest(data, START + 5)
            assert decision.verdict in (Verdict.DUPLICATE, Verdict.REJECTED)
        assert observer.passport() == passport
        assert observer.version_vector() == vector
    mesh.close()


def test_ops_after_an_equivocation_in_one_batch_are_refused_with_it(
    tmp_path: Path,
) -> None:
    mesh = ClonedMesh(tmp_path)
    mesh.rename_on_both()
    mesh.copy.local_set("profile/email", "copy@example.org", START + 3)
    observer = mesh.observer()
    observer.ingest_many(writes_of(mesh.replicas[0], 1), START + 4)

    # The copy's segment: sequence 2 is taken, and 3 was made on the copy's 2.
    decisions = observer.ingest_many(writes_of(mesh.copy, 1), START + 4)

    assert [(d.sequence, d.reason) for d in decisions] == [
        (2, OP_EQUIVOCATION),
        (3, OP_EQUIVOCATION),
    ]
    assert observer.passport() == {"profile": {"name": "Alice at home"}}
    mesh.close()
