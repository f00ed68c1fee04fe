"""What syncing a passport costs: storage requests and the time to see a write.

Devices are in-process :class:`~meshd.node.MeshNode` parties, each with its
own home, SQLite store and storage backend, exactly as the daemon runs them
(see ``tests/sync/meshes.py``). S3 requests are counted on the server side,
on a moto S3 server on loopback, so any request a client library adds on its
own is counted too.

1. One-op push: after a two-device mesh has settled, ``passport.set`` on one
   device (which pushes at once) costs at most 3 requests.
2. Idle poll: a sync round with nothing new costs at most 1 LIST and no GET.
3. A new device recovering a passport of N ops (10,000 at full scale) from
   S3: from its enrollment request until its passport equals the writer's,
   it sends at most 20 GETs (a snapshot and the segments after it, not one
   read per op or per segment of the whole history).
4. A write on one device readable on the other over folder storage, after a
   ``sync`` on both: median milliseconds, goal <= 100 ms; the baseline is a
   bare folder write and read of the same number of bytes.

Run with ``python -m bench.bench_sync``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

# Run from a checkout: the S3 server and the test meshes live in tests/.
_PROJECT = str(Path(__file__).resolve().parents[1])
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from bench.bench_support import figure, sized  # noqa: E402
from meshd.sync.layout import SegmentName, SnapshotName  # noqa: E402
from tests.s3server import S3Server, running_s3_server  # noqa: E402
from tests.sync.meshes import Party, close_all, new_party, sync_all  # noqa: E402

PUSH_GOAL = 3
POLL_LIST_GOAL = 1
POLL_GET_GOAL = 0
RECOVERY_GET_GOAL = 20
VISIBLE_GOAL_MS = 100.0

# A few ops per passport path, as a person editing the same fields over time.
OPS_PER_PATH = 4
# A new device catches up in a few rounds; more means it is not converging.
MAX_CATCH_UP_ROUNDS = 10


def _count(name: str, value: int, goal: int, detail: str) -> dict[str, Any]:
    """A request count held to ``<= goal``; ``detail`` says what was sent."""
    row = figure(name, value, None, None, f"<= {goal}", value <= goal, "requests")
    return {**row, "detail": detail}


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)


async def _settled_pair(root: Path, storage_url: str) -> list[Party]:
    """Phone and laptop in one mesh (threshold 1), both synced."""
    phone, laptop = new_party(root, "phone"), new_party(root, "laptop")
    await phone.node.create("alice", storage_url, "phone", "phone")
    await _join(laptop, phone)
    await sync_all([phone, laptop])
    return [phone, laptop]


async def _join(new: Party, sponsor: Party) -> None:
    """``new`` asks to join with the sponsor's invite; the sponsor types the code."""
    invite = (await sponsor.node.invite())["invite"]
    request = await new.node.request_enrollment(invite, new.name, "laptop")
    await sponsor.sync()
    await sponsor.node.approve(request["request_id"], request["code"])
    await new.sync()


# -- 1 and 2: a one-op push and an idle poll on S3 --------------------------------


async def _push_and_poll(server: S3Server, root: Path) -> list[dict[str, Any]]:
    bucket = server.new_bucket("meshd-bench-sync")
    phone, laptop = await _settled_pair(root, f"s3://{bucket}/meshes")
    try:
        # The push: passport.set syncs at once.
        server.log.clear()
        await phone.node.passport_set("profile/name", "Alice")
        push = server.log.counts(bucket)

        # Both devices take in the write; then a round with nothing new.
        await sync_all([laptop, phone])
        server.log.clear()
        await laptop.sync()
        poll = server.log.counts(bucket)
    finally:
        close_all([phone, laptop])
    return [
        _count(
            "one-op push (passport.set): S3 requests",
            sum(push.values()),
            PUSH_GOAL,
            _kinds(push),
        ),
        _count(
            "idle poll: S3 LIST requests", poll["LIST"], POLL_LIST_GOAL, _kinds(poll)
        ),
        _count("idle poll: S3 GET requests", poll["GET"], POLL_GET_GOAL, _kinds(poll)),
    ]


# -- 3: a new device recovers a long history ----------------------------------------


