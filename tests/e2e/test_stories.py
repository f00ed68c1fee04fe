"""The main stories of meshd, told with real daemons and the real meshctl.

Every story runs on a shared folder and on an S3 server on loopback. Devices
exchange objects only when a step runs ``meshctl sync`` on them.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Device, Devices


def create_mesh(devices: Devices, storage_url: str) -> Device:
    """Create Alice's mesh on her phone."""
    phone = devices["phone"]
    created = phone.ok(
        "init",
        "--label",
        "alice",
        "--storage",
        storage_url,
        "--device-name",
        "phone",
        "--device-kind",
        "phone",
    )
    assert created["did"].startswith("did:")
    phone.device_id = created["device_id"]
    return phone


def request_join(new: Device, sponsor: Device) -> dict[str, object]:
    """Ask to join with an invite from ``sponsor``; returns the request."""
    invite = sponsor.ok("invite")["invite"]
    request = new.ok(
        "join", invite, "--device-name", new.name, "--device-kind", new.name
    )
    assert isinstance(request["code"], str) and request["code"]
    return request


def approve_join(approver: Device, request: dict[str, object]) -> dict[str, object]:
    """The approver fetches the request, sees it pending, approves with the code."""
    approver.sync()
    pending_ids = [item["id"] for item in approver.ok("pending")]
    assert request["request_id"] in pending_ids
    return approver.ok(
        "approve", str(request["request_id"]), "--code", str(request["code"])
    )


def finish_join(new: Device) -> None:
    """The new device syncs and sees itself a member."""
    new.sync()
    status = new.ok("status")
    assert status["state"] == "member"
    new.device_id = status["device_id"]


def three_device_mesh(devices: Devices, storage_url: str) -> list[Device]:
    """Phone, laptop and tablet at threshold 2, everyone synced."""
    devices.start("phone", "laptop", "tablet")
    phone = create_mesh(devices, storage_url)
    laptop, tablet = devices["laptop"], devices["tablet"]

    request = request_join(laptop, phone)
    assert approve_join(phone, request)["state"] == "applied"
    finish_join(laptop)
    phone.sync()

    request = request_join(tablet, laptop)
    first = approve_join(phone, request)
    assert (first["approvals"], first["required"]) == (1, 2)
    second = approve_join(laptop, request)
    assert second["state"] == "applied"
    finish_join(tablet)
    # The laptop finalized the tablet's entry; the phone still has to fetch it.
    phone.sync()
    return [phone, laptop, tablet]


def device_states(device: Device) -> dict[str, str]:
    return {item["id"]: item["state"] for item in device.ok("devices")}


def test_enrollment_two_of_three_with_codes(devices: Devices, storage_url: str) -> None:
    devices.start("phone", "laptop", "tablet")
    phone = create_mesh(devices, storage_url)
    laptop = devices["laptop"]
    request = request_join(laptop, phone)
    assert request["required_approvals"] == 1
    phone.sync()

    # A code misread from the laptop's screen is refused.
    wrong = "000000" if request["code"] != "000000" else "111111"
    refused = phone.run("approve", str(request["request_id"]), "--code", wrong)
    assert refused.status == 1
    assert refused.reason == "wrong_code", refused.error
    assert laptop.ok("status")["state"] == "joining"

    approved = phone.ok(
        "approve", str(request["request_id"]), "--code", request["code"]
    )
    assert approved["state"] == "applied"
    finish_join(laptop)

    # A second device raises the threshold to 2 on its own.
    phone.sync()
    assert phone.ok("status")["threshold"] == 2
    assert laptop.ok("status")["threshold"] == 2

    tablet = devices["tablet"]
    request = request_join(tablet, laptop)
    assert request["required_approvals"] == 2
    assert approve_join(phone, request)["state"] == "pending"
    tablet.sync()
    assert tablet.ok("status")["state"] == "joining"
    assert approve_join(laptop, request)["state"] == "applied"
    finish_join(tablet)
    phone.sync()

    lists = [device.ok("devices") for device in (phone, laptop, tablet)]
    seen = [
        sorted(
            (item["id"], item["name"], item["kind"], item["state"]) for item in found
        )
        for found in lists
    ]
    assert seen[0] == seen[1] == seen[2]
    assert {item[0] for item in seen[0]} == {
        phone.device_id,
        laptop.device_id,
        tablet.device_id,
    }
    for device in (phone, laptop, tablet):
        status = device.ok("status")
        assert status["threshold"] == 2
        assert len(status["devices"]) == 3


def test_passport_and_capabilities_reach_every_device(
    devices: Devices, storage_url: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, storage_url)

    laptop.ok("passport", "set", "profile/name", '"Alice"')
    added = tablet.ok("capability", "add", "email", "--data", '{"address": "a@x"}')
    for device in (laptop, tablet, phone, laptop):
        device.sync()

    for device in (phone, laptop, tablet):
        assert device.ok("passport", "get", "profile/name") == "Alice"
        path = f"capabilities/{added['capability_id']}"
        capability = device.ok("passport", "get", path)
        assert capability == {"name": "email", "data": {"address": "a@x"}}


