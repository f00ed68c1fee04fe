"""Replicas converge, whatever order and however often ops arrive."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.crypto.suite import DeviceKeys
from meshd.errors import DeviceRevoked, NotFound
from meshd.replica import Replica, Verdict

from .replica_harness import START, Mesh

PATHS = ["profile/name", "profile/email", "capabilities/read", "settings/theme"]

edits = st.lists(
    st.tuples(
        st.sampled_from(["edit", "edit", "edit", "deliver"]),
        st.integers(0, 2),
        st.integers(0, 2),
        st.sampled_from(PATHS),
        st.one_of(st.none(), st.integers(0, 5), st.text(max_size=5)),
        st.integers(0, 120),
    ),
    min_size=1,
    max_size=14,
)


def run_scenario(
    directory: Path, count: int, steps: list[tuple], seed: int, manual: bool
) -> Mesh:
    mesh = Mesh(directory, count)
    rng = random.Random(seed)
    if manual:
        mesh.replicas[0].local_set("settings/conflict_resolution", "manual", START)
        mesh.sync_all(START)
    now = START
    for action, first, second, path, value, seconds in steps:
        now += seconds
        first, second = first % count, second % count
        if action == "deliver":
            mesh.deliver(first, second, now, rng)
        elif value is None:
            mesh.replicas[first].local_delete(path, now)
        else:
            mesh.replicas[first].local_set(path, value, now)
    mesh.sync_all(now + 1, rng)
    return mesh


def assert_converged(mesh: Mesh) -> None:
    first = mesh.replicas[0]
    for other in mesh.replicas[1:]:
        assert other.passport() == first.passport()
        assert [c.to_json() for c in other.conflicts()] == [
            c.to_json() for c in first.conflicts()
        ]
        assert other.version_vector() == first.version_vector()
        assert not other.held()


@settings(max_examples=15, deadline=None)
@given(steps=edits, seed=st.integers(0, 1000), count=st.sampled_from([2, 3]))
def test_concurrent_offline_edits_converge_to_one_passport(steps, seed, count) -> None:
    with tempfile.TemporaryDirectory() as directory:
        mesh = run_scenario(Path(directory), count, steps, seed, manual=False)
        assert_converged(mesh)
        assert mesh.replicas[0].conflicts() == []
        mesh.close()


@settings(max_examples=15, deadline=None)
@given(steps=edits, seed=st.integers(0, 1000), count=st.sampled_from([2, 3]))
def test_manual_mode_shows_the_same_conflicts_everywhere_and_resolve_settles_them(
    steps, seed, count
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        mesh = run_scenario(Path(directory), count, steps, seed, manual=True)
        assert_converged(mesh)

        # The person resolves every conflict on one device, picking the oldest
        # candidate (not the provisional winner, so the choice is visible).
        now = START + 10_000
        chosen = {}
        for conflict in mesh.replicas[-1].conflicts():
            pick = min(conflict.candidates, key=lambda c: c.rank)
            chosen[conflict.path] = pick
            mesh.replicas[-1].resolve(conflict.conflict_id, pick.op_id, now)
        mesh.sync_all(now + 1, random.Random(seed))
        assert_converged(mesh)
        assert mesh.replicas[0].conflicts() == []
        for path, pick in chosen.items():
            if pick.deleted:
                with pytest.raises(NotFound):
                    mesh.replicas[0].get(path)
            else:
                assert mesh.replicas[0].get(path) == pick.to_json()["value"]
        mesh.close()


def test_two_offline_edits_of_one_path_become_one_conflict(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    laptop, phone = mesh.replicas
    laptop.local_set("settings/conflict_resolution", "manual", START)
    mesh.sync_all(START)
    laptop.local_set("profile/name", "Alice", START + 10)
    phone.local_set("profile/name", "Alice Smith", START + 20)
    mesh.sync_all(START + 30)

    [conflict] = laptop.conflicts()
    assert conflict.path == "profile/name"
    assert {c.to_json()["value"] for c in conflict.candidates} == {
        "Alice",
        "Alice Smith",
    }
    assert laptop.get("profile/name") == "Alice Smith"  # provisional: newest
    assert [c.conflict_id for c in phone.conflicts()] == [conflict.conflict_id]


def test_newest_signature_wins_by_default(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    laptop, phone = mesh.replicas
    laptop.local_set("profile/name", "Alice", START + 10)
    phone.local_set("profile/name", "Alice Smith", START + 20)
    mesh.sync_all(START + 30)
    assert laptop.passport() == phone.passport() == {"profile": {"name": "Alice Smith"}}
    assert laptop.conflicts() == []


def test_a_device_whose_clock_runs_an_hour_ahead_cannot_win_every_write(
    tmp_path: Path,
) -> None:
    mesh = Mesh(tmp_path, 3)
    honest, skewed, observer = mesh.replicas
    skewed.local_set("profile/name", "Mallory", START + 3600)  # clock +1 hour
    honest.local_set("profile/name", "Alice", START + 60)  # a minute later, truly
    mesh.deliver(1, 2, START + 61)
    mesh.deliver(0, 2, START + 61)

    assert observer.get("profile/name") == "Alice"
    assert [reason for _, reason in observer.held()] == ["clock_ahead"]

    # The observer's own clock did not jump to the held timestamp, so its next
    # edit still beats the skewed one once that one is accepted.
    observer.local_set("profile/name", "Alice S.", START + 120)
    assert observer.retry_held(START + 120) == 0
    mesh.deliver(2, 0, START + 121)
    assert honest.get("profile/name") == "Alice S."


def test_revoked_device_ops_after_cutoff_are_rejected_everywhere(
    tmp_path: Path,
) -> None:
    mesh = Mesh(tmp_path, 3)
    laptop, thief, phone = mesh.replicas
    thief.local_set("profile/name", "kept", START)
    mesh.sync_all(START + 1)
    thief.local_set("profile/email", "stolen@example.org", START + 2)

    # The owner revokes the stolen device, accepting its ops up to sequence 1.
    mesh.view.revoke(mesh.keys[1].device_id, cutoff=1)
    phone.ingest(thief.ops_since(phone.version_vector())[0], START + 3)
    for replica in (laptop, phone):
        assert replica.passport() == {"profile": {"name": "kept"}}
    with pytest.raises(DeviceRevoked):
        thief.local_set("profile/name", "again", START + 4)


def test_a_revoked_op_accepted_before_the_revocation_is_dropped(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 3)
    laptop, thief, _ = mesh.replicas
    thief.local_set("profile/name", "kept", START)
    thief.local_set("profile/name", "stolen", START + 1)
    mesh.deliver(1, 0, START + 2)
    assert laptop.get("profile/name") == "stolen"

    mesh.view.revoke(mesh.keys[1].device_id, cutoff=1)
    assert laptop.membership_changed(START + 3) == 1
    assert laptop.get("profile/name") == "kept"
    assert laptop.materialized_state_is_consistent()


def test_a_replica_reopens_with_the_same_state(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    mesh.replicas[0].local_set("profile/name", "Alice", START)
    mesh.replicas[0].local_set("capabilities/read", {"scope": "all"}, START + 1)
    before = mesh.replicas[0].passport()
    mesh.replicas[0].close()
    reopened = mesh.open(0)
    assert reopened.passport() == before
    reopened.local_set("profile/name", "Alice S.", START + 2)
    assert reopened.version_vector() == {mesh.keys[0].device_id: 3}


def test_get_and_delete_behave_like_a_document(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    replica = mesh.replicas[0]
    replica.local_set("profile/name", "Alice", START)
    assert replica.get("profile") == {"name": "Alice"}
    replica.local_delete("profile/name", START + 1)
    with pytest.raises(NotFound):
        replica.get("profile/name")


def test_ops_arriving_before_their_predecessors_are_applied_later(
    tmp_path: Path,
) -> None:
    mesh = Mesh(tmp_path, 2)
    for second in range(3):
        mesh.replicas[0].local_set("profile/name", f"v{second}", START + second)
    ops = mesh.replicas[0].ops_since({})
    target: Replica = mesh.replicas[1]
    verdicts = [target.ingest(data, START + 5).verdict for data in reversed(ops)]
    assert verdicts == [Verdict.HELD, Verdict.HELD, Verdict.ACCEPTED]
    assert target.get("profile/name") == "v2"
    assert not target.held()


def test_an_op_under_a_newer_mesh_head_waits_for_the_mesh_log(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 3)
    behind_view = mesh.view.copy_up_to(mesh.view.position)
    behind = mesh.open(2, behind_view)
    mesh.view.add(DeviceKeys.generate())
    mesh.replicas[0].local_set("profile/name", "Alice", START)

    [data] = mesh.replicas[0].ops_since({})
    decision = behind.ingest(data, START + 1)
    assert (decision.verdict, decision.reason) == (Verdict.HELD, "unknown_head")

    behind_view.catch_up(mesh.view)
    behind.membership_changed(START + 2)
    assert behind.get("profile/name") == "Alice"
    assert behind.held() == []


def test_a_flood_of_ops_from_the_future_fills_the_hold_and_the_rest_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = Mesh(tmp_path, 3, max_held_ops=3)
    flooder, first, second = mesh.replicas
    for index in range(5):
        flooder.local_set(f"profile/k{index}", index, START + 3600 + index)
    flood = flooder.ops_since({})

    with caplog.at_level("WARNING", logger="meshd.replica.replica"):
        decisions = first.ingest_many(flood, START)
    second.ingest_many(flood, START)

    assert [(d.verdict, d.reason) for d in decisions[3:]] == [
        (Verdict.REJECTED, "hold_full"),
        (Verdict.REJECTED, "hold_full"),
    ]
    assert [d.verdict for d in decisions[:3]] == [Verdict.HELD] * 3
    assert "hold full: 2 ops refused" in caplog.text
    # Which ops stay depends only on the order they came in.
    assert first.held() == second.held()
    assert {op_id for op_id, _ in first.held()} == {d.op_id for d in decisions[:3]}


def test_a_full_hold_stays_full_after_a_restart_and_frees_up_as_time_passes(
    tmp_path: Path,
) -> None:
    mesh = Mesh(tmp_path, 2, max_held_ops=2)
    for index in range(3):
        mesh.replicas[0].local_set(f"profile/k{index}", index, START + 3600)
    flood = mesh.replicas[0].ops_since({})
    mesh.replicas[1].ingest_many(flood[:2], START)
    mesh.replicas[1].close()
    reopened = mesh.open(1)

    # An op already held may arrive again; a new one finds no room.
    assert reopened.ingest(flood[0], START).verdict is Verdict.HELD
    assert reopened.ingest(flood[2], START).reason == "hold_full"

    # Once the clock reaches the ops, the hold empties and the refused op fits.
    assert reopened.retry_held(START + 3600) == 2
    assert reopened.ingest(flood[2], START + 3600).verdict is Verdict.ACCEPTED
    assert reopened.get("profile") == {"k0": 0, "k1": 1, "k2": 2}
    reopened.close()


def test_the_hold_is_capped_in_bytes_too(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2, max_held_bytes=10_000)
    author, observer = mesh.replicas
    author.local_set("profile/small", "x", START + 3600)
    author.local_set("profile/large", "x" * 20_000, START + 3600)
    small, large = author.ops_since({})
    assert len(small) < 10_000 < len(large)

    decisions = observer.ingest_many([small, large], START)

    assert [d.reason for d in decisions] == ["clock_ahead", "hold_full"]
    assert len(observer.held()) == 1
