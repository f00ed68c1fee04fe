"""A head replaced in storage while the devices run is noticed at once.

Storage plays the provider (or a person restoring an old copy of the folder):
it puts an older head of the laptop over the current one between rounds. The
phone's next round says the laptop's head went backwards; the laptop's next
round puts its newest head back; then the phone sees a fresh head again. An
idle round still costs one listing and no read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshd.sync.layout import HeadName, mesh_folder
from tests.s3server import S3Server
from tests.sync.meshes import Party, close_all, enroll, new_party, sync_all


@dataclass
class HeadFile:
    """The laptop's head as the provider sees it, on a folder or in S3."""

    read: Callable[[], bytes]
    write: Callable[[bytes], object]
    delete: Callable[[], None]
    requests: Callable[[], dict[str, int]]
    clear_requests: Callable[[], None]


@dataclass
class Pair:
    phone: Party
    laptop: Party
    head: HeadFile
    head_path: str


def _folder_head(storage: Path, key: str, phone: Party) -> HeadFile:
    path = storage / key
    return HeadFile(
        path.read_bytes,
        path.write_bytes,  # in place, as a copy over the file does
        path.unlink,
        phone.backend.requests.snapshot,
        phone.backend.requests.reset,
    )


def _s3_head(server: S3Server, bucket: str, key: str) -> HeadFile:
    client = server.client()
    full_key = f"meshes/{key}"
    return HeadFile(
        lambda: client.get_object(Bucket=bucket, Key=full_key)["Body"].read(),
        lambda data: client.put_object(Bucket=bucket, Key=full_key, Body=data),
        lambda: client.delete_object(Bucket=bucket, Key=full_key),
        lambda: server.log.counts(bucket),
        server.log.clear,
    )


@pytest.fixture(params=["folder", "s3"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    storage = tmp_path / "storage"
    storage.mkdir()
    bucket = request.getfixturevalue("s3_bucket") if request.param == "s3" else ""
    url = f"s3://{bucket}/meshes" if bucket else str(storage)
    phone = new_party(tmp_path / "homes", "phone")
    laptop = new_party(tmp_path / "homes", "laptop")
    await phone.node.create("alice", url, "phone", "phone")
    await enroll(laptop, phone, [phone])
    await sync_all([phone, laptop])

    mesh_id = phone.node.device.mesh_id
    assert mesh_id is not None
    head_path = HeadName(laptop.device_id).path
    key = f"{mesh_folder(mesh_id)}/{head_path}"
    if bucket:
        head = _s3_head(request.getfixturevalue("s3_server"), bucket, key)
    else:
        head = _folder_head(storage, key, phone)
    yield Pair(phone, laptop, head, head_path)
    close_all([phone, laptop])


async def _older_head_put_back_by_storage(pair: Pair) -> tuple[bytes, bytes]:
    """The laptop writes, the phone reads it all, then storage serves the
    laptop's previous head again. Returns (older, newest)."""
    older = pair.head.read()
    await pair.laptop.node.passport_set("settings/theme", "dark")
    await pair.phone.sync()
    newest = pair.head.read()
    assert newest != older
    pair.head.write(older)
    return older, newest


def _stored_head(party: Party, of: Party) -> bytes:
    return party.node.device.store.heads()[of.device_id]


async def test_a_peer_head_rolled_back_in_storage_shows_on_the_next_round(
    pair: Pair,
) -> None:
    await _older_head_put_back_by_storage(pair)

    await pair.phone.sync()

    assert (pair.head_path, "head_went_backwards") in await pair.phone.problems()


async def test_the_device_puts_its_newest_head_back_and_peers_see_it_fresh(
    pair: Pair,
) -> None:
    _, newest = await _older_head_put_back_by_storage(pair)
    await pair.phone.sync()

    await pair.laptop.sync()

    assert pair.head.read() == newest
    assert (pair.head_path, "head_replaced") in await pair.laptop.problems()

    await pair.phone.sync()

    assert "head_went_backwards" not in await pair.phone.reasons()
    assert _stored_head(pair.phone, pair.laptop) == newest


async def test_a_head_rewritten_with_the_same_bytes_is_no_problem(
    pair: Pair,
) -> None:
    current = pair.head.read()
    pair.head.write(current)

    await pair.laptop.sync()
    await pair.phone.sync()

    assert await pair.laptop.problems() == []
    assert await pair.phone.problems() == []
    assert pair.head.read() == current


async def test_a_device_puts_back_its_head_after_storage_lost_it(
    pair: Pair,
) -> None:
    current = pair.head.read()
    pair.head.delete()

    await pair.laptop.sync()

    assert pair.head.read() == current
    assert (pair.head_path, "object_missing") in await pair.laptop.problems()


async def test_an_idle_round_after_the_repair_is_one_listing_and_no_read(
    pair: Pair,
) -> None:
    await _older_head_put_back_by_storage(pair)
    await sync_all([pair.phone, pair.laptop], rounds=2)
    pair.head.clear_requests()

    await pair.phone.sync()

    requests = pair.head.requests()
    assert requests["LIST"] == 1
    assert requests["GET"] == 0
    assert requests["PUT"] == 0
