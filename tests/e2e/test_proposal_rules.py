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
    phone, laptop, _tablet = three_device_mesh(devices, folder)
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


def test_a_revocation_keeps_the_op_its_device_wrote_just_before(
    devices: Devices, folder: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, folder)

    # The tablet writes; the laptop revokes it at once, without a manual sync.
    tablet.ok("passport", "set", "profile/city", '"Oslo"')
    revoke = laptop.ok("revoke", tablet.device_id, "--reason", "sold")

    assert revoke["cutoff"] >= 1 and revoke["cutoff_fresh"] is True
    assert revoke["device_id"] == tablet.device_id
    phone.sync()
    (pending,) = phone.ok("pending")
    assert pending["cutoffs"] == {tablet.device_id: revoke["cutoff"]}
    assert f"keeps its ops up to {revoke['cutoff']}" in pending["summary"]

    # Once revoked, the tablet's honest op is kept on every device.
    assert phone.ok("approve", revoke["proposal_id"])["state"] == "applied"
    phone.sync()
    laptop.sync()
    for device in (phone, laptop):
        assert device.ok("passport", "get", "profile/city") == "Oslo"
        problems = device.ok("status")["problems"]
        assert "past_cutoff" not in {p["reason"] for p in problems}
