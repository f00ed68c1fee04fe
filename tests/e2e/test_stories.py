"""The main stories of meshd, told with real daemons and the real meshctl.

Every story runs on a shared folder and on an S3 server on loopback. Devices
exchange objects only when a step runs ``meshctl sync`` on them.
"""

from __future__ import annotations

from tests.e2e.conftest import Device


def create_mesh(devices: dict[str, Device], storage_url: str) -> Device:
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


def three_device_mesh(devices: dict[str, Device], storage_url: str) -> list[Device]:
    """Phone, laptop and tablet at threshold 2, everyone synced."""
    phone = create_mesh(devices, storage_url)
    laptop, tablet = devices["laptop"], devices["tablet"]

    request = request_join(laptop, phone)
    assert approve_join(phone, request)["state"] == "applied"
    finish_join(laptop)

    raised = phone.ok("threshold", "2")
    assert raised["state"] == "applied"

    request = request_join(tablet, laptop)
    first = approve_join(phone, request)
    assert (first["approvals"], first["required"]) == (1, 2)
    second = approve_join(laptop, request)
    assert second["state"] == "applied"
    finish_join(tablet)
    for device in (phone, laptop, tablet):
        device.sync()
    return [phone, laptop, tablet]


def device_states(device: Device) -> dict[str, str]:
    return {item["id"]: item["state"] for item in device.ok("devices")}


def test_enrollment_two_of_three_with_codes(
    devices: dict[str, Device], storage_url: str
) -> None:
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

    phone.ok("threshold", "2")
    laptop.sync()
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
