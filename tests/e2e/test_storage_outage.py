"""Writes while storage hangs, told with real daemons, the real meshctl and a
real S3 server on loopback that the test freezes and thaws.

The S3 server runs in its own process so that SIGSTOP freezes it the way a
hung provider behaves: connections are accepted, nothing is answered.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest

from meshctl.render import NOT_PUSHED
from meshd.node import PUSH_WAIT_SECONDS
from tests.daemons import MeshdFactory, MeshdProcess, clean_environment
from tests.e2e.conftest import E2E_CONFIG, Device, Devices
from tests.e2e.test_stories import approve_join, create_mesh, finish_join, request_join
from tests.s3server import DUMMY_KEY, DUMMY_SECRET, LOOPBACK, REGION, s3_environment

START_TIMEOUT = 30.0
# How long a thawed storage may take to receive the frozen push: generous,
# the queued requests are answered as soon as the server runs again.
DELIVERY_TIMEOUT = 90.0


@dataclass
class FreezableS3:
    """A moto S3 server in a child process that the test can freeze."""

    process: subprocess.Popen[bytes]
    endpoint_url: str
    bucket: str

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def create_bucket_when_up(endpoint_url: str, process: subprocess.Popen[bytes]) -> str:
    """Create the test's bucket as soon as the server answers."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_SECRET,
        region_name=REGION,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert process.poll() is None, "the S3 server exited at start"
        try:
            client.create_bucket(Bucket="meshd-outage")
            return "meshd-outage"
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def freezable_s3(tmp_path: Path) -> Iterator[FreezableS3]:
    """A fresh S3 server process of this test only, stopped by its pid."""
    port = free_loopback_port()
    endpoint_url = f"http://{LOOPBACK}:{port}"
    with (tmp_path / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_environment(s3_environment(endpoint_url)),
        )
    try:
        bucket = create_bucket_when_up(endpoint_url, process)
        yield FreezableS3(process, endpoint_url, bucket)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(20)


class S3Devices(Devices):
    """Devices whose daemons reach the test's own S3 server."""

    def __init__(self, factory: MeshdFactory, endpoint_url: str) -> None:
        super().__init__(factory)
        self.environment = s3_environment(endpoint_url)

    def _launch(self, name: str) -> MeshdProcess:
        home = self.factory.base / name
        return self.factory.start(
            home, config=E2E_CONFIG, env=self.environment, wait=False
        )


def phone_and_laptop(devices: Devices, storage_url: str) -> tuple[Device, Device]:
    """A mesh of two devices, both synced."""
    devices.start("phone", "laptop")
    phone = create_mesh(devices, storage_url)
    laptop = devices["laptop"]
    assert approve_join(phone, request_join(laptop, phone))["state"] == "applied"
    finish_join(laptop)
    return phone, laptop


def wait_for_value(device: Device, path: str, expected: object) -> None:
    """Sync ``device`` until it shows ``expected`` at ``path``."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        device.sync()
        shown = device.run("passport", "get", path)
        if shown.status == 0 and shown.result == expected:
            return
        assert time.monotonic() < deadline, f"{path} never arrived: {shown}"
        time.sleep(0.5)


def test_a_write_while_storage_hangs_is_saved_at_once_and_pushed_when_it_thaws(
    freezable_s3: FreezableS3, meshd_factory: MeshdFactory
) -> None:
    devices = S3Devices(meshd_factory, freezable_s3.endpoint_url)
    phone, laptop = phone_and_laptop(devices, f"s3://{freezable_s3.bucket}/mesh")
    before = phone.ok("passport", "set", "profile/w", "2")

    freezable_s3.freeze()
    try:
        started = time.monotonic()
        saved = phone.ok("passport", "set", "profile/x", "3")
        answered_after = time.monotonic() - started
        status, out, err = phone.daemon.meshctl("passport", "set", "profile/y", "4")
        shown_here = phone.ok("passport", "get", "profile/x")
    finally:
        freezable_s3.thaw()

    # While storage answered, a write said it reached storage.
    assert before["pushed"] is True

    # The write answered (well before the client's own 60 s patience) and
    # said storage has not taken it yet; a person reads it in words.
    assert saved["path"] == "profile/x" and saved["op_id"]
    assert saved["pushed"] is False
    assert answered_after < PUSH_WAIT_SECONDS * 10
    assert status == 0, err
    assert NOT_PUSHED in out
    assert shown_here == 3

    # Nobody runs sync on the phone: its own loop finishes the push.
    wait_for_value(laptop, "profile/x", 3)
    wait_for_value(laptop, "profile/y", 4)


def missing_objects(device: Device) -> set[str]:
    """The objects status says vanished from storage."""
    return {
        str(problem["name"])
        for problem in device.ok("status")["problems"]
        if problem["reason"] == "object_missing"
    }


def stored_names(storage: Path) -> set[str]:
    """The object names in the mesh's folder under ``storage``."""
    (mesh_folder,) = storage.iterdir()
    return {
        path.relative_to(mesh_folder).as_posix()
        for path in mesh_folder.rglob("*")
        if path.is_file()
    }


def warnings_of(device: Device) -> list[str]:
    return [str(warning) for warning in device.ok("status")["warnings"]]


def test_a_removed_storage_folder_is_not_recreated_and_sync_resumes_when_it_returns(
    devices: Devices, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    phone, laptop = phone_and_laptop(devices, str(storage))

    # The drive is unplugged (or the synced folder removed) under the mesh.
    shutil.rmtree(storage)
    saved = phone.ok("passport", "set", "profile/x", "3")

    assert saved["pushed"] is False
    assert not storage.exists()
    assert phone.ok("passport", "get", "profile/x") == 3
    assert any(
        "is missing: is the drive mounted?" in warning and str(storage) in warning
        for warning in warnings_of(phone)
    ), warnings_of(phone)

    # The drive is back, empty of the mesh: both devices put back what they
    # hold and the change arrives.
    storage.mkdir()
    phone.sync()
    laptop.sync()
    assert laptop.ok("passport", "get", "profile/x") == 3
    assert not any("drive mounted" in warning for warning in warnings_of(phone))

    # The phone saw every object vanish; once one is listed again, status no
    # longer reports it.
    vanished = missing_objects(phone)
    assert any("missing from storage" in warning for warning in warnings_of(phone))
    phone.sync()
    still_missing = missing_objects(phone)
    listed = stored_names(storage)
    assert vanished & listed
    assert not still_missing & listed
    assert still_missing < vanished
