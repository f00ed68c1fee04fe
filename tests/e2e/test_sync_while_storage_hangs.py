"""``meshctl sync`` while S3 hangs, told with real daemons, the real meshctl
and a real S3 server on loopback that the test freezes and thaws."""

from __future__ import annotations

import time

from meshctl.main import EXIT_DAEMON_ERROR
from meshd.client import DEFAULT_TIMEOUT
from meshd.node import SYNC_WAIT_SECONDS
from tests.daemons import MeshdFactory
from tests.e2e.test_storage_outage import (
    FreezableS3,
    S3Devices,
    freezable_s3,  # noqa: F401  (the fixture of this story)
    phone_and_laptop,
    wait_for_value,
)


def test_sync_while_storage_hangs_says_storage_is_slow_and_the_daemon_goes_on(
    freezable_s3: FreezableS3,  # noqa: F811
    meshd_factory: MeshdFactory,
) -> None:
    devices = S3Devices(meshd_factory, freezable_s3.endpoint_url)
    phone, laptop = phone_and_laptop(devices, f"s3://{freezable_s3.bucket}/mesh")

    freezable_s3.freeze()
    try:
        phone.ok("passport", "set", "profile/x", "3")
        started = time.monotonic()
        hung = phone.run("sync")
        answered_after = time.monotonic() - started
        status_shown = phone.run("status")
    finally:
        freezable_s3.thaw()

    # The daemon answered before the client gave up on it, and said it is
    # the storage that hangs, not the daemon that is gone.
    assert hung.status == EXIT_DAEMON_ERROR, hung.error
    assert hung.reason == "storage_unavailable", hung.error
    assert "keeps trying in the background" in hung.error["message"]
    assert answered_after < DEFAULT_TIMEOUT
    assert SYNC_WAIT_SECONDS < DEFAULT_TIMEOUT / 2
    assert status_shown.status == 0, status_shown.error

    # Once storage answers again, the round the daemon kept going delivers
    # the change, and sync answers as before.
    wait_for_value(laptop, "profile/x", 3)
    assert phone.sync()["storage"] == f"s3://{freezable_s3.bucket}/mesh"
