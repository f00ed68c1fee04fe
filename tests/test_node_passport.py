"""What a member's passport methods refuse, as an app calling the daemon sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshd.crypto.suite import DeviceKeys
from meshd.errors import AnswerTooLarge, InvalidInput, NotFound, PassportFull
from meshd.events import EventBus
from meshd.keystore import ensure_private_dir
from meshd.node import MAX_PASSPORT_SIZE, MeshNode
from meshd.rpc.codec import LINE_LIMIT, encode_json

# Each value is within the 64 KiB a value may hold; together they are not.
LONG_VALUE = "x" * 60_000


def new_node(home: Path) -> MeshNode:
    ensure_private_dir(home)
    return MeshNode(home, DeviceKeys.generate(), EventBus(), poll_seconds=30)


async def member(tmp_path: Path) -> MeshNode:
    """A one-device mesh on a folder."""
    storage = tmp_path / "storage"
    storage.mkdir()
    phone = new_node(tmp_path / "phone")
    await phone.create("alice", str(storage), "phone", "phone")
    return phone


@pytest.mark.parametrize("path", ["profile/x\n", "profile\n/x", "profile/name\r"])
async def test_a_path_with_a_line_break_is_refused_and_nothing_is_stored(
    tmp_path: Path, path: str
) -> None:
    phone = await member(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        await phone.passport_set(path, "Alice")

    assert refused.value.details["field"] == "path"
    assert await phone.passport_get("") == {}
    with pytest.raises(NotFound):
        await phone.passport_get(path.replace("\n", "").replace("\r", ""))


async def test_a_write_that_would_overfill_the_passport_is_refused_with_sizes(
    tmp_path: Path,
) -> None:
    phone = await member(tmp_path)
    written = 0
    with pytest.raises(PassportFull) as refused:
        for number in range(20):
            await phone.passport_set(f"profile/note{number}", LONG_VALUE)
            written += 1

    whole = await phone.passport_get("")

    assert 0 < written < 20
    assert refused.value.details["size"] > MAX_PASSPORT_SIZE
    assert refused.value.details["limit"] == MAX_PASSPORT_SIZE
    assert len(encode_json(whole)) <= MAX_PASSPORT_SIZE
    assert await phone.passport_get(f"profile/note{written - 1}") == LONG_VALUE
    with pytest.raises(NotFound):
        await phone.passport_get(f"profile/note{written}")


async def test_a_value_replaced_in_a_full_passport_is_accepted(tmp_path: Path) -> None:
    phone = await member(tmp_path)
    number = 0
    with pytest.raises(PassportFull):
        for number in range(20):
            await phone.passport_set(f"profile/note{number}", LONG_VALUE)

    await phone.passport_set("profile/note0", LONG_VALUE.replace("x", "y"))
    await phone.passport_delete("profile/note1")
    await phone.passport_set(f"profile/note{number}", LONG_VALUE)

    assert (await phone.passport_get("profile/note0"))[0] == "y"


async def test_a_passport_grown_past_one_answer_by_two_devices_is_read_by_path(
    tmp_path: Path,
) -> None:
    phone = await member(tmp_path)
    laptop = new_node(tmp_path / "laptop")
    request = await laptop.request_enrollment(
        (await phone.invite())["invite"], "laptop", "laptop"
    )
    await phone.sync_now()
    await phone.approve(request["request_id"], request["code"])
    await laptop.sync_now()

    # Apart (storage is away), each device stays within the limit; their
    # writes merged once it is back do not.
    storage, away = tmp_path / "storage", tmp_path / "away"
    storage.rename(away)
    for number in range(10):
        await phone.passport_set(f"profile/phone{number}", LONG_VALUE)
        await laptop.passport_set(f"settings/laptop{number}", LONG_VALUE)
    away.rename(storage)
    await phone.sync_now()
    await laptop.sync_now()

    with pytest.raises(AnswerTooLarge) as refused:
        await laptop.passport_get("")

    assert refused.value.details["size"] > LINE_LIMIT
    assert "by path" in refused.value.message
    assert len(await laptop.passport_get("profile")) == 10
    assert await laptop.passport_get("settings/laptop9") == LONG_VALUE