def test_stolen_phone_is_revoked_by_the_other_two(
    devices: Devices, storage_url: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, storage_url)

    proposal = laptop.ok("revoke", phone.device_id, "--reason", "stolen")
    assert (proposal["approvals"], proposal["required"]) == (1, 2)
    assert proposal["state"] == "pending"
    tablet.sync()
    assert tablet.ok("approve", proposal["proposal_id"])["state"] == "applied"
    laptop.sync()
    phone.sync()

    assert phone.ok("status")["state"] == "revoked"
    refused = phone.run("passport", "set", "profile/name", '"Mallory"')
    assert refused.status != 0
    assert refused.reason == "device_revoked", refused.error

    # Anyone checking Alice's DID no longer trusts the phone's key.
    document = tablet.ok("did-document")
    listed = {
        method["id"].rpartition("#")[2] for method in document["verificationMethod"]
    }
    assert listed == {laptop.device_id, tablet.device_id}
    for device in (laptop, tablet):
        assert device_states(device)[phone.device_id] == "revoked"
        assert device_states(device)[device.device_id] == "active"

    # The two that remain cannot revoke one another: that would lock Alice out.
    refused = laptop.run("revoke", tablet.device_id, "--reason", "test")
    assert refused.status == 1
    assert refused.reason == "lockout_refused", refused.error

    # Nor can they lower the threshold to 1, so that one could act alone.
    alone = laptop.run("threshold", "1")
    assert alone.status == 1
    assert alone.reason == "lockout_refused", alone.error
    tablet.sync()
    status = tablet.ok("status")
    assert status["threshold"] == 2
    assert device_states(tablet)[tablet.device_id] == "active"


def test_revoking_one_of_two_devices_at_threshold_two_is_refused(
    devices: Devices, storage_url: str
) -> None:
    devices.start("phone", "laptop")
    phone = create_mesh(devices, storage_url)
    laptop = devices["laptop"]
    request = request_join(laptop, phone)
    approve_join(phone, request)
    finish_join(laptop)
    phone.sync()
    assert phone.ok("status")["threshold"] == 2

    refused = phone.run("revoke", laptop.device_id, "--reason", "lost")
    assert refused.status == 1, refused
    assert refused.reason == "lockout_refused", refused.error
    laptop.sync()
    assert device_states(laptop)[laptop.device_id] == "active"


def test_recovery_replaces_a_lost_device(devices: Devices, storage_url: str) -> None:
    devices.start("phone", "laptop", "tablet", "spare")
    phone, laptop, tablet = three_device_mesh(devices, storage_url)
    # What the phone wrote before it was lost must survive the recovery.
    phone.ok("passport", "set", "profile/city", '"Paris"')
    phone.sync()
    laptop.sync()
    tablet.sync()

    invite = laptop.ok("invite")["invite"]
    spare = devices["spare"]
    mistyped = spare.run("recover", invite, "--replace", "7MLA")
    assert (mistyped.status, mistyped.reason) == (1, "invalid_input")
    request = spare.ok(
        "recover", invite, "--replace", phone.device_id, "--device-name", "spare"
    )
    for approver in (laptop, tablet):
        approver.sync()
        assert request["request_id"] in [item["id"] for item in approver.ok("pending")]
        approver.ok("approve", request["request_id"], "--code", request["code"])
    finish_join(spare)
    laptop.sync()

    states = device_states(laptop)
    assert states[phone.device_id] == "revoked"
    assert states[spare.device_id] == "active"
    spare.ok("passport", "set", "profile/name", '"Alice"')
    tablet.sync()
    assert tablet.ok("passport", "get", "profile/name") == "Alice"
    for device in (laptop, tablet, spare):
        assert device.ok("passport", "get", "profile/city") == "Paris"


def test_three_wrong_codes_lock_a_join_request(
    tmp_path: Path, devices: Devices
) -> None:
    devices.start("phone", "laptop")
    storage = tmp_path / "storage"
    storage.mkdir()
    phone = create_mesh(devices, str(storage))
    laptop = devices["laptop"]
    request = request_join(laptop, phone)
    phone.sync()
    wrong = "000000" if request["code"] != "000000" else "111111"

    reasons = [
        phone.run("approve", str(request["request_id"]), "--code", wrong).reason
        for _ in range(3)
    ]
    assert reasons == ["wrong_code", "wrong_code", "too_many_attempts"]

    # Even the right code is refused now: the laptop must ask again.
    late = phone.run("approve", str(request["request_id"]), "--code", request["code"])
    assert (late.status, late.reason) == (1, "too_many_attempts")
    laptop.sync()
    assert laptop.ok("status")["state"] == "joining"
