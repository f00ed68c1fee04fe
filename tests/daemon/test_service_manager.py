"""systemd and launchd integration: readiness, socket activation, unit files."""

from __future__ import annotations

import os
import plistlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from meshd.client import Client
from tests.daemons import MeshdFactory

ROOT = Path(__file__).resolve().parents[2]

# Puts the listening socket on descriptor 3 and sets LISTEN_PID to the pid
# that will run meshd (exec keeps it), as systemd does.
ACTIVATION_LAUNCHER = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], sys.argv[2:])
"""


def receive_notifications(receiver: socket.socket) -> str:
    receiver.settimeout(20)
    return receiver.recv(4096).decode()


def test_daemon_tells_notify_socket_it_is_ready(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    address = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(address))
        daemon = meshd_factory.start(env={"NOTIFY_SOCKET": str(address)})

        ready = receive_notifications(receiver)
        assert daemon.stop() == 0
        stopping = receive_notifications(receiver)

    assert "READY=1" in ready.splitlines()
    assert f"MAINPID={daemon.pid}" in ready.splitlines()
    assert stopping == "STOPPING=1"


@pytest.mark.skipif(sys.platform != "linux", reason="abstract sockets are Linux only")
def test_daemon_accepts_an_abstract_notify_address(meshd_factory: MeshdFactory) -> None:
    name = f"meshd-test-{os.getpid()}-{id(meshd_factory)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        meshd_factory.start(env={"NOTIFY_SOCKET": "@" + name})

        assert "READY=1" in receive_notifications(receiver).splitlines()


def test_daemon_serves_the_socket_passed_by_the_service_manager(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    path = runtime / "meshd.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)

    with listener:
        daemon = meshd_factory.start(
            launcher=[
                sys.executable,
                "-c",
                ACTIVATION_LAUNCHER,
                str(listener.fileno()),
            ],
            pass_fds=[listener.fileno()],
            socket_path=path,
        )
    with Client(path) as client:
        pong = client.call("daemon.ping")

    assert pong["pid"] == daemon.pid
    assert not (daemon.home / "meshd.sock").exists()
    assert daemon.stop() == 0
    # The socket belongs to the service manager: meshd leaves it in place.
    assert path.exists()


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="no systemd-analyze"
)
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    meshd_script = Path(sys.executable).parent / "meshd"
    if not meshd_script.exists():
        pytest.skip("the meshd console script is not installed")
    service = (ROOT / "systemd" / "meshd.service").read_text()
    (tmp_path / "meshd.service").write_text(
        service.replace("%h/.local/bin/meshd", str(meshd_script))
    )
    shutil.copy(ROOT / "systemd" / "meshd.socket", tmp_path / "meshd.socket")

    verified = subprocess.run(
        ["systemd-analyze", "verify", "meshd.service", "meshd.socket"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert verified.returncode == 0, verified.stderr


def test_service_unit_waits_for_readiness_and_uses_the_socket_unit() -> None:
    service = (ROOT / "systemd" / "meshd.service").read_text()
    socket_unit = (ROOT / "systemd" / "meshd.socket").read_text()

    assert "Type=notify" in service.splitlines()
    assert "ListenStream=%t/meshd/meshd.sock" in socket_unit.splitlines()
    assert "SocketMode=0600" in socket_unit.splitlines()


def test_launch_agent_is_a_valid_plist_running_meshd() -> None:
    with (ROOT / "launchd" / "org.meshd.meshd.plist").open("rb") as handle:
        agent = plistlib.load(handle)

    assert agent["Label"] == "org.meshd.meshd"
    assert agent["ProgramArguments"][-1] == "run"
    assert agent["ProgramArguments"][0].endswith("/meshd")
    assert agent["RunAtLoad"] is True
