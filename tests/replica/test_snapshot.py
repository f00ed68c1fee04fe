"""A replica started from a snapshot and the later ops equals one that saw
every op."""

from __future__ import annotations

from pathlib import Path

from meshd.crypto.encoding import Signed
from meshd.crypto.suite import DeviceKeys
from meshd.replica import Replica, Verdict

from .replica_harness import START, Mesh


def test_a_new_device_starts_from_a_snapshot_plus_later_ops(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 3)
    laptop, phone, _ = mesh.replicas
    laptop.local_set("settings/conflict_resolution", "manual", START)
    for second in range(20):
        mesh.replicas[second % 2].local_set(
            f"profile/k{second % 5}", second, START + second
        )
    laptop.local_set("profile/name", "Alice", START + 30)
    phone.local_set("profile/name", "Alice S.", START + 31)  # concurrent: a conflict
    mesh.deliver(1, 0, START + 40)

    # A new device joins; the snapshot written for the new members covers it.
    newcomer_keys = DeviceKeys.generate()
    mesh.view.add(newcomer_keys)
    laptop.membership_changed(START + 41)
    snapshot = laptop.newest_snapshot()
    assert snapshot is not None
    laptop.local_set("profile/k9", "after", START + 42)
    mesh.deliver(0, 2, START + 43)
    mesh.deliver(1, 2, START + 43)

    newcomer = Replica.open(tmp_path / "newcomer.sqlite3", newcomer_keys, mesh.view)
    assert newcomer.load_snapshot(snapshot, START + 44).verdict is Verdict.ACCEPTED
    for data in laptop.ops_since(newcomer.version_vector()):
        newcomer.ingest(data, START + 45)

    everything = mesh.replicas[2]
    assert newcomer.passport() == everything.passport()
    assert [c.to_json() for c in newcomer.conflicts()] == [
        c.to_json() for c in everything.conflicts()
    ]
    assert "profile/name" in {c.path for c in newcomer.conflicts()}
    assert newcomer.version_vector() == everything.version_vector()
    assert newcomer.materialized_state_is_consistent()


def test_old_ops_not_wrapped_to_a_newcomer_are_covered_by_the_snapshot(
    tmp_path: Path,
) -> None:
    mesh = Mesh(tmp_path, 2)
    mesh.replicas[0].local_set("profile/name", "Alice", START)
    newcomer_keys = DeviceKeys.generate()
    mesh.view.add(newcomer_keys)
    newcomer = Replica.open(tmp_path / "newcomer.sqlite3", newcomer_keys, mesh.view)
    [old] = mesh.replicas[0].ops_since({})
    assert newcomer.ingest(old, START + 1).reason == "not_a_recipient"

    snapshot = mesh.replicas[0].make_snapshot(START + 2)
    newcomer.load_snapshot(snapshot, START + 3)
    assert newcomer.get("profile/name") == "Alice"
    assert newcomer.held() == []


def test_a_snapshot_is_written_every_k_ops(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2, snapshot_every=5)
    for second in range(4):
        mesh.replicas[0].local_set("profile/name", second, START + second)
    assert mesh.replicas[0].newest_snapshot() is None
    mesh.replicas[0].local_set("profile/name", "five", START + 5)
    assert mesh.replicas[0].newest_snapshot() is not None


def test_an_older_snapshot_changes_nothing(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    mesh.replicas[0].local_set("profile/name", "Alice", START)
    snapshot = mesh.replicas[0].make_snapshot(START + 1)
    mesh.sync_all(START + 2)
    decision = mesh.replicas[1].load_snapshot(snapshot, START + 3)
    assert (decision.verdict, decision.reason) == (Verdict.DUPLICATE, "not_newer")


def test_a_tampered_or_foreign_snapshot_is_rejected(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    mesh.replicas[0].local_set("profile/name", "Alice", START)
    snapshot = mesh.replicas[0].make_snapshot(START + 1)
    signed = Signed.decode(snapshot, 8 << 20)
    body = bytearray(signed.body)
    body[-3] ^= 1
    tampered = Signed(bytes(body), signed.signatures).encode()
    decision = mesh.replicas[1].load_snapshot(tampered, START + 2)
    assert decision.verdict is Verdict.REJECTED

    (tmp_path / "other").mkdir()
    stranger = Mesh(tmp_path / "other", 1)
    stranger.replicas[0].local_set("profile/name", "Mallory", START)
    foreign = stranger.replicas[0].make_snapshot(START + 1)
    decision = mesh.replicas[1].load_snapshot(foreign, START + 2)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "wrong_mesh")
    assert mesh.replicas[1].passport() == {}


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2, snapshot_every=2)
    for second in range(10):
        mesh.replicas[0].local_set("profile/name", second, START + second)
    assert mesh.replicas[0].store.snapshot_count() == 2
