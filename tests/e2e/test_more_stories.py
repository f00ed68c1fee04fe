"""Key rotation, the lock-out guards, threshold proofs and delegations, told
with real daemons and the real meshctl on a shared folder."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from meshd.crypto.suite import DeviceKeys
from meshd.verify import verify_proof
from tests.daemons import clean_environment
from tests.e2e.conftest import E2E_CONFIG, Device, Devices
from tests.e2e.test_stories import three_device_mesh


def key_of(device: Device, document: dict[str, Any]) -> str:
    """The public key the DID document lists for ``device``."""
    for method in document["verificationMethod"]:
        if method["id"].endswith("#" + device.device_id):
            return str(method["publicKeyMultibase"])
    raise AssertionError(f"{device.name} is not in the DID document")


def listed_ids(document: dict[str, Any]) -> set[str]:
    return {method["id"].partition("#")[2] for method in document["verificationMethod"]}


def restart(devices: Devices, device: Device) -> None:
    """Stop the device's daemon and start it again on the same home."""
    home = device.daemon.home
    device.daemon.stop()
    device.daemon = devices.factory.start(home, config=E2E_CONFIG)


def save(tmp_path: Path, name: str, value: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def test_rotated_laptop_keeps_its_id_syncs_edits_and_vouches_for_a_proof(
    devices: Devices, storage_url: str, tmp_path: Path
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, storage_url)
    old_key = key_of(laptop, phone.ok("did-document"))

    rotated = laptop.ok("rotate-key")
    phone.sync()
    tablet.sync()

    assert rotated["device_id"] == laptop.device_id
    assert laptop.ok("status")["device_id"] == laptop.device_id
    for device in (phone, tablet, laptop):
        assert key_of(laptop, device.ok("did-document")) != old_key
    names = {item["id"]: item["name"] for item in laptop.ok("devices")}
    assert names[phone.device_id] == "phone"

    # Edits signed with the new key are accepted by the others, both ways.
    laptop.ok("passport", "set", "profile/city", '"Lyon"')
    laptop.sync()
    phone.sync()
    phone.ok("passport", "set", "profile/name", '"Alice"')
    phone.sync()
    laptop.sync()
    assert phone.ok("passport", "get", "profile/city") == "Lyon"
    assert laptop.ok("passport", "get", "profile/name") == "Alice"

    # After a restart the daemon loads the new keys and keeps its id.
    restart(devices, laptop)
    assert laptop.ok("status")["device_id"] == laptop.device_id
    laptop.ok("passport", "set", "profile/city", '"Paris"')
    laptop.sync()
    tablet.sync()
    assert tablet.ok("passport", "get", "profile/city") == "Paris"

    threshold_proof_collects_two_approvals_and_verifies_anywhere(
        phone, laptop, tablet, tmp_path
    )


def threshold_proof_collects_two_approvals_and_verifies_anywhere(
    phone: Device, laptop: Device, tablet: Device, tmp_path: Path
) -> None:
    """The phone asks for a 2-of-3 proof and waits; the laptop approves it."""
    phone.sync()
    meshctl = [sys.executable, "-m", "meshctl.main", "--home", str(phone.daemon.home)]
    prove = ["prove", "--challenge", "nonce-42", "--audience", "bank", "--threshold"]
    waiting = subprocess.Popen(
        [*meshctl, "--json", *prove, "--wait", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean_environment(),
    )
    try:
        # The laptop sees what it is asked to vouch for, and approves.
        asked = wait_for_auth_request(laptop)
        assert "nonce-42" in asked["summary"] and "bank" in asked["summary"]
        assert (asked["approvals"], asked["required"]) == (1, 2)
        laptop.ok("approve", asked["id"])
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    proof = json.loads(out)
    assert phone.ok("proof", asked["id"]) == proof

    assert proof["mode"] == "threshold" and proof["challenge"] == "nonce-42"
    assert {s["device_id"] for s in proof["signatures"]} == {
        phone.device_id,
        laptop.device_id,
    }
    path = save(tmp_path, "proof.json", proof)
    status, out, err = tablet.daemon.meshctl(
        "--json", "verify", path, "--challenge", "nonce-42", "--audience", "bank"
    )
    assert status == 0, err
    assert json.loads(out)["valid"] is True

    # A proof whose challenge was edited no longer holds.
    tampered = save(tmp_path, "tampered.json", {**proof, "challenge": "nonce-43"})
    status, out, _ = tablet.daemon.meshctl("--json", "verify", tampered)
    verdict = json.loads(out)
    assert status == 1
    assert verdict["valid"] is False and verdict["reason"]

    # With no daemon: only the DID document.
    document = tablet.ok("did-document")
    offline = verify_proof(proof, document, time.time(), challenge="nonce-42")
    assert (offline.valid, offline.reason) == (True, "ok")

    # The rotated laptop alone proves too; the phone checks it.
    alone = laptop.ok("prove", "--challenge", "nonce-44")
    assert alone["mode"] == "device" and alone["signatures"][0]["device_id"] == (
        laptop.device_id
    )
    assert phone.ok("verify", save(tmp_path, "alone.json", alone))["valid"] is True


def wait_for_auth_request(device: Device) -> dict[str, Any]:
    """Sync until the device sees a pending auth request with the asking
    device's own approval (a listing may fall between the two writes)."""
    for _ in range(40):
        device.sync()
        asked = [
            item
            for item in device.ok("pending")
            if item["kind"] == "auth" and item["approvals"] >= 1
        ]
        if asked:
            return dict(asked[0])
        time.sleep(0.25)
    raise AssertionError(f"{device.name} never saw the auth request")


def test_lockout_guard_holds_at_threshold_three_and_revoking_ends_a_delegation(
    devices: Devices, storage_url: str
) -> None:
    phone, laptop, tablet = three_device_mesh(devices, storage_url)
    agent = DeviceKeys.generate().public.signing
    delegation = tablet.ok(
        "delegate",
        "--to",
        agent.hex(),
        "--capability",
        "read-calendar",
        "--expires",
        "7d",
    )
    assert delegation["issuer"] == tablet.device_id
    assert delegation["capabilities"] == ["read-calendar"]
    assert base64.b64decode(delegation["signed"])
    tablet.sync()

    # Threshold 3 needs the approvals of the current threshold (2).
    proposed = phone.ok("threshold", "3")
    assert (proposed["state"], proposed["approvals"]) == ("pending", 1)
    assert phone.ok("status")["threshold"] == 2
    laptop.sync()
    assert laptop.ok("approve", proposed["proposal_id"])["state"] == "applied"
    phone.sync()
    assert phone.ok("status")["threshold"] == 3
    assert [d["valid"] for d in phone.ok("delegations")] == [True]

    # Revoking the tablet would leave 2 devices under a threshold of 3.
    refused = phone.run("revoke", tablet.device_id, "--reason", "stolen")
    assert refused.status == 1
    assert refused.reason == "lockout_refused", refused.error
    assert phone.ok("pending") == []

    # Lowered back to 2 (all three approve), the revocation goes through.
    lowered = phone.ok("threshold", "2")
    for device in (laptop, tablet):
        device.sync()
        device.ok("approve", lowered["proposal_id"])
    phone.sync()
    laptop.sync()
    proposed = phone.ok("revoke", tablet.device_id, "--reason", "stolen")
    laptop.sync()
    laptop.ok("approve", proposed["proposal_id"])
    phone.sync()

    assert [d["valid"] for d in phone.ok("delegations")] == [False]
    document = phone.ok("did-document")
    assert listed_ids(document) == {phone.device_id, laptop.device_id}
