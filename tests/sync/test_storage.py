"""The storage backend on real folders, a real S3 server and fsspec's memory
store: the same behaviour everywhere."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest
import trio

from meshd.crypto.suite import DeviceKeys, blake2b
from meshd.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    TooLarge,
)
from meshd.sync import layout
from meshd.sync.layout import ApprovalName, HeadName, ProposalRequestName
from meshd.sync.storage import RetryPolicy, StorageBackend
from tests.s3server import S3Server

DEVICE = DeviceKeys.generate().device_id
OTHER_DEVICE = DeviceKeys.generate().device_id
PROPOSAL = "proposal0001"
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


@dataclass
class Place:
    """Somewhere to keep a mesh, and a way to drop raw files there as a sync
    client or a hostile provider would, without the backend."""

    url: str
    plant: Callable[[str, bytes], None]
    options: dict[str, Any] = field(default_factory=dict)

    def backend(self, **keywords: Any) -> StorageBackend:
        return StorageBackend(self.url, options=self.options, **keywords)


def folder_place(root: Path) -> Place:
    def plant(path: str, data: bytes) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return Place(f"file://{root}", plant)


def s3_place(server: S3Server, bucket: str) -> Place:
    client = server.client()

    def plant(path: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"mesh/{path}", Body=data)

    return Place(f"s3://{bucket}/mesh", plant, server.options())


def memory_place() -> Place:
    # The memory store is one per process: a fresh namespace per test.
    root = f"/meshd-test-{uuid.uuid4().hex}"
    store = fsspec.filesystem("memory")

    def plant(path: str, data: bytes) -> None:
        store.pipe_file(f"{root}/{path}", data)

    return Place(f"memory://{root}", plant)


@pytest.fixture(params=["folder", "s3", "memory"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "folder":
        return folder_place(tmp_path / "synced")
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        return s3_place(server, request.getfixturevalue("s3_bucket"))
    return memory_place()


async def test_objects_written_are_read_and_listed_back(place: Place) -> None:
    backend = place.backend()
    segment_bytes, head_bytes = b"ops 1..3", b"head at 3"
    segment = layout.segment_name(DEVICE, 1, 3, segment_bytes)

    assert await backend.put_immutable(segment, segment_bytes) is True
    await backend.put_mutable(HeadName(DEVICE), head_bytes)

    assert await backend.get(segment, 1024) == segment_bytes
    assert await backend.get(HeadName(DEVICE).path, 1024) == head_bytes
    assert await backend.list() == [segment, HeadName(DEVICE)]
    assert await backend.list(f"devices/{DEVICE}") == [segment, HeadName(DEVICE)]
    assert await backend.list("log") == []
    assert await backend.exists(segment)


async def test_a_large_object_is_read_back_whole(place: Place) -> None:
    # S3 delivers a body in chunks: a single read returns only what arrived.
    backend = place.backend()
    data = os.urandom(700_000)
    segment = layout.segment_name(DEVICE, 1, 256, data)

    await backend.put_immutable(segment, data)

    assert await backend.get(segment, 1_000_000) == data


async def test_the_head_is_rewritten_in_place(place: Place) -> None:
    backend = place.backend()

    await backend.put_mutable(HeadName(DEVICE), b"head at 3")
    await backend.put_mutable(HeadName(DEVICE), b"head at 4")

    assert await backend.get(HeadName(DEVICE), 1024) == b"head at 4"
    assert await backend.list() == [HeadName(DEVICE)]


async def test_a_second_writer_with_other_bytes_never_overwrites(place: Place) -> None:
    first, second = place.backend(), place.backend()
    name = ApprovalName(PROPOSAL, DEVICE)
    await first.put_immutable(name, b"approval from the first writer")

    with pytest.raises(AlreadyExists):
        await second.put_immutable(name, b"a different approval")

    assert await first.get(name, 1024) == b"approval from the first writer"
    assert await second.list() == [name]


async def test_pushing_the_same_object_twice_is_harmless(place: Place) -> None:
    backend = place.backend()
    data = b"mesh log entry"
    name = layout.log_entry_name(4, data)

    assert await backend.put_immutable(name, data) is True
    assert await place.backend().put_immutable(name, data) is False
    assert await backend.get(name, 1024) == data


async def test_a_listing_right_after_another_device_writes_sees_the_write(
    place: Place,
) -> None:
    reader, writer = place.backend(), place.backend()
    assert await reader.list() == []
    assert not await reader.exists(HeadName(OTHER_DEVICE))

    await writer.put_mutable(HeadName(OTHER_DEVICE), b"head 1")
    snapshot = layout.snapshot_name(1, b"snapshot bytes")
    await writer.put_immutable(snapshot, b"snapshot bytes")

    assert await reader.list() == [HeadName(OTHER_DEVICE), snapshot]
    assert await reader.exists(HeadName(OTHER_DEVICE))
    await writer.put_mutable(HeadName(OTHER_DEVICE), b"head 2")
    assert await reader.get(HeadName(OTHER_DEVICE), 1024) == b"head 2"


async def test_a_missing_object_is_not_found_not_a_storage_failure(
    place: Place,
) -> None:
    backend = place.backend(retry=FAST_RETRY)
    missing = layout.log_entry_name(7, b"never written")

    with pytest.raises(NotFound):
        await backend.get(missing, 1024)
    assert not await backend.exists(missing)
    assert backend.requests.snapshot()["GET"] <= 1


async def test_an_object_over_the_size_limit_is_refused(place: Place) -> None:
    backend = place.backend()
    data = os.urandom(64 * 1024)
    name = layout.segment_name(DEVICE, 1, 1, data)
    await backend.put_immutable(name, data)

    with pytest.raises(TooLarge) as refused:
        await backend.get(name, 1024)

    assert "65536" in str(refused.value)
    assert await backend.get(name, len(data)) == data


async def test_files_left_by_sync_clients_are_ignored_by_listings(place: Place) -> None:
    data = b"entry"
    entry = layout.log_entry_name(1, data)
    leaf = entry.path.split("/")[1]
    place.plant(entry.path, data)
    for junk in [
        f"log/{leaf} (conflicted copy 2024-05-01)",
        f"log/{leaf} (1)",
        f"log/{leaf} 2",
        f"log/.{leaf}.icloud",
        f"log/{leaf}.tmp",
        f"log/~${leaf}",
        f"log/.~lock.{leaf}#",
        f"log/{layout.temporary_name(leaf, 'abcd')}",
        "log/.DS_Store",
        "desktop.ini",
        "notes.txt",
        f"devices/{DEVICE.lower()}/head",
    ]:
        place.plant(junk, b"junk")

    assert await place.backend().list() == [entry]


async def test_hostile_names_in_storage_are_ignored(
    tmp_path: Path, place: Place
) -> None:
    if place.url.startswith("file://"):
        pytest.skip("a folder cannot hold these names; symlinks are tested below")
    entry = layout.log_entry_name(1, b"entry")
    place.plant(entry.path, b"entry")
    place.plant(f"log/../../escape/{entry.path.split('/')[1]}", b"hostile")
    place.plant(f"devices/{DEVICE}/../{OTHER_DEVICE}/head", b"hostile")

    assert await place.backend().list() == [entry]


async def test_hostile_names_from_callers_are_refused_before_any_request(
    place: Place,
) -> None:
    backend = place.backend()

    with pytest.raises(InvalidInput):
        await backend.get("../../etc/passwd", 1024)
    with pytest.raises(InvalidInput):
        await backend.put_immutable(f"devices/{DEVICE}/../../x", b"x")
    with pytest.raises(InvalidInput):
        await backend.list("../")
    assert backend.requests.total == 0


async def test_only_a_head_is_written_as_mutable(place: Place) -> None:
    backend = place.backend(own_device_id=DEVICE)

    with pytest.raises(InvalidInput):
        await backend.put_mutable(ProposalRequestName(PROPOSAL), b"request")
    with pytest.raises(InvalidInput):
        await backend.put_mutable(HeadName(OTHER_DEVICE), b"someone else's head")
    with pytest.raises(InvalidInput):
        await backend.put_immutable(HeadName(DEVICE), b"head")
    assert await backend.list() == []


async def test_a_mesh_lives_in_the_folder_named_after_its_id(tmp_path: Path) -> None:
    mesh_id = blake2b(b"genesis")
    backend = StorageBackend.for_mesh(str(tmp_path), mesh_id)

    await backend.put_mutable(HeadName(DEVICE), b"head")

    assert (
        tmp_path / layout.mesh_folder(mesh_id) / "devices" / DEVICE / "head"
    ).exists()


# -- S3 only ---------------------------------------------------------------------


def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_endpoint_fails_after_the_retry_budget(
    s3_server: S3Server,
) -> None:
    options = {
        **s3_server.options(),
        "endpoint_url": f"http://127.0.0.1:{closed_loopback_port()}",
    }
    backend = StorageBackend("s3://nowhere/mesh", options=options, retry=FAST_RETRY)

    with pytest.raises(StorageUnavailable) as failed:
        await backend.list()

    assert backend.requests.snapshot()["LIST"] == FAST_RETRY.attempts
    assert "3 attempt" in str(failed.value)


async def test_a_missing_bucket_fails_at_once(s3_server: S3Server) -> None:
    backend = StorageBackend(
        "s3://no-such-bucket-here/mesh", options=s3_server.options(), retry=FAST_RETRY
    )

    with pytest.raises(StorageUnavailable):
        await backend.put_mutable(HeadName(DEVICE), b"head")

    assert backend.requests.snapshot()["PUT"] == 1


async def test_pushing_a_segment_and_a_head_costs_two_requests_and_a_poll_one(
    s3_server: S3Server, s3_bucket: str
) -> None:
    backend = s3_place(s3_server, s3_bucket).backend()
    segment = layout.segment_name(DEVICE, 1, 10, b"ten ops")
    s3_server.log.clear()

    await backend.put_immutable(segment, b"ten ops")
    await backend.put_mutable(HeadName(DEVICE), b"head at 10")
    pushed = s3_server.log.counts(s3_bucket)
    s3_server.log.clear()
    listed = await backend.list()
    polled = s3_server.log.counts(s3_bucket)

    assert pushed == {"GET": 0, "PUT": 2, "LIST": 0, "HEAD": 0, "OTHER": 0}
    assert polled == {"GET": 0, "PUT": 0, "LIST": 1, "HEAD": 0, "OTHER": 0}
    assert listed == [segment, HeadName(DEVICE)]


async def test_credentials_come_from_the_environment_when_not_configured(
    s3_server: S3Server, s3_bucket: str
) -> None:
    backend = StorageBackend(f"s3://{s3_bucket}/mesh")

    await backend.put_mutable(HeadName(DEVICE), b"head")

    assert s3_server.log.counts(s3_bucket)["PUT"] == 1


# -- Folders only ----------------------------------------------------------------


async def test_a_plain_path_is_a_folder(tmp_path: Path) -> None:
    backend = StorageBackend(str(tmp_path / "plain"))

    await backend.put_mutable(HeadName(DEVICE), b"head")

    assert (tmp_path / "plain" / "devices" / DEVICE / "head").read_bytes() == b"head"


async def test_symlinks_planted_in_a_folder_lead_nowhere(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not a mesh object")
    root = tmp_path / "synced"
    (root / "devices").mkdir(parents=True)
    (root / "devices" / DEVICE).symlink_to(outside, target_is_directory=True)
    (root / "devices" / OTHER_DEVICE).mkdir()
    (root / "devices" / OTHER_DEVICE / "head").symlink_to(outside / "secret")
    backend = StorageBackend(str(root), retry=FAST_RETRY)

    assert await backend.list() == []
    with pytest.raises(StorageUnavailable):
        await backend.get(HeadName(OTHER_DEVICE), 1024)
    with pytest.raises(StorageUnavailable):
        await backend.put_mutable(HeadName(DEVICE), b"head")
    assert sorted(os.listdir(outside)) == ["secret"]


async def test_a_reader_never_sees_a_partly_written_object(tmp_path: Path) -> None:
    writer = StorageBackend(str(tmp_path / "synced"))
    reader = StorageBackend(str(tmp_path / "synced"))
    objects = [os.urandom(256 * 1024) + bytes([i]) for i in range(24)]
    checked: list[str] = []

    async def write_all() -> None:
        for number, data in enumerate(objects):
            await writer.put_immutable(
                layout.segment_name(DEVICE, number, number, data), data
            )

    async def read_while_writing(done: trio.Event) -> None:
        while not done.is_set():
            for name in await reader.list(f"devices/{DEVICE}"):
                data = await reader.get(name, 1024 * 1024)
                digest = name.hash  # type: ignore[union-attr]
                assert layout.content_hash(data) == digest
                checked.append(name.path)
            await trio.sleep(0)

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_while_writing, done)
        await write_all()
        done.set()

    assert len(await reader.list()) == len(objects)
    assert checked, "the reader never saw an object while the writer was writing"
    assert not [
        n
        for n in os.listdir(tmp_path / "synced" / "devices" / DEVICE)
        if n.startswith(".")
    ]
