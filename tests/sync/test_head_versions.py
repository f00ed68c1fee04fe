"""Heads carry a version tag from the listing itself, on folders, S3 and a
generic fsspec store, so a device sees a rewritten head without reading it."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshd.sync.layout import HeadName, parse_name
from tests.sync.test_storage import (
    DEVICE,
    OTHER_DEVICE,
    Place,
    folder_place,
    memory_place,
    s3_place,
)


@pytest.fixture(params=["folder", "s3", "memory"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "folder":
        return folder_place(tmp_path / "synced")
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        return s3_place(server, request.getfixturevalue("s3_bucket"))
    return memory_place()


async def _listed_head(place: Place, device: str) -> HeadName:
    (head,) = [
        name for name in await place.backend().list() if name == HeadName(device)
    ]
    assert isinstance(head, HeadName)
    return head


async def test_a_written_head_is_listed_with_the_version_its_write_returned(
    place: Place,
) -> None:
    written = await place.backend(own_device_id=DEVICE).put_mutable(
        HeadName(DEVICE), b"head at 3"
    )

    listed = await _listed_head(place, DEVICE)

    assert listed.version is not None
    if not place.url.startswith("memory://"):
        # Folders and S3 tell the version in the write's answer; a generic
        # file system does not, and the engine takes the next listing's.
        assert listed.version == written


async def test_a_head_copied_over_by_someone_else_is_listed_with_a_new_version(
    place: Place,
) -> None:
    place.plant(HeadName(OTHER_DEVICE).path, b"head at 4")
    before = await _listed_head(place, OTHER_DEVICE)

    # A provider copies an older head over the current one.
    place.plant(HeadName(OTHER_DEVICE).path, b"head at 3")
    after = await _listed_head(place, OTHER_DEVICE)
    again = await _listed_head(place, OTHER_DEVICE)

    assert before.version != after.version
    assert again.version == after.version
    assert after == before  # the version is no part of the name


async def test_a_listing_with_versions_is_still_one_request(place: Place) -> None:
    backend = place.backend(own_device_id=DEVICE)
    await backend.put_mutable(HeadName(DEVICE), b"head")
    backend.requests.reset()

    await backend.list()

    counts = backend.requests.snapshot()
    assert counts["LIST"] == 1
    assert sum(counts.values()) == 1


def test_a_parsed_head_name_has_no_version() -> None:
    parsed = parse_name(HeadName(DEVICE).path)

    assert isinstance(parsed, HeadName)
    assert parsed.version is None
