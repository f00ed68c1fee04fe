"""What a member's passport methods refuse, as an app calling the daemon sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshd.crypto.suite import DeviceKeys
from meshd.errors import InvalidInput, NotFound
from meshd.events import EventBus
from meshd.keystore import ensure_private_dir
from meshd.node import MeshNode


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
