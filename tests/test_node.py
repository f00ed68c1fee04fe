"""What a device's API refuses before anything is stored or written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meshd.crypto.suite import DeviceKeys
from meshd.errors import (
    InvalidInput,
    InvalidState,
    NoMesh,
    TooManyAttempts,
    WrongCode,
)
from meshd.events import EventBus
from meshd.keystore import ensure_private_dir
from meshd.node import MeshNode
from meshd.rpc.codec import encode_json


def new_node(home: Path) -> MeshNode:
    ensure_private_dir(home)
    return MeshNode(home, DeviceKeys.generate(), EventBus(), poll_seconds=30)


async def phone_and_laptop(tmp_path: Path) -> tuple[MeshNode, MeshNode, str]:
    """A one-device mesh on a folder, a second device, and the invite."""
    storage = tmp_path / "storage"
    storage.mkdir()
    phone, laptop = new_node(tmp_path / "phone"), new_node(tmp_path / "laptop")
    await phone.create("alice", str(storage), "phone", "phone")
    return phone, laptop, (await phone.invite())["invite"]


@pytest.mark.parametrize(
    "storage",
    ["", "   ", "relative/folder", "file://relative", "/no/such/folder/anywhere"],
)
async def test_init_refuses_storage_it_cannot_use_and_creates_no_mesh(
    tmp_path: Path, storage: str
) -> None:
    node = new_node(tmp_path / "phone")

    with pytest.raises(InvalidInput) as refused:
        await node.create("alice", storage, "phone", "phone")

    assert refused.value.details["field"] == "storage"
    with pytest.raises(NoMesh):
        await node.status()
    assert not Path("/no/such/folder/anywhere").exists()


@pytest.mark.parametrize(
    ("label", "name"),
    [("", "phone"), ("alice\x1b[31m", "phone"), ("alice", "a\nFAKE"), ("a" * 101, "")],
)
async def test_init_refuses_labels_and_names_that_are_not_one_printable_line(
    tmp_path: Path, label: str, name: str
) -> None:
    node = new_node(tmp_path / "phone")
    storage = tmp_path / "storage"
    storage.mkdir()

    with pytest.raises(InvalidInput):
        await node.create(label, str(storage), name, "phone")


async def test_init_on_an_existing_folder_creates_the_mesh(tmp_path: Path) -> None:
    node = new_node(tmp_path / "phone")
    storage = tmp_path / "storage"
    storage.mkdir()

    created = await node.create("alice", f"file://{storage}", "phone", "phone")

    assert created["did"].startswith("did:human:")
    assert any(storage.iterdir())


async def test_a_missing_or_malformed_code_costs_no_attempt(tmp_path: Path) -> None:
    phone, laptop, invite = await phone_and_laptop(tmp_path)
    request = await laptop.request_enrollment(invite, "laptop", "laptop")
    await phone.sync_now()

    for code in (None, "", "12345", "abcdef", "1234567"):
        with pytest.raises(InvalidInput):
            await phone.approve(request["request_id"], code)
    approved = await phone.approve(request["request_id"], request["code"])

    assert approved["state"] == "applied"


async def test_a_device_whose_request_was_locked_asks_again(tmp_path: Path) -> None:
    phone, laptop, invite = await phone_and_laptop(tmp_path)
    first = await laptop.request_enrollment(invite, "laptop", "laptop")
    await phone.sync_now()
    wrong = "000000" if first["code"] != "000000" else "111111"
    for _ in range(3):
        with pytest.raises((WrongCode, TooManyAttempts)):
            await phone.approve(first["request_id"], wrong)

    again = await laptop.request_enrollment(invite, "laptop", "laptop")
    await phone.sync_now()
    approved = await phone.approve(again["request_id"], again["code"])
    await laptop.sync_now()

    assert again["request_id"] != first["request_id"]
    assert approved["state"] == "applied"
    assert (await laptop.status())["state"] == "member"


async def test_a_device_cannot_take_back_its_approval_by_rejecting(
    tmp_path: Path,
) -> None:
    phone, laptop, invite = await phone_and_laptop(tmp_path)
    request = await laptop.request_enrollment(invite, "laptop", "laptop")
    await phone.sync_now()
    await phone.approve(request["request_id"], request["code"])
    await laptop.sync_now()
    proposal = await laptop.prove("c-1", None, True)

    with pytest.raises(InvalidState):
        await laptop.reject(proposal["proposal_id"])


async def test_the_conflict_mode_takes_only_its_two_values(tmp_path: Path) -> None:
    phone, _, _ = await phone_and_laptop(tmp_path)

    for value in ("bogus", 42, None):
        with pytest.raises(InvalidInput):
            await phone.passport_set("settings/conflict_resolution", value)
    await phone.passport_set("settings/conflict_resolution", "manual")

    assert await phone.passport_get("settings/conflict_resolution") == "manual"


@pytest.mark.parametrize("threshold", [0, -5])
async def test_a_threshold_below_one_is_bad_input(
    tmp_path: Path, threshold: int
) -> None:
    phone, _, _ = await phone_and_laptop(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        await phone.set_threshold(threshold)

    assert refused.value.details["field"] == "threshold"


async def test_status_after_a_device_joins_lists_it(tmp_path: Path) -> None:
    phone, laptop, invite = await phone_and_laptop(tmp_path)
    before = await phone.status()
    request = await laptop.request_enrollment(invite, "laptop", "laptop")
    await phone.sync_now()

    await phone.approve(request["request_id"], request["code"])
    after = await phone.status()

    assert [device["name"] for device in before["devices"]] == ["phone"]
    assert sorted(device["name"] for device in after["devices"]) == [
        "laptop",
        "phone",
    ]
    assert after["position"] > before["position"]


async def test_status_shows_a_join_request_as_expired_after_its_expiry(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    phone = new_node(tmp_path / "phone")
    await phone.create("alice", str(storage), "phone", "phone")
    now = [time.time()]
    ensure_private_dir(tmp_path / "laptop")
    laptop = MeshNode(
        tmp_path / "laptop",
        DeviceKeys.generate(),
        EventBus(),
        poll_seconds=30,
        clock=lambda: now[0],
    )
    invite = (await phone.invite())["invite"]
    await laptop.request_enrollment(invite, "laptop", "laptop")

    waiting = await laptop.status()
    now[0] += 6 * 60
    expired = await laptop.status()

    assert waiting["request"]["state"] == "pending"
    assert expired["request"]["state"] == "expired"
    assert expired["state"] == "joining"


async def test_status_as_sent_is_the_status_with_locked_false_first(
    tmp_path: Path,
) -> None:
    phone, laptop, invite = await phone_and_laptop(tmp_path)
    await laptop.request_enrollment(invite, "laptop", "laptop")

    for node in (phone, laptop):
        sent = (await node.status_json()).text
        expected = encode_json({"locked": False, **await node.status()})

        assert sent == expected


async def test_status_shows_objects_that_vanished_from_storage(
    tmp_path: Path,
) -> None:
    phone, _, _ = await phone_and_laptop(tmp_path)
    before = await phone.status()
    (mesh_folder,) = (tmp_path / "storage").iterdir()
    mesh_folder.rename(tmp_path / "moved")

    await phone.sync_now()
    after = await phone.status()

    assert before["problems"] == []
    assert after["problems"]
    assert any("missing from storage" in warning for warning in after["warnings"])


async def test_a_device_that_asks_again_is_approved_only_on_its_newest_request(
    tmp_path: Path,
) -> None:
    phone, laptop, invite = await phone_and_laptop(tmp_path)
    first = await laptop.request_enrollment(invite, "laptop", "laptop")
    second = await laptop.request_enrollment(invite, "laptop", "laptop")
    await phone.sync_round()

    listed = [item["id"] for item in await phone.pending()]
    with pytest.raises(InvalidState) as refused:
        await phone.approve(first["request_id"], second["code"])
    approved = await phone.approve(second["request_id"], second["code"])

    assert listed == [second["request_id"]]
    assert refused.value.details["newer"] == second["request_id"]
    assert approved["state"] == "applied"
