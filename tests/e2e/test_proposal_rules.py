"""Proposal rules a person meets on a 2-of-3 mesh of real daemons: the
threshold never drops to 1 while several devices remain, and a device's
answer to a proposal stands.

The stories run on a shared folder only: the rules live in the daemon, not in
the storage driver, and the S3 runs of the main stories cover the transport.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Devices
from tests.e2e.test_stories import three_device_mesh


@pytest.fixture
def folder(tmp_path: Path) -> str:
    storage = tmp_path / "storage"
    storage.mkdir()
    return str(storage)


def test_threshold_one_is_refused_on_a_two_of_three_mesh(
    devices: Devices, folder: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, folder)

    refused = laptop.run("threshold", "1")
    status, out, err = laptop.daemon.meshctl("threshold", "1")

    assert refused.status == 1
    assert refused.reason == "lockout_refused", refused.error
    assert refused.error["data"]["rule"] == "threshold_one"
    assert (status, out) == (1, "")
    assert "only while the mesh has one device" in err
    # Nothing was proposed, so there is nothing for a second device to approve.
    phone.sync()
    assert phone.ok("pending") == []
    assert tablet.ok("status")["threshold"] == 2


def test_a_device_that_rejected_a_proposal_cannot_then_approve_it(
    devices: Devices, folder: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, folder)
    proposal = laptop.ok("threshold", "3")
    phone.sync()

    assert phone.ok("reject", proposal["proposal_id"])["state"] == "pending"
    refused = phone.run("approve", proposal["proposal_id"])

    assert refused.status == 1
    assert refused.reason == "invalid_state", refused.error
    assert "its answer stands" in refused.error["message"]
    laptop.sync()
    (still,) = laptop.ok("pending")
    assert (still["approvals"], still["required"]) == (1, 2)
    assert laptop.ok("status")["threshold"] == 2
