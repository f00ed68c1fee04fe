"""A mesh-log entry damaged in storage: what a joining device is told, and
that members really put a deleted entry back."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshd.errors import ProtocolError
from meshd.sync.layout import content_hash
from tests.sync.meshes import close_all, new_party


def log_files(storage: Path) -> list[Path]:
    (mesh_folder,) = storage.iterdir()
    return sorted((mesh_folder / "log").iterdir())


async def test_a_damaged_log_entry_is_deleted_and_put_back_by_a_member(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    phone, laptop = new_party(tmp_path, "phone"), new_party(tmp_path, "laptop")
    await phone.node.create("alice", str(storage), "phone", "phone")
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
