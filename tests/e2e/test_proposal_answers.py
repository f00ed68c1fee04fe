"""What approvers and a joining device are told about a proposal, on real
daemons driven by meshctl: what approving changes, how many answered yes
and no, and what an approval achieved.

The stories run on a shared folder only: what they check is said by the
daemon, whatever storage driver carries the objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshd.crypto.suite import device_id_from_key
from tests.e2e.conftest import Device, Devices
from tests.e2e.test_stories import (
    create_mesh,
    finish_join,
    request_join,
    three_device_mesh,
)


@pytest.fixture
def folder(tmp_path: Path) -> str:
    storage = tmp_path / "storage"
    storage.mkdir()
    return str(storage)


def two_device_mesh(
    devices: Devices, folder: str
) -> tuple[Device, Device, dict[str, Any]]:
    """Phone and laptop; the laptop's enrollment raised the threshold to 2.

    Returns the devices and the phone's answer to approving the laptop.
    """
    devices.start("phone", "laptop")
    phone = create_mesh(devices, folder)
    laptop = devices["laptop"]
    request = request_join(laptop, phone)
    phone.sync()
    approved = phone.ok(
        "approve", str(request["request_id"]), "--code", str(request["code"])
    )
    finish_join(laptop)
    phone.sync()
    return phone, laptop, approved


def test_an_approval_says_what_its_proposal_needed_and_a_full_proof_is_complete(
    devices: Devices, folder: str
) -> None:
    phone, laptop, enrolled = two_device_mesh(devices, folder)
    started = phone.ok("prove", "--challenge", "nonce-1", "--threshold")
    laptop.sync()

    proved = laptop.ok("approve", started["proposal_id"])

    # The laptop's enrollment needed the phone alone, then raised the threshold.
    assert (enrolled["approvals"], enrolled["required"]) == (1, 1)
    assert enrolled["state"] == "applied"
    assert phone.ok("status")["threshold"] == 2
    assert (proved["approvals"], proved["required"]) == (2, 2)
    assert proved["state"] == "complete"
    phone.sync()
    assert len(phone.ok("proof", started["proposal_id"])["signatures"]) == 2


def test_a_revocation_named_by_its_short_id_shows_its_threshold_and_reason(
    devices: Devices, folder: str
) -> None:
    phone, laptop, _ = two_device_mesh(devices, folder)
    short = "-".join(laptop.device_id.split("-")[:2])
    spare = devices["spare"]

    recovery = spare.run(
        "recover", phone.ok("invite")["invite"], "--replace", short.lower()
    )
    unknown = phone.run("revoke", "ZZZZ-ZZZZ")
    revoke = phone.ok("revoke", short, "--threshold", "1", "--reason", "lost it")
    laptop.sync()
    (listed,) = laptop.ok("pending")
    status, out, _ = laptop.daemon.meshctl("pending")

    # The recovery named the laptop: the phone alone cannot approve it.
    assert recovery.reason == "lockout_refused", recovery.error
    assert "replacing 1 of the 2 active devices" in recovery.error["message"]
    assert unknown.reason == "invalid_input", unknown.error
    assert "nor the start of one" in unknown.error["message"]
    assert revoke["device_id"] == laptop.device_id
    assert listed["cutoffs"] == {laptop.device_id: revoke["cutoff"]}

    # What approving changes is shown whole, threshold and reason included.
    assert (listed["threshold"], listed["reason"]) == (1, "lost it")
    assert "and set the threshold to 1; reason: lost it" in listed["summary"]
    assert status == 0
    assert "and set the threshold to 1; reason: lost it" in out


def test_rejections_are_counted_and_close_a_request_that_cannot_pass(
    devices: Devices, folder: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, folder)
    watch = devices["watch"]
    request = request_join(watch, laptop)
    identifier = str(request["request_id"])
    phone.sync()
    phone.ok("reject", identifier)

    # One no of three: the other two can still approve it.
    for device in (laptop, watch):
        device.sync()
    (listed,) = laptop.ok("pending")
    assert (listed["approvals"], listed["rejections"]) == (0, 1)
    assert "REJECTIONS" in laptop.daemon.meshctl("pending")[1].splitlines()[0]
    waiting = watch.ok("status")["request"]
    assert (waiting["state"], waiting["rejections"]) == ("pending", 1)

    # Wrong codes lock it on the tablet, which then counts as a second no:
    # one device is left to approve, for a threshold of 2.
    tablet.sync()
    wrong = f"{(int(str(request['code'])) + 1) % 1_000_000:06d}"
    answers = [tablet.run("approve", identifier, "--code", wrong) for _ in range(3)]
    assert answers[-1].reason == "too_many_attempts", answers[-1].error
    tablet.sync()

    for device in (phone, laptop):
        device.sync()
        assert device.ok("pending") == []
    watch.sync()
    closed = watch.ok("status")["request"]
    _, out, _ = watch.daemon.meshctl("status")
    assert (closed["state"], closed["rejections"]) == ("rejected", 2)
    assert "rejections 2" in out and "(rejected)" in out
    assert "join request was rejected" in out and "meshctl join" in out
    assert "waiting for approvals" not in out


def test_a_refused_recovery_leaves_the_new_device_without_a_mesh(
    devices: Devices, folder: str
) -> None:
    devices.start("phone", "spare")
    phone = create_mesh(devices, folder)
    spare = devices["spare"]
    invite = phone.ok("invite")["invite"]
    elsewhere = device_id_from_key(bytes(32))

    mistyped = spare.run("recover", invite, "--replace", "AAAA")
    stranger = spare.run("recover", invite, "--replace", elsewhere)
    everyone = spare.run("recover", invite, "--replace", phone.device_id)

    assert mistyped.reason == "invalid_input", mistyped.error
    assert stranger.reason == "not_found", stranger.error
    assert everyone.reason == "lockout_refused", everyone.error
    message = everyone.error["message"]
    assert "must be approved by 1 of the devices it does not replace" in message
    assert "revoke --threshold" not in message
    assert spare.ok("status")["state"] == "no mesh"

    # The device can still ask to join as if nothing happened.
    assert spare.ok("join", invite)["required_approvals"] == 1


def test_a_joining_device_asked_into_another_mesh_says_which_it_waits_for(
    devices: Devices, folder: str, tmp_path: Path
) -> None:
    devices.start("phone", "desktop", "tablet")
    phone = create_mesh(devices, folder)
    other = tmp_path / "other-storage"
    other.mkdir()
    desktop, tablet = devices["desktop"], devices["tablet"]
    desktop.ok("init", "--label", "bob", "--storage", str(other))
    asked = request_join(tablet, phone)
    did = tablet.ok("status")["did"]

    refused = tablet.run("join", desktop.ok("invite")["invite"])

    assert refused.reason == "invalid_state", refused.error
    message = refused.error["message"]
    assert f"waiting to join the mesh {did}" in message
    assert "move its home away" in message and "already belongs" not in message
    assert tablet.ok("status")["request"]["request_id"] == asked["request_id"]