def _write_history(writer: Party, ops: int) -> None:
    """``ops`` passport writes, a few per path, without a sync between them."""
    _, replica = writer.node.device.require_member()
    paths = max(1, ops // OPS_PER_PATH)
    for number in range(ops):
        replica.local_set(
            f"profile/notes/n{number % paths}",
            f"edit {number}",
            writer.node.device.clock(),
        )


async def _catch_up(new: Party, writer: Party) -> int:
    """Rounds on ``new`` until its passport equals the writer's."""
    wanted = await writer.passport()
    for round_number in range(1, MAX_CATCH_UP_ROUNDS + 1):
        await new.sync()
        if new.node.device.state_name == "member" and await new.passport() == wanted:
            return round_number
    raise RuntimeError(
        f"the new device did not catch up in {MAX_CATCH_UP_ROUNDS} rounds"
    )


async def _recovery(server: S3Server, root: Path, ops: int) -> list[dict[str, Any]]:
    bucket = server.new_bucket("meshd-bench-sync")
    writer, new = new_party(root, "writer"), new_party(root, "newcomer")
    try:
        await writer.node.create("alice", f"s3://{bucket}/meshes", "phone", "phone")
        _write_history(writer, ops)
        await writer.sync()

        # Only the new device's requests are counted: its request, then its
        # rounds after the writer approved it.
        invite = (await writer.node.invite())["invite"]
        server.log.clear()
        request = await new.node.request_enrollment(invite, "newcomer", "laptop")
        asked = server.log.counts(bucket)
        await writer.sync()
        await writer.node.approve(request["request_id"], request["code"])
        server.log.clear()
        rounds = await _catch_up(new, writer)
        caught_up = server.log.counts(bucket)
        stored = await _stored_kinds(writer)
    finally:
        close_all([writer, new])
    detail = (
        f"request: {_kinds(asked)}; catching up ({rounds} round(s)): "
        f"{_kinds(caught_up)}; storage holds {stored}"
    )
    gets = asked["GET"] + caught_up["GET"]
    name = f"new device recovers {ops} ops: S3 GETs"
    return [_count(name, gets, RECOVERY_GET_GOAL, detail)]


async def _stored_kinds(party: Party) -> str:
    """What the mesh folder holds, by kind (counted after the measure)."""
    names = await party.backend.list()
    segments = sum(isinstance(name, SegmentName) for name in names)
    snapshots = sum(isinstance(name, SnapshotName) for name in names)
    return f"{segments} segments, {snapshots} snapshots"


# -- 4: a write on one device readable on the other, over a folder ------------------


async def _write_to_read(phone: Party, laptop: Party, number: int) -> float:
    """Seconds from ``passport.set`` on the phone to the value on the laptop."""
    value = f"visible {number}"
    started = time.perf_counter()
    await phone.node.passport_set("profile/status", value)
    await phone.sync()
    await laptop.sync()
    seen = await laptop.node.passport_get("profile/status")
    elapsed = time.perf_counter() - started
    if seen != value:
        raise RuntimeError("the laptop did not see the phone's write after a sync")
    return elapsed


def _bare_write_read(folder: Path, size: int) -> Callable[[], float]:
    """A timer of the floor: write ``size`` bytes durably, then read them."""
    data = os.urandom(size)
    target = folder / "bare.bin"

    def timed() -> float:
        started = time.perf_counter()
        with open(target, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target.read_bytes() != data:
            raise RuntimeError("the folder returned other bytes")
        return time.perf_counter() - started

    return timed


def _stored_files(folder: Path) -> dict[Path, tuple[int, int]]:
    """Size and modification time of every file under ``folder``."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            status = path.stat()
            found[path] = (status.st_size, status.st_mtime_ns)
    return found


async def _visible(root: Path, repeats: int) -> dict[str, Any]:
    storage = root / "storage"
    storage.mkdir(parents=True)
    phone, laptop = await _settled_pair(root, str(storage))
    try:
        # The bytes one write puts in storage (new objects and the rewritten
        # head), for the bare baseline.
        before = _stored_files(storage)
        await _write_to_read(phone, laptop, 0)
        written = [
            size
            for path, (size, changed) in _stored_files(storage).items()
            if before.get(path, (0, 0))[1] != changed
        ]
        size = max(1, sum(written))

        bare = _bare_write_read(root, size)
        ours: list[float] = []
        floor: list[float] = []
        for number in range(1, repeats + 1):
            ours.append(await _write_to_read(phone, laptop, number))
            floor.append(bare())
    finally:
        close_all([phone, laptop])
    value = statistics.median(ours) * 1000
    baseline = statistics.median(floor) * 1000
    row = figure(
        "write on A readable on B over a folder, after sync on both",
        value,
        baseline,
        value / baseline if baseline else None,
        f"<= {VISIBLE_GOAL_MS:g} ms",
        value <= VISIBLE_GOAL_MS,
        "ms",
    )
    detail = f"median of {repeats}; {size} bytes stored per write; baseline: bare"
    return {**row, "detail": f"{detail} fsync'd write and read of as many bytes"}


async def _measure(ops: int, repeats: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="meshd-bench-sync-") as temporary:
        root = Path(temporary)
        with running_s3_server() as server:
            figures = await _push_and_poll(server, root / "pair")
            figures += await _recovery(server, root / "recovery", ops)
        figures.append(await _visible(root / "folder", repeats))
    return figures


def run() -> dict[str, Any]:
    """Every sync figure, at the scale ``MESHD_BENCH_SCALE`` asks for."""
    ops = int(sized(10_000, 200))
    repeats = int(sized(21, 5))
    return {"figures": trio.run(_measure, ops, repeats)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
