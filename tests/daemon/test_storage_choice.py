"""What the daemon answers when init names a storage it cannot open."""

from __future__ import annotations

import socket

import pytest

from meshd.errors import InvalidInput, StorageUnavailable
from tests.daemons import MeshdProcess


def closed_loopback_port() -> int:
    """A loopback port nobody listens on: bound for a moment, then let go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "storage",
    ["zip://archive", "ftp://127.0.0.1:{port}/meshes"],
    ids=["zip archive", "ftp server that refuses connections"],
)
def test_init_on_storage_that_cannot_be_opened_is_a_typed_one_line_error(
    shared_meshd: MeshdProcess, storage: str
) -> None:
    url = storage.format(port=closed_loopback_port())

    with pytest.raises((StorageUnavailable, InvalidInput)) as refused:
        shared_meshd.call(
            "mesh.create",
            label="alice",
            storage=url,
            device_name="phone",
            device_kind="phone",
        )

    assert "\n" not in refused.value.message
    assert "Traceback" not in refused.value.message
    assert "cannot be opened" in refused.value.message
    assert shared_meshd.call("mesh.status")["storage"] is None
