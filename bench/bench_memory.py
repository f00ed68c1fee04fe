"""Resident memory of a real daemon, against a bare trio process of the run.

Each process is started, waited for, and its ``VmRSS`` read from
``/proc/<pid>/status`` (Linux only): a bare ``python -c "import trio; ..."``
sleeping in ``trio.run`` (what any trio program costs), the daemon on a
mesh member's home with an empty passport, and the daemon on the same home
after ingesting the biggest history (100k ops at full scale). The daemon is
read after its socket answers ``mesh.status`` and ``passport.get`` and its
first sync round has had time to run. Goals are absolute (60 MB idle,
100 MB with the history); the ratio to the bare process is beside them.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.bench_homes import histories
from bench.bench_support import figure, sized
from meshd.client import Client

IDLE_GOAL_MB = 60
LOADED_GOAL_MB = 100
# Time for the first sync round (against an empty storage folder) to finish.
SETTLE_SECONDS = float(sized(2.0, 0.5))

BARE_TRIO = """
import sys, trio

async def main():
    print("ready", flush=True)
    await trio.sleep_forever()

trio.run(main)
"""

CONFIG = '[keystore]\nkdf = "minimum"\n'


def rss_mb(pid: int) -> float:
    """The resident set of ``pid`` in MB, from /proc.

    Raises:
        RuntimeError: the process has no VmRSS line (gone, or not Linux).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No VmRSS for process {pid}")


def bare_trio_mb() -> float:
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_TRIO], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        return rss_mb(process.pid)
    finally:
        process.kill()
        process.wait(30)


def daemon_mb(home: Path) -> float:
    """Start ``meshd run`` on ``home``, wait until it serves the mesh, read RSS."""
    config = home.parent / "meshd.toml"
    config.write_text(CONFIG)
    command = ["run", "--home", str(home), "--config", str(config)]
    process = subprocess.Popen(
        [sys.executable, "-m", "meshd.cli", *command, "--log-level", "WARNING"],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_mesh(home / "meshd.sock", process)
        time.sleep(SETTLE_SECONDS)
        return rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def wait_for_mesh(socket: Path, process: subprocess.Popen[bytes]) -> None:
    """Until ``mesh.status`` answers (the device and its replica are open),
    then read the passport once, as a user would.

    Raises:
        RuntimeError: the daemon exited or never answered.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the daemon exited at start")
        try:
            with Client(socket, timeout=30.0) as client:
                status = client.call("mesh.status")
                client.call("passport.get")
        except Exception:
            time.sleep(0.1)
            continue
        if status["state"] != "member":
            raise RuntimeError(f"the daemon is {status['state']}, not a member")
        return
    raise RuntimeError(f"the daemon never answered on {socket}")


def _home_copy(source: Path, name: str) -> Path:
    target = source.parents[1] / f"memory-{name}" / "home"
    shutil.copytree(source, target)
    return target


def run() -> dict[str, Any]:
    """RSS of the bare process, the idle daemon and the loaded daemon."""
    built = histories()
    size = max(built.homes)
    bare = bare_trio_mb()
    idle = daemon_mb(_home_copy(built.empty, "idle"))
    loaded = daemon_mb(_home_copy(built.homes[size], "loaded"))
    return {
        "figures": [
            memory_figure("daemon RSS, idle", idle, bare, IDLE_GOAL_MB),
            memory_figure(f"daemon RSS, {size} ops", loaded, bare, LOADED_GOAL_MB),
        ]
    }


def memory_figure(name: str, value: float, bare: float, goal: int) -> dict[str, Any]:
    return figure(name, value, bare, value / bare, f"<= {goal} MB", value <= goal, "MB")


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
