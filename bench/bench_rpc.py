"""How much the daemon's JSON-RPC layer costs, as ratios against a bare server.

``mesh.status`` round trips on a real daemon (a mesh member) are timed
against round trips on a bare trio server that echoes each newline-delimited
line back over the same kind of Unix socket, so the figure is the daemon's
overhead (parsing, dispatch, the handler, encoding) and not the machine's
speed. Then 8 clients call concurrently and every answer must be a result.

    python -m bench.bench_rpc
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.bench_homes import histories
from bench.bench_support import at_least, figure, interleaved_medians, sized
from meshd.client import Client

# The daemon answers at least 0.7 times as many round trips as a bare
# server that only echoes lines: parsing, dispatch and the handler cost less
# than half the socket round trip itself.
RPC_GOAL = 0.7
# Calls per client at full scale (8 clients).
CONCURRENT_CALLS = 10_000

ECHO_SERVER = """
import sys, trio

async def echo(stream):
    buffer = b""
    async with stream:
        while data := await stream.receive_some(65536):
            buffer += data
            while b"\\n" in buffer:
                line, buffer = buffer.split(b"\\n", 1)
                await stream.send_all(line + b"\\n")

async def main():
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(sys.argv[1])
    sock.listen(64)
    print("ready", flush=True)
    await trio.serve_listeners(echo, [trio.SocketListener(sock)])

trio.run(main)
"""

REQUEST = b'{"jsonrpc":"2.0","method":"mesh.status","id":1}\n'


def round_trips(path: Path, count: int) -> float:
    """Seconds per round trip of REQUEST on one connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(path))
        reader = connection.makefile("rb")
        started = time.perf_counter()
        for _ in range(count):
            connection.sendall(REQUEST)
            reader.readline()
        return (time.perf_counter() - started) / count


def concurrent_calls(path: Path, clients: int, calls: int) -> dict[str, Any]:
    errors: list[str] = []

    def work() -> None:
        try:
            with Client(path) as client:
                for _ in range(calls):
                    client.call("mesh.status")
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "calls_each": calls,
        "errors": len(errors),
        "calls_per_second": round(clients * calls / elapsed, 1),
    }


def wait_for_socket(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited at start")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on {path}")


def start_servers(base: Path) -> tuple[subprocess.Popen[bytes], ...]:
    """A real daemon (on a copy of a mesh member's home, so ``mesh.status``
    answers with the mesh) and the echo server, each in its own process."""
    home = base / "home"
    shutil.copytree(histories().empty, home)
    config = base / "meshd.toml"
    config.write_text('[keystore]\nkdf = "minimum"\n')
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MESHD_", "LISTEN_", "NOTIFY_"))
    }
    command = ["run", "--home", str(home), "--config", str(config)]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "meshd.cli", *command, "--log-level", "WARNING"],
        env=environment,
        stderr=subprocess.DEVNULL,
    )
    echo = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER, str(base / "echo.sock")],
        stdout=subprocess.DEVNULL,
    )
    return daemon, echo


def run() -> dict[str, Any]:
    """Round trips against the echo server, then concurrent clients."""
    repeats = int(sized(5, 2))
    calls = int(sized(2_000, 100))
    clients = 8
    calls_each = int(sized(CONCURRENT_CALLS, 50))
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        daemon, echo = start_servers(base)
        try:
            wait_for_socket(base / "home" / "meshd.sock", daemon)
            wait_for_socket(base / "echo.sock", echo)
            ours, bare = interleaved_medians(
                functools.partial(round_trips, base / "home" / "meshd.sock", calls),
                functools.partial(round_trips, base / "echo.sock", calls),
                repeats,
            )
            load = concurrent_calls(base / "home" / "meshd.sock", clients, calls_each)
        finally:
            daemon.send_signal(signal.SIGTERM)
            echo.kill()
            daemon.wait(30)
            echo.wait(30)

    errors = load["errors"]
    return {
        "figures": [
            at_least("mesh.status round trip (echo/daemon)", ours, bare, RPC_GOAL),
            figure(
                f"{clients} clients x {calls_each} mesh.status calls: errors",
                errors,
                None,
                None,
                "== 0",
                errors == 0,
                "errors",
            ),
        ],
        "round_trip_us": round(ours * 1e6, 1),
        "echo_round_trip_us": round(bare * 1e6, 1),
        "concurrent": load,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
