"""A passphrase-protected keystore: the daemon starts locked until unlocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshd.client import Client
from meshd.errors import Locked, WrongPassphrase
from tests.daemons import MeshdFactory

PASSPHRASE = "correct horse battery staple"


def locked_daemon(meshd_factory: MeshdFactory) -> tuple[Path, str]:
    """A home whose keystore is protected, and the daemon's device id."""
    first = meshd_factory.start(env={"MESHD_PASSPHRASE": PASSPHRASE})
    device_id = first.call("device.info")["device_id"]
    assert first.stop() == 0
    return first.home, device_id


def test_protected_keystore_starts_locked_and_refuses_key_methods(
    meshd_factory: MeshdFactory,
) -> None:
    home, _ = locked_daemon(meshd_factory)
    daemon = meshd_factory.start(home)

    status = daemon.call("mesh.status")
    with pytest.raises(Locked):
        daemon.call("device.info")

    assert status["state"] == "locked"
    assert "meshctl unlock" in status["warnings"][0]


def test_a_locked_daemon_answers_mesh_commands_with_locked(
    meshd_factory: MeshdFactory,
) -> None:
    home, _ = locked_daemon(meshd_factory)
    daemon = meshd_factory.start(home)

    status, _, error = daemon.meshctl("--json", "devices")

    assert status == 1
    assert json.loads(error)["error"]["data"]["reason"] == "locked"


def test_unlock_opens_the_keystore_and_publishes_an_event(
    meshd_factory: MeshdFactory,
) -> None:
    home, device_id = locked_daemon(meshd_factory)
    daemon = meshd_factory.start(home)

    with Client(daemon.socket) as client:
        with pytest.raises(WrongPassphrase):
            client.call("device.unlock", passphrase="wrong")
        client.call("device.unlock", passphrase=PASSPHRASE)
        info = client.call("device.info")

    assert info["device_id"] == device_id
    with daemon.client().subscribe(since=0) as stream:
        types = [event["type"] for _, event in zip(range(2), stream, strict=False)]
    assert "device.unlocked" in types


def test_meshctl_unlock_reads_the_passphrase_from_stdin(
    meshd_factory: MeshdFactory,
) -> None:
    home, device_id = locked_daemon(meshd_factory)
    daemon = meshd_factory.start(home)

    status, out, _ = daemon.meshctl("--json", "unlock", input=PASSPHRASE + "\n")

    assert status == 0
    assert json.loads(out) == {"locked": False, "device_id": device_id}


def test_meshctl_unlock_with_a_wrong_passphrase_file_exits_1(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    home, _ = locked_daemon(meshd_factory)
    daemon = meshd_factory.start(home)
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")

    status, out, err = daemon.meshctl("unlock", "--passphrase-file", str(wrong))

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1 and "passphrase is wrong" in err


def test_passphrase_file_unlocks_at_start(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    home, device_id = locked_daemon(meshd_factory)
    secret = tmp_path / "secret"
    secret.write_text(PASSPHRASE + "\n")

    daemon = meshd_factory.start(home, args=["--passphrase-file", str(secret)])

    assert daemon.call("device.info")["device_id"] == device_id
