"""A mesh-log entry damaged in storage: what a joining device is told, and
that members really put a deleted entry back."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshd.errors import ProtocolError
from meshd.sync.layout import content_hash
from tests.sync.meshes import (
    Party,
    close_all,
    enroll,
    new_party,
    three_device_mesh,
)


def log_files(storage: Path) -> list[Path]:
    (mesh_folder,) = storage.iterdir()
    return sorted((mesh_folder / "log").iterdir())


async def founded_by_phone(tmp_path: Path) -> tuple[Path, Party, Party]:
    """A mesh the phone founded on a folder, and a laptop that is not in it."""
    storage = tmp_path / "storage"
    storage.mkdir()
    phone, laptop = new_party(tmp_path, "phone"), new_party(tmp_path, "laptop")
    await phone.node.create("alice", str(storage), "phone", "phone")
    return storage, phone, laptop


async def test_a_damaged_log_entry_is_deleted_and_put_back_by_a_member(
    tmp_path: Path,
) -> None:
    storage, phone, laptop = await founded_by_phone(tmp_path)
    invite = (await phone.node.invite())["invite"]
    (entry,) = log_files(storage)
    original = entry.read_bytes()

    # Storage damages the entry in place: a join is refused, saying what to do.
    entry.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    with pytest.raises(ProtocolError) as refused:
        await laptop.node.request_enrollment(invite, "laptop", "laptop")
    assert "delete the damaged file" in refused.value.message
    assert "members put it back on their next sync" in refused.value.message

    # The person deletes it; the phone's next sync puts the true entry back.
    entry.unlink()
    await phone.sync()
    (restored,) = log_files(storage)
    assert restored.name == entry.name
    assert content_hash(restored.read_bytes()) == entry.name.rpartition("-")[2]

    request = await laptop.node.request_enrollment(invite, "laptop", "laptop")
    assert request["code"]
    close_all([phone, laptop])


async def test_junk_at_the_next_log_position_does_not_stop_a_device_joining(
    tmp_path: Path,
) -> None:
    storage, phone, laptop = await founded_by_phone(tmp_path)
    (entry,) = log_files(storage)

    # Junk nobody wrote lands where the next entry would go.
    junk = entry.with_name(f"{1:012d}-{'ab' * 32}")
    junk.write_bytes(bytes(range(256)) * 20)
    await phone.sync()

    # A new device joins past it, and leaves it aside as members do.
    await enroll(laptop, phone, [phone])
    await laptop.sync()
    assert await laptop.problems() == await phone.problems()
    assert junk.exists()
    close_all([phone, laptop])


async def test_a_damaged_entry_inside_the_chain_stops_a_join_saying_what_to_do(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    members = await three_device_mesh(tmp_path, str(storage))
    watch = new_party(tmp_path, "watch")
    invite = (await members[0].node.invite())["invite"]
    entries = log_files(storage)
    assert len(entries) > 2

    # The entry that enrolled the laptop is damaged; later ones are intact.
    damaged = entries[1]
    damaged.write_bytes(b"damaged" + damaged.read_bytes()[7:])
    with pytest.raises(ProtocolError) as refused:
        await watch.node.request_enrollment(invite, "watch", "watch")

    assert f"lacks entry 1: its file log/{damaged.name}" in refused.value.message
    assert "delete the damaged file" in refused.value.message
    close_all([*members, watch])
