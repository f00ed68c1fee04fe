"""Three devices converge through a shared folder and through S3."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.sync.meshes import close_all, sync_all, three_device_mesh


@pytest.fixture(params=["folder", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        folder = tmp_path / "storage"
        folder.mkdir()
        return str(folder)
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/meshes"


async def test_three_devices_with_concurrent_edits_end_with_one_passport(
    tmp_path: Path, storage_url: str
) -> None:
    parties = await three_device_mesh(tmp_path / "homes", storage_url)
    chooser = random.Random(7)
    paths = ["profile/name", "profile/city", "profile/email", "settings/theme"]

    # Each device edits shared and own paths between rounds, without seeing
    # the others' edits first: the same paths are written concurrently.
    for round_number in range(3):
        for party in parties:
            for _ in range(chooser.randint(1, 3)):
                path = chooser.choice(paths)
                value = f"{party.name}-{round_number}-{chooser.randint(0, 99)}"
                await party.node.passport_set(path, value)
            await party.node.passport_set(f"settings/own/{party.name}", round_number)
        await sync_all(parties, rounds=1)
    await sync_all(parties, rounds=2)

    passports = [await party.passport() for party in parties]
    assert passports[0] == passports[1] == passports[2]
    assert passports[0]["settings"]["own"] == {"phone": 2, "laptop": 2, "tablet": 2}
    for party in parties:
        assert await party.problems() == []
    close_all(parties)


async def test_a_change_finalized_at_a_rounds_end_goes_out_in_that_round(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    phone, laptop, tablet = await three_device_mesh(tmp_path / "homes", str(storage))
    entries = list(storage.glob("*/log/*"))

    # The tablet's own approval completes its revocation, but a device never
    # finalizes its own revocation: the laptop does when its round sees it.
    proposal = await laptop.node.revoke(tablet.device_id, "lost")
    await tablet.sync()
    await tablet.node.approve(proposal["proposal_id"], None)
    await laptop.sync()

    # That one round of the laptop's already put the entry in storage.
    assert len(list(storage.glob("*/log/*"))) == len(entries) + 1
    close_all([phone, laptop, tablet])
