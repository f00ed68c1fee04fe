"""Fixtures of the end-to-end stories: a mesh of real daemons on one storage.

Each story runs twice: on a shared folder and on a real S3 server on
loopback. Daemons poll storage rarely, so a test decides when each device
syncs by running ``meshctl sync``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_PROJECT = str(Path(__file__).resolve().parents[2])
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from tests.daemons import (  # noqa: E402
    TEST_CONFIG,
    MeshdFactory,
    MeshdProcess,
    wait_until_answering,
)
from tests.s3server import s3_bucket, s3_server  # noqa: E402, F401

# The background poll is slow so that only ``meshctl sync`` moves objects.
E2E_CONFIG = TEST_CONFIG + "\n[sync]\ninterval = 30\n"


class CommandFailed(AssertionError):
    """meshctl exited non-zero where a test expected it to succeed."""


@dataclass
class Outcome:
    """What a user saw from one ``meshctl --json`` command."""

    status: int
    result: Any
    error: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        """The stable reason of the error the daemon reported, if any."""
        data = self.error.get("data")
        return data.get("reason") if isinstance(data, dict) else None


@dataclass
class Device:
    """One simulated device: a running daemon and its name in the story."""

    name: str
    daemon: MeshdProcess
    device_id: str = ""

    def run(self, *args: str) -> Outcome:
        """Run ``meshctl --json ARGS``; parse stdout or the error on stderr."""
        status, out, err = self.daemon.meshctl("--json", *args)
        if status == 0:
            return Outcome(status, json.loads(out) if out.strip() else None)
        lines = [line for line in err.splitlines() if line.startswith("{")]
        error = json.loads(lines[-1])["error"] if lines else {"stderr": err}
        return Outcome(status, None, error)

    def ok(self, *args: str) -> Any:
        """Run a command that must succeed and return its parsed result."""
        outcome = self.run(*args)
        if outcome.status != 0:
            raise CommandFailed(
                f"{self.name}: meshctl {' '.join(args)} exited {outcome.status}: "
                f"{outcome.error}\n--- daemon log ---\n{self.daemon.log_text()[-4000:]}"
            )
        return outcome.result

    def sync(self) -> Any:
        return self.ok("sync")


@pytest.fixture(params=["folder", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the mesh keeps its objects: a folder, or a bucket on S3."""
    if request.param == "folder":
        folder = tmp_path / "storage"
        folder.mkdir()
        return str(folder)
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/mesh"


class Devices(dict[str, Device]):
    """The story's devices by name; a daemon starts the first time it is named."""

    def __init__(self, factory: MeshdFactory) -> None:
        super().__init__()
        self.factory = factory

    def start(self, *names: str) -> list[Device]:
        """Start several daemons at once (they load side by side), then wait."""
        started = [
            Device(name, self._launch(name)) for name in names if name not in self
        ]
        for device in started:
            wait_until_answering(device.daemon)
            self[device.name] = device
        return [self[name] for name in names]

    def _launch(self, name: str) -> MeshdProcess:
        home = self.factory.base / name
        return self.factory.start(home, config=E2E_CONFIG, wait=False)

    def __missing__(self, name: str) -> Device:
        return self.start(name)[0]


@pytest.fixture
def devices(meshd_factory: MeshdFactory) -> Devices:
    """Start daemons on demand by name: ``devices["phone"]``."""
    return Devices(meshd_factory)
