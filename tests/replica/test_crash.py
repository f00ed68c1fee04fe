"""A writer killed at any point loses no acknowledged op and leaves no
half-applied change."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path

from meshd.replica import Replica

from .replica_harness import START, Mesh

RUNS = 50
WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).parents[2]


def make_fixture(directory: Path) -> tuple[Path, Mesh]:
    """Ops from two devices editing concurrently, in a slightly shuffled
    order so that some are held and released on the way."""
    mesh = Mesh(directory, 3)
    now = START
    for round_number in range(40):
        for index in (0, 1):
            now += 1
            path = random.choice(
                ["profile/name", "settings/theme", f"profile/x{index}"]
            )
            mesh.replicas[index].local_set(path, round_number, now)
        if round_number % 7 == 0:
            mesh.deliver(0, 1, now)
            mesh.deliver(1, 0, now)
    mesh.deliver(1, 0, now)
    ops = mesh.replicas[0].ops_since({})
    for start in range(0, len(ops) - 4, 4):
        window = ops[start : start + 4]
        random.shuffle(window)
        ops[start : start + 4] = window
    keys = mesh.keys[2]
    fixture = directory / "fixture.pickle"
    fixture.write_bytes(
        pickle.dumps((keys.signing_seed, keys.encryption_secret, mesh.view, ops))
    )
    return fixture, mesh


def start_writer(fixture: Path, store: Path) -> subprocess.Popen[bytes]:
    environment = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(fixture), str(store)],
        stdout=subprocess.PIPE,
        env=environment,
    )


def run_and_kill(fixture: Path, store: Path, delay: float) -> tuple[list[str], int]:
    """Start the writer, kill it after ``delay`` seconds; return the acked op
    ids and how many ops it answered."""
    child = start_writer(fixture, store)
    assert child.stdout is not None
    child.stdout.readline()  # "ready": killing before it tests little
    time.sleep(delay)
    child.kill()
    output = child.stdout.read().decode()
    child.wait()
    acked = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "accepted":
            acked.append(parts[1])
    return acked, len(output.splitlines())


def full_ingest_seconds(fixture: Path, store: Path) -> float:
    """How long the writer takes from "ready" to its end on this machine, so
    kills are spread over the ingest however fast or loaded the machine is."""
    child = start_writer(fixture, store)
    assert child.stdout is not None
    child.stdout.readline()
    started = time.monotonic()
    child.stdout.read()
    assert child.wait(60) == 0
    return time.monotonic() - started


def test_sigkill_during_ingest_loses_no_acknowledged_op(tmp_path: Path) -> None:
    fixture, mesh = make_fixture(tmp_path)
    rng = random.Random(7)
    # The faster of two measurements, so that one slow start on a busy
    # machine does not push most kills past the end.
    window = 0.9 * min(
        full_ingest_seconds(fixture, tmp_path / f"calibration-{attempt}.sqlite3")
        for attempt in range(2)
    )
    acked: set[str] = set()
    store = tmp_path / "writer-0.sqlite3"
    total = len(pickle.loads(fixture.read_bytes())[3])
    interrupted = 0
    for run in range(RUNS):
        # Most runs start a fresh store, so kills land all along the ingest
        # and in the store's creation and schema migration; every fifth run
        # restarts on the store the run before was killed in, which then has
        # less left to do and is often let finish.
        if run % 5 != 4:
            store = tmp_path / f"writer-{run}.sqlite3"
            acked = set()
        new, answered = run_and_kill(fixture, store, rng.uniform(0.0, window))
        acked |= set(new)
        interrupted += answered < total

        replica = Replica.open(store, mesh.keys[2], mesh.view)
        assert acked <= set(replica.store.op_ids())
        assert replica.materialized_state_is_consistent()
        replica.close()

    assert interrupted >= RUNS // 2  # the kills really landed mid-ingest

    # The last store, finished off, equals a replica that saw everything.
    replica = Replica.open(store, mesh.keys[2], mesh.view)
    replica.ingest_many(pickle.loads(fixture.read_bytes())[3], START + 100)
    assert replica.passport() == mesh.replicas[0].passport()
