"""The daemon process: start, stop, one per home, a private socket."""

from __future__ import annotations

import os
import signal
import socket
import stat
from pathlib import Path

import pytest

from meshd.client import Client
from tests.daemons import TEST_CONFIG, MeshdFactory, MeshdProcess


def test_socket_is_0600_in_a_0700_folder(meshd: MeshdProcess) -> None:
    assert stat.S_IMODE(meshd.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(meshd.socket.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(meshd.socket.stat().st_mode)


def test_sigint_stops_as_cleanly_as_sigterm(meshd: MeshdProcess) -> None:
    assert meshd.stop(signal.SIGINT) == 0
    assert not meshd.socket.exists()
    log = meshd.log_text()
    assert "Daemon started" in log and "Daemon stopped" in log


def test_second_daemon_on_the_same_home_refuses_to_start(
    meshd_factory: MeshdFactory,
) -> None:
    first = meshd_factory.start()

    second = meshd_factory.start(first.home, wait=False)

    assert second.process.wait(30) == 1
    assert "already running" in second.log_text()
    assert first.call("daemon.ping")["pid"] == first.pid


def test_stale_socket_of_a_crashed_daemon_is_replaced(
    meshd_factory: MeshdFactory,
) -> None:
    crashed = meshd_factory.start()
    crashed.process.kill()
    crashed.process.wait()
    assert crashed.socket.exists()

    restarted = meshd_factory.start(crashed.home)

    assert restarted.call("daemon.ping")["pid"] == restarted.pid


def test_a_file_in_the_socket_place_is_left_alone(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "meshd.sock").write_text("not a socket")

    daemon = meshd_factory.start(home, wait=False)

    assert daemon.process.wait(30) == 1
    assert "not a socket" in daemon.log_text()
    assert (home / "meshd.sock").read_text() == "not a socket"


def test_socket_in_a_folder_others_can_enter_is_refused(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)

    daemon = meshd_factory.start(
        args=["--socket", str(shared / "meshd.sock")], wait=False
    )

    assert daemon.process.wait(30) == 1
    assert "0755" in daemon.log_text()


def test_socket_option_puts_the_socket_elsewhere(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime" / "meshd"
    daemon = meshd_factory.start(
        args=["--socket", str(runtime / "meshd.sock")],
        socket_path=runtime / "meshd.sock",
    )

    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    with Client(runtime / "meshd.sock") as client:
        assert client.call("daemon.ping")["pid"] == daemon.pid


def test_request_in_progress_is_answered_before_the_daemon_stops(
    meshd: MeshdProcess,
) -> None:
    # A line sent just before SIGTERM still gets its answer.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(20)
        connection.connect(str(meshd.socket))
        connection.sendall(b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}\n')
        os.kill(meshd.pid, signal.SIGTERM)
        answer = connection.makefile("rb").readline()

    assert meshd.process.wait(20) == 0
    assert b'"openrpc"' in answer


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("[rpc]\nmax_connections = 'many'\n", "max_connections"),
        ('[daemon]\nlog_level = "bogus"\n', "daemon.log_level"),
    ],
)
def test_bad_config_file_stops_the_start_with_one_line(
    meshd_factory: MeshdFactory, config: str, named: str
) -> None:
    daemon = meshd_factory.start(config=config, wait=False)

    assert daemon.process.wait(30) == 1
    assert named in daemon.log_text()
    assert "Traceback" not in daemon.log_text()


def test_a_misspelt_setting_is_named_in_the_log_and_the_daemon_runs(
    meshd_factory: MeshdFactory,
) -> None:
    daemon = meshd_factory.start(config=TEST_CONFIG + "\n[sync]\nintervall = 5\n")

    assert daemon.client().call("daemon.ping") is not None
    assert "unknown setting sync.intervall is ignored" in daemon.log_text()


def test_a_home_too_deep_for_a_socket_path_says_so_in_one_line(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    daemon = meshd_factory.start(tmp_path / ("deep" * 30), wait=False)

    assert daemon.process.wait(30) == 1
    assert "use a shorter --home or --socket" in daemon.log_text()
    assert "Traceback" not in daemon.log_text()


def test_a_corrupt_store_stops_the_start_with_one_line(
    meshd_factory: MeshdFactory,
) -> None:
    first = meshd_factory.start()
    assert first.stop() == 0
    store = first.home / "store.sqlite3"
    store.write_bytes(b"this is not a database" * 100)

    daemon = meshd_factory.start(first.home, wait=False)

    assert daemon.process.wait(30) == 1
    assert "store" in daemon.log_text()
    assert "Traceback" not in daemon.log_text()
    assert store.read_bytes() == b"this is not a database" * 100


def test_a_refused_socket_folder_leaves_the_home_as_it_was(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    home = tmp_path / "fresh-home"

    daemon = meshd_factory.start(
        home, args=["--socket", str(shared / "meshd.sock")], wait=False
    )

    assert daemon.process.wait(30) == 1
    assert "0755" in daemon.log_text()
    assert not home.exists()
    assert list(shared.iterdir()) == []
