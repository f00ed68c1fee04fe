"""Real meshd daemons in subprocesses, on real sockets, for tests.

``meshd_factory`` starts as many daemons as a test needs, each in its own
home under the test's temporary folder, waits until its socket answers, and
at the end stops each with SIGTERM, checking that it exits 0 and removes its
socket. ``meshd`` is one such daemon. Each handle offers ``call()`` (the
Python client), ``send_raw()`` (bytes on a fresh connection) and
``meshctl(*args)`` (the real command line, as a user would run it).

Daemons started here use the weakest passphrase hashing so tests stay fast;
pass ``config=`` to change any setting.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshd.client import Client

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0

TEST_CONFIG = """\
[rpc]
line_timeout = 2.0
stop_grace = 5.0

[keystore]
kdf = "minimum"
"""

# Variables of the test runner's own environment that would change how a
# daemon or meshctl under test behaves.
_ISOLATED = (
    "MESHD_HOME",
    "MESHD_PASSPHRASE",
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
)


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if key not in _ISOLATED
    }
    environment.update(extra or {})
    return environment


def run_meshctl(
    *args: str,
    home: Path | None = None,
    socket_path: Path | None = None,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, str, str]:
    """Run the real meshctl; returns (exit status, stdout, stderr)."""
    command = [sys.executable, "-m", "meshctl.main"]
    if home is not None:
        command += ["--home", str(home)]
    if socket_path is not None:
        command += ["--socket", str(socket_path)]
    completed = subprocess.run(
        [*command, *args],
        input=input,
        capture_output=True,
        text=True,
        env=clean_environment(env),
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return completed.returncode, completed.stdout, completed.stderr


@dataclass
class MeshdProcess:
    """One running daemon and the ways a test talks to it."""

    home: Path
    socket: Path
    process: subprocess.Popen[bytes]
    log: Path
    stopped: bool = False
    clients: list[Client] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float | None = 30.0) -> Client:
        client = Client(self.socket, timeout=timeout)
        self.clients.append(client)
        return client

    def call(self, method: str, /, **params: Any) -> Any:
        """One call on a fresh connection (the blocking client)."""
        with Client(self.socket, timeout=30.0) as client:
            return client.call(method, **params)

    def send_raw(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Send bytes on a new connection, half-close, read all that comes back."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(self.socket))
            connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def meshctl(self, *args: str, input: str | None = None) -> tuple[int, str, str]:
        return run_meshctl(*args, home=self.home, input=input)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the daemon and wait for it; returns its exit status."""
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"meshd did not stop:\n{self.log_text()}") from None
        self.stopped = True
        return status


class MeshdFactory:
    """Starts daemons for one test and checks that each stops cleanly."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.daemons: list[MeshdProcess] = []
        self._count = 0

    def start(
        self,
        home: Path | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        config: str | None = TEST_CONFIG,
        launcher: Sequence[str] = (),
        pass_fds: Sequence[int] = (),
        wait: bool = True,
        socket_path: Path | None = None,
    ) -> MeshdProcess:
        """Start ``meshd run --home HOME`` and wait until it answers.

        ``launcher`` is put before the python command (to set up descriptors
        or the environment of the exact process); ``wait=False`` returns at
        once (for daemons expected to fail).
        """
        self._count += 1
        home = home or self.base / f"home-{self._count}"
        command = [
            *launcher,
            sys.executable,
            "-m",
            "meshd.cli",
            "run",
            "--home",
            str(home),
        ]
        if config is not None:
            config_path = self.base / f"meshd-{self._count}.toml"
            config_path.write_text(config, encoding="utf-8")
            command += ["--config", str(config_path)]
        command += list(args)

        log = self.base / f"meshd-{self._count}.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_environment(env),
                pass_fds=tuple(pass_fds),
            )
        daemon = MeshdProcess(home, socket_path or home / "meshd.sock", process, log)
        self.daemons.append(daemon)
        if wait:
            wait_until_answering(daemon)
        return daemon

    def stop_all(self) -> None:
        """Stop every daemon still running; each must exit 0 and remove its socket."""
        problems = []
        for daemon in self.daemons:
            if daemon.stopped or daemon.process.poll() is not None:
                continue
            status = daemon.stop()
            if status != 0:
                problems.append(f"meshd exited {status}:\n{daemon.log_text()}")
            elif daemon.socket.exists():
                problems.append(f"meshd left its socket {daemon.socket}")
        assert not problems, "\n".join(problems)


def wait_until_answering(daemon: MeshdProcess) -> None:
    """Poll ``daemon.ping`` until the daemon answers or dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            status = daemon.process.returncode
            raise AssertionError(
                f"meshd exited {status} at start:\n{daemon.log_text()}"
            )
        try:
            daemon.call("daemon.ping")
            return
        except Exception:
            time.sleep(0.05)
    daemon.process.kill()
    raise AssertionError(f"meshd did not answer in time:\n{daemon.log_text()}")


# Daemons that poll storage rarely: only ``meshctl sync`` moves objects, so
# each step of a test happens when the test says.
MANUAL_SYNC_CONFIG = TEST_CONFIG + "\n[sync]\ninterval = 30\n"


def meshctl_ok(daemon: MeshdProcess, *args: str) -> Any:
    """Run ``meshctl --json ARGS``, which must succeed; its parsed result."""
    status, out, err = daemon.meshctl("--json", *args)
    assert status == 0, f"meshctl {args} exited {status}: {err}"
    return json.loads(out)
