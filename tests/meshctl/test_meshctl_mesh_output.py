"""meshctl's output on a real mesh: counts, codes, hints and untrusted names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.daemons import TEST_CONFIG, MeshdFactory, MeshdProcess

# Only ``meshctl sync`` moves objects, so each step is deterministic.
CONFIG = TEST_CONFIG + "\n[sync]\ninterval = 30\n"

# Text that tries to recolour the terminal (C1 CSI), hide itself (DEL) and
# reverse what follows it (a bidi override).
HOSTILE_TEXT = "lap\x9b31mtop\x7f\u202egnp.exe"


def ok(daemon: MeshdProcess, *args: str) -> Any:
    status, out, err = daemon.meshctl("--json", *args)
    assert status == 0, f"meshctl {args} exited {status}: {err}"
    return json.loads(out)


@dataclass
class Mesh:
    """Phone (member), laptop (joined, then revoked), tablet (asking to join)."""

    phone: MeshdProcess
    laptop: MeshdProcess
    tablet: MeshdProcess
    request: dict[str, Any]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    base = tmp_path_factory.mktemp("meshctl-mesh")
    base.chmod(0o700)
    storage = base / "storage"
    storage.mkdir()
    factory = MeshdFactory(base)
    try:
        yield build_mesh(factory, str(storage))
    finally:
        factory.stop_all()


def build_mesh(factory: MeshdFactory, storage: str) -> Mesh:
    phone, laptop, tablet = (factory.start(config=CONFIG) for _ in range(3))
    ok(phone, "init", "--label", "alice", "--storage", storage)

    # The laptop joins at threshold 1, then the phone revokes it.
    invite = ok(phone, "invite")["invite"]
    joined = ok(laptop, "join", invite, "--device-name", "laptop")
    ok(phone, "sync")
    ok(phone, "approve", joined["request_id"], "--code", joined["code"])
    ok(laptop, "sync")
    laptop_id = ok(laptop, "status")["device_id"]

    # Joining raised the threshold to 2: both revoke the laptop, going down
    # to one device at threshold 1.
    revoke = ok(phone, "revoke", laptop_id, "--reason", "lost", "--threshold", "1")
    ok(laptop, "sync")
    ok(laptop, "approve", revoke["proposal_id"])
    ok(laptop, "sync")
    # The phone finalizes at the end of one round and publishes in the next.
    ok(phone, "sync")
    ok(phone, "sync")

    # The tablet asks and stays waiting.
    request = ok(tablet, "join", invite, "--device-name", "tablet")
    ok(phone, "sync")
    return Mesh(phone, laptop, tablet, request)


def test_status_counts_only_active_devices_for_the_threshold(mesh: Mesh) -> None:
    devices = ok(mesh.phone, "status")["devices"]

    status, out, _ = mesh.phone.meshctl("status")

    assert [device["state"] for device in devices].count("revoked") == 1
    assert status == 0
    assert "threshold  1 of 1 active devices" in out


def test_hostile_passport_text_is_escaped_in_text_and_exact_in_json(
    mesh: Mesh,
) -> None:
    ok(mesh.phone, "passport", "set", "profile/name", json.dumps(HOSTILE_TEXT))

    status, out, _ = mesh.phone.meshctl("passport", "get", "profile/name")

    assert ok(mesh.phone, "passport", "get", "profile/name") == HOSTILE_TEXT
    assert status == 0
    assert "\x9b" not in out and "\x7f" not in out and "\u202e" not in out
    assert "lap\\x9b31mtop\\x7f\\u202egnp.exe" in out


def test_invite_text_is_only_the_invite_string(mesh: Mesh) -> None:
    invite = ok(mesh.phone, "invite")["invite"]

    status, out, _ = mesh.phone.meshctl("invite")

    assert status == 0
    assert out == invite + "\n"


def test_pending_shows_expiry_as_local_time(mesh: Mesh) -> None:
    proposals = ok(mesh.phone, "pending")

    status, out, _ = mesh.phone.meshctl("pending")

    assert status == 0
    assert mesh.request["request_id"] in [item["id"] for item in proposals]
    assert str(proposals[0]["expires_at"]) not in out
    assert "(in " in out


def test_joining_status_shows_the_code_and_request(mesh: Mesh) -> None:
    status, out, _ = mesh.tablet.meshctl("status")

    assert status == 0
    request_line = next(line for line in out.splitlines() if "request" in line)
    assert mesh.request["request_id"] in request_line
    assert f"code {mesh.request['code']}" in request_line


def test_join_wait_with_json_ends_with_the_request_and_its_state(
    meshd_factory: MeshdFactory, mesh: Mesh
) -> None:
    invite = ok(mesh.phone, "invite")["invite"]
    newcomer = meshd_factory.start(config=CONFIG)

    status, out, err = newcomer.meshctl("--json", "join", invite, "--wait", "0")

    result = json.loads(out)
    error = json.loads(err)["error"]
    assert status == 1
    assert result["state"] == "pending"
    assert result["code"] and result["request_id"]
    assert error["data"]["request_id"] == result["request_id"]
    assert error["data"]["code"] == result["code"]


def test_join_wait_tells_the_code_before_waiting(
    meshd_factory: MeshdFactory, mesh: Mesh
) -> None:
    invite = ok(mesh.phone, "invite")["invite"]
    newcomer = meshd_factory.start(config=CONFIG)

    status, out, err = newcomer.meshctl("join", invite, "--wait", "0")

    first_line = err.splitlines()[0]
    assert status == 1
    assert first_line.startswith("Type the code ")
    assert "request_id" in out and "code" in out
    assert err.splitlines()[-1].startswith("meshctl: Not approved")


def test_approve_without_code_hints_at_the_code(mesh: Mesh) -> None:
    status, out, err = mesh.phone.meshctl("approve", mesh.request["request_id"])

    assert status == 1 and out == ""
    assert err.count("\n") == 1
    # The daemon may name the code itself; otherwise meshctl adds the hint.
    assert "6-digit code shown on the new device" in err and "--code" in err


def test_malformed_code_is_refused_before_it_costs_an_attempt(mesh: Mesh) -> None:
    for code in ("12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        status, _, err = mesh.phone.meshctl(
            "approve", mesh.request["request_id"], "--code", code
        )
        assert status == 2
        assert "6 digits" in err

    pending = ok(mesh.tablet, "status")["request"]
    assert pending["state"] == "pending"
