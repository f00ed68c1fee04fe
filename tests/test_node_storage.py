"""The storage a device is given at init, join or recovery, checked up front."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshd.crypto.suite import DeviceKeys
from meshd.errors import InvalidInput, NoMesh, StorageUnavailable
from meshd.events import EventBus
from meshd.invite import Invite
from meshd.keystore import ensure_private_dir
from meshd.node import MeshNode
from meshd.sync.storage import PROBE_PREFIX


def new_node(home: Path) -> MeshNode:
    ensure_private_dir(home)
    return MeshNode(home, DeviceKeys.generate(), EventBus(), poll_seconds=30)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """An empty folder to keep meshes in."""
    folder = tmp_path / "storage"
    folder.mkdir()
    return folder


class QuietHandler(SimpleHTTPRequestHandler):
    """A plain web server's handler: it lists folders and refuses writes."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_folder(tmp_path: Path) -> Iterator[str]:
    """A folder served read-only over HTTP on loopback, as its URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_init_refuses_storage_that_lists_but_refuses_writes(
    tmp_path: Path, web_folder: str
) -> None:
    phone = new_node(tmp_path / "phone")

    with pytest.raises(StorageUnavailable, match="cannot be written") as refused:
        await phone.create("alice", web_folder, "phone", "phone")

    assert len(refused.value.message.splitlines()) == 1
    assert phone.device.storage_url is None
    with pytest.raises(NoMesh):
        await phone.status()


async def test_init_leaves_no_write_probe_in_the_storage(
    tmp_path: Path, storage: Path
) -> None:
    phone = new_node(tmp_path / "phone")

    await phone.create("alice", str(storage), "phone", "phone")

    names = [path.name for path in storage.iterdir()]
    assert len(names) == 1
    assert not any(name.startswith(PROBE_PREFIX) for name in names)


async def test_a_folder_path_is_kept_and_shared_in_its_normal_form(
    tmp_path: Path, storage: Path
) -> None:
    phone = new_node(tmp_path / "phone")

    await phone.create("alice", f"{storage}/../storage/", "phone", "phone")
    invite = Invite.from_text((await phone.invite())["invite"])

    assert (await phone.status())["storage"] == str(storage)
    assert invite.storage == str(storage)


@pytest.mark.parametrize("relative", ["storage", "file://storage", "./storage"])
async def test_join_refuses_an_invite_whose_storage_is_a_relative_path(
    tmp_path: Path, storage: Path, relative: str
) -> None:
    phone = new_node(tmp_path / "phone")
    await phone.create("alice", str(storage), "phone", "phone")
    genuine = Invite.from_text((await phone.invite())["invite"])
    invite = Invite(genuine.did, relative, genuine.label).to_text()
    laptop = new_node(tmp_path / "laptop")

    with pytest.raises(InvalidInput) as refused:
        await laptop.request_enrollment(invite, "laptop", "laptop")

    assert refused.value.details["field"] == "storage"
    with pytest.raises(NoMesh):
        await laptop.status()
