"""The meshctl contract of INTERFACE.md, command by command, on a real mesh.

One mesh of real daemons (phone, laptop, tablet, and a spare device that
asks to recover) is built once for the module on a shared folder. Every
command of the interface table runs once with ``--json`` and what it printed
is kept; each test then checks one command: stdout is exactly one JSON value
(one object per line for ``events``) carrying at least the listed fields.
The error paths check the shape of errors on stderr and the exit statuses
(1 for an error the daemon reported, 2 for bad usage, 3 for no daemon).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshd.crypto.suite import DeviceKeys
from tests.daemons import MeshdFactory, clean_environment, run_meshctl
from tests.e2e.conftest import CommandFailed, Device, Devices

PROPOSAL_KINDS = {"enroll", "recover", "revoke", "threshold", "rotate", "auth"}


@dataclass(frozen=True)
class Printed:
    """What one ``meshctl --json`` command printed, and its exit status."""

    status: int
    out: str
    err: str

    def value(self) -> Any:
        """The one JSON value on stdout (fails on none, or on more than one)."""
        assert self.status == 0, f"exit {self.status}: {self.err}"
        return json.loads(self.out)

    def error(self) -> dict[str, Any]:
        """The one JSON error object on stderr."""
        assert self.out == "", f"an error printed a result too: {self.out!r}"
        reported = json.loads(self.err)
        assert set(reported) == {"error"}
        error: dict[str, Any] = reported["error"]
        assert {"code", "message", "data"} <= set(error)
        assert isinstance(error["code"], int) and error["message"]
        return error


@dataclass
class Mesh:
    """The devices of the mesh and what each contract command printed."""

    devices: Devices
    storage: str
    printed: dict[str, Printed] = field(default_factory=dict)

    def record(self, label: str, device: Device, *args: str) -> Printed:
        """Run ``meshctl --json ARGS`` on a device; keep what it printed
        under ``label`` for the checks."""
        status, out, err = device.daemon.meshctl("--json", *args)
        self.printed[label] = Printed(status, out, err)
        return self.printed[label]

    def must(self, label: str, device: Device, *args: str) -> Any:
        """Like :meth:`record` for a step the rest of the story needs."""
        printed = self.record(label, device, *args)
        if printed.status != 0:
            raise CommandFailed(
                f"{device.name}: meshctl {' '.join(args)}: {printed.err}"
                f"\n--- daemon log ---\n{device.daemon.log_text()[-3000:]}"
            )
        return printed.value()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    base = tmp_path_factory.mktemp("contract")
    base.chmod(0o700)
    storage = base / "storage"
    storage.mkdir()
    factory = MeshdFactory(base)
    try:
        devices = Devices(factory)
        devices.start("phone", "laptop", "tablet", "spare")
        story = Mesh(devices, str(storage))
        tell_the_story(story, base)
        yield story
    finally:
        factory.stop_all()


def tell_the_story(mesh: Mesh, folder: Path) -> None:
    """Run every command of the interface table once, in a story that needs it."""
    enroll_three_devices(mesh)
    ask_to_recover(mesh)
    edit_the_passport(mesh)
    make_and_settle_a_conflict(mesh)
    prove_and_verify(mesh, folder)
    propose_and_reject_a_threshold(mesh)
    rotate_delegate_and_describe(mesh)
    revoke_the_tablet(mesh)
    mesh.record(
        "events", mesh.devices["phone"], "events", "--since", "0", "--no-follow"
    )


def enroll_three_devices(mesh: Mesh) -> None:
    phone, laptop, tablet = (
        mesh.devices[name] for name in ("phone", "laptop", "tablet")
    )
    created = mesh.must(
        "init",
        phone,
        "init",
        "--label",
        "alice",
        "--storage",
        mesh.storage,
        "--device-name",
        "phone",
        "--device-kind",
        "phone",
    )
    phone.device_id = created["device_id"]
    invite = mesh.must("invite", phone, "invite")["invite"]

    # The laptop joins with one approval (the phone is alone).
    request = mesh.must(
        "join",
        laptop,
        "join",
        invite,
        "--device-name",
        "laptop",
        "--device-kind",
        "laptop",
    )
    mesh.must("sync", phone, "sync")
    mesh.must("pending", phone, "pending")
    mesh.must(
        "approve", phone, "approve", request["request_id"], "--code", request["code"]
    )
    laptop.sync()
    phone.sync()

    # The tablet needs two approvals: the threshold rose to 2.
    request = tablet.ok(
        "join", invite, "--device-name", "tablet", "--device-kind", "tablet"
    )
    for approver in (phone, laptop):
        approver.sync()
        approver.ok("approve", request["request_id"], "--code", request["code"])
    for device in (tablet, phone, laptop):
        device.sync()
        device.device_id = device.ok("status")["device_id"]
    mesh.must("status", phone, "status")
    mesh.must("devices", phone, "devices")


def ask_to_recover(mesh: Mesh) -> None:
    """A spare device asks to recover in the tablet's place; a mistyped code
    on the phone is refused."""
    phone, spare = mesh.devices["phone"], mesh.devices["spare"]
    invite = phone.ok("invite")["invite"]
    tablet_id = mesh.devices["tablet"].device_id
    request = mesh.must(
        "recover",
        spare,
        "recover",
        invite,
        "--replace",
        tablet_id,
        "--device-name",
        "spare",
    )
    phone.sync()
    mesh.must("pending with a recovery", phone, "pending")
    wrong = "000000" if request["code"] != "000000" else "111111"
    mesh.record(
        "approve with a wrong code",
        phone,
        "approve",
        request["request_id"],
        "--code",
        wrong,
    )


def edit_the_passport(mesh: Mesh) -> None:
    phone = mesh.devices["phone"]
    mesh.must("passport set", phone, "passport", "set", "profile/name", '"Alice"')
    mesh.must("passport get PATH", phone, "passport", "get", "profile/name")
    mesh.must("passport get", phone, "passport", "get")
    mesh.must("passport delete", phone, "passport", "delete", "profile/name")
    mesh.must(
        "capability add",
        phone,
        "capability",
        "add",
        "email",
        "--data",
        '{"verified": true}',
    )
    mesh.record(
        "passport set outside the passport", phone, "passport", "set", "nowhere/x", "1"
    )


def make_and_settle_a_conflict(mesh: Mesh) -> None:
    """Manual mode, then the phone and the laptop set one path before syncing."""
    phone, laptop, tablet = (
        mesh.devices[name] for name in ("phone", "laptop", "tablet")
    )
    phone.ok("passport", "set", "settings/conflict_resolution", '"manual"')
    for device in (phone, laptop, tablet):
        device.sync()

    phone.ok("passport", "set", "profile/city", '"Lyon"')
    laptop.ok("passport", "set", "profile/city", '"Paris"')
    for device in (phone, laptop, phone):
        device.sync()

    conflicts = mesh.must("conflicts", phone, "conflicts")
    if conflicts:
        picked = conflicts[0]["candidates"][0]["op_id"]
        mesh.record("resolve", phone, "resolve", conflicts[0]["id"], "--pick", picked)
    mesh.record(
        "resolve an unknown conflict", phone, "resolve", "conflict-none", "--pick", "x"
    )


def prove_and_verify(mesh: Mesh, folder: Path) -> None:
    phone, laptop = mesh.devices["phone"], mesh.devices["laptop"]
    proof = mesh.must(
        "prove", phone, "prove", "--challenge", "nonce-1", "--audience", "bank"
    )
    proof_file = folder / "proof.json"
    proof_file.write_text(json.dumps(proof), encoding="utf-8")
    mesh.record("verify", laptop, "verify", str(proof_file))

    tampered = folder / "tampered.json"
    tampered.write_text(json.dumps({**proof, "challenge": "nonce-2"}), encoding="utf-8")
    mesh.record("verify a tampered proof", laptop, "verify", str(tampered))
    prove_with_threshold(mesh)


def prove_with_threshold(mesh: Mesh) -> None:
    """The phone waits for a 2-of-3 proof; the laptop sees it pending, approves."""
    phone, laptop = mesh.devices["phone"], mesh.devices["laptop"]
    command = [sys.executable, "-m", "meshctl.main", "--home", str(phone.daemon.home)]
    waiting = subprocess.Popen(
        [
            *command,
            "--json",
            "prove",
            "--challenge",
            "nonce-3",
            "--threshold",
            "--wait",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean_environment(),
    )
    try:
        asked = wait_for_auth_request(mesh, laptop)
        laptop.ok("approve", asked["id"])
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        waiting.wait()
    mesh.printed["prove --threshold"] = Printed(waiting.returncode, out, err)

    # With its approvals in, the proof asks nothing more of anybody.
    listed = mesh.must("pending after the proof", laptop, "pending")
    assert asked["id"] not in [item["id"] for item in listed]


def wait_for_auth_request(mesh: Mesh, device: Device) -> dict[str, Any]:
    for _ in range(40):
        device.sync()
        listed = mesh.must("pending with an auth request", device, "pending")
        asked = [item for item in listed if item["kind"] == "auth"]
        if asked:
            return dict(asked[0])
        time.sleep(0.25)
    raise AssertionError(f"{device.name} never saw the auth request")


def propose_and_reject_a_threshold(mesh: Mesh) -> None:
    """The phone proposes threshold 3; the laptop and the tablet reject it."""
    phone, laptop, tablet = (
        mesh.devices[name] for name in ("phone", "laptop", "tablet")
    )
    proposed = mesh.must("threshold", phone, "threshold", "3")
    laptop.sync()
    mesh.record("reject", laptop, "reject", proposed["proposal_id"])

    # Two rejections of three leave too few devices to reach the threshold.
    tablet.sync()
    mesh.record("reject by a second device", tablet, "reject", proposed["proposal_id"])
    mesh.record("approve an unknown proposal", phone, "approve", "deadbeefdeadbeef")
    phone.sync()


def rotate_delegate_and_describe(mesh: Mesh) -> None:
    phone, laptop = mesh.devices["phone"], mesh.devices["laptop"]
    mesh.record("rotate-key", laptop, "rotate-key")
    laptop.sync()
    phone.sync()

    agent = DeviceKeys.generate().public.signing.hex()
    mesh.record(
        "delegate", phone, "delegate", "--to", agent, "--capability", "read-calendar"
    )
    mesh.record(
        "delegate to a bad key", phone, "delegate", "--to", "zz", "--capability", "x"
    )
    mesh.record("did-document", phone, "did-document")
    mesh.record(
        "init again", phone, "init", "--label", "bob", "--storage", mesh.storage
    )


def revoke_the_tablet(mesh: Mesh) -> None:
    phone, laptop = mesh.devices["phone"], mesh.devices["laptop"]
    mesh.record("revoke an unknown device", phone, "revoke", "NOTADEVICE")
    proposed = mesh.must(
        "revoke", phone, "revoke", mesh.devices["tablet"].device_id, "--reason", "lost"
    )
    laptop.sync()
    laptop.ok("approve", proposed["proposal_id"])
    phone.sync()
    mesh.record("devices after a revocation", phone, "devices")


# -- helpers of the checks -------------------------------------------------------


def result_of(mesh: Mesh, label: str) -> Any:
    assert label in mesh.printed, f"{label} never ran"
    return mesh.printed[label].value()


def has_fields(value: Any, *names: str) -> None:
    assert isinstance(value, dict), f"not an object: {value!r}"
    missing = set(names) - set(value)
    assert not missing, f"missing {sorted(missing)} in {value!r}"


# -- one test per command --------------------------------------------------------

OBJECT_RESULTS = [
    ("init", ("did", "device_id")),
    (
        "status",
        ("did", "label", "device_id", "threshold", "devices", "warnings", "storage"),
    ),
    ("invite", ("invite",)),
    ("join", ("request_id", "code", "required_approvals")),
    ("recover", ("request_id", "code", "required_approvals")),
    ("approve", ("id", "approvals", "required", "state")),
    ("reject", ("id", "state")),
    ("revoke", ("proposal_id", "approvals", "required", "state")),
    ("threshold", ("proposal_id", "approvals", "required", "state")),
    ("rotate-key", ("device_id", "rotated_at")),
    ("passport set", ("path", "op_id")),
    ("passport delete", ("path", "op_id")),
    ("capability add", ("capability_id", "op_id")),
    ("resolve", ("id", "op_id")),
    ("sync", ("pushed", "pulled", "storage")),
    ("verify", ("valid", "signers", "reason")),
]


@pytest.mark.parametrize(
    ("label", "names"), OBJECT_RESULTS, ids=[row[0] for row in OBJECT_RESULTS]
)
def test_command_prints_one_object_with_the_listed_fields(
    mesh: Mesh, label: str, names: tuple[str, ...]
) -> None:
    has_fields(result_of(mesh, label), *names)


def test_init_and_status_name_the_same_mesh_and_device(mesh: Mesh) -> None:
    created, status = result_of(mesh, "init"), result_of(mesh, "status")

    assert status["did"] == created["did"] and created["did"].startswith("did:")
    assert (
        status["device_id"] == created["device_id"] == mesh.devices["phone"].device_id
    )
    assert status["label"] == "alice" and status["threshold"] == 2
    assert isinstance(status["warnings"], list)


def test_devices_lists_members_with_active_or_revoked_state(mesh: Mesh) -> None:
    before = result_of(mesh, "devices")
    after = result_of(mesh, "devices after a revocation")

    for listed in (before, after):
        assert isinstance(listed, list)
        for item in listed:
            has_fields(item, "id", "name", "kind", "state", "enrolled_at")
            assert item["state"] in ("active", "revoked")
    assert {item["name"] for item in before} == {"phone", "laptop", "tablet"}
    tablet = mesh.devices["tablet"].device_id
    assert {item["id"]: item["state"] for item in after}[tablet] == "revoked"


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("pending", "enroll"),
        ("pending with a recovery", "recover"),
        ("pending with an auth request", "auth"),
    ],
)
def test_pending_lists_proposals_with_the_listed_fields(
    mesh: Mesh, label: str, kind: str
) -> None:
    listed = result_of(mesh, label)

    assert isinstance(listed, list)
    for item in listed:
        has_fields(item, "id", "kind", "summary", "approvals", "required", "expires_at")
        assert item["kind"] in PROPOSAL_KINDS
    assert kind in {item["kind"] for item in listed}


def test_approve_and_reject_report_the_proposal_state(mesh: Mesh) -> None:
    assert result_of(mesh, "approve")["state"] == "applied"
    assert result_of(mesh, "reject")["state"] == "pending"
    assert result_of(mesh, "reject by a second device")["state"] == "rejected"
    assert result_of(mesh, "revoke")["state"] in ("pending", "applied")


def test_passport_get_prints_the_bare_json_value(mesh: Mesh) -> None:
    assert result_of(mesh, "passport get PATH") == "Alice"
    whole = result_of(mesh, "passport get")
    assert isinstance(whole, dict)


def test_conflicts_list_the_concurrent_edit_with_its_candidates(mesh: Mesh) -> None:
    listed = result_of(mesh, "conflicts")

    assert isinstance(listed, list) and listed, "no conflict was reported"
    for item in listed:
        has_fields(item, "id", "path", "candidates")
    city = [item for item in listed if item["path"] == "profile/city"]
    assert city and len(city[0]["candidates"]) == 2


def test_prove_prints_a_proof_that_verify_accepts(mesh: Mesh) -> None:
    proof = result_of(mesh, "prove")
    verdict = result_of(mesh, "verify")

    has_fields(proof, "did", "challenge", "audience", "signatures")
    assert proof["challenge"] == "nonce-1" and proof["audience"] == "bank"
    assert verdict["valid"] is True
    assert mesh.devices["phone"].device_id in verdict["signers"]


def test_prove_with_threshold_prints_the_proof_once_approved(mesh: Mesh) -> None:
    proof = result_of(mesh, "prove --threshold")

    has_fields(proof, "did", "challenge", "signatures")
    assert proof["mode"] == "threshold" and proof["challenge"] == "nonce-3"
    signers = {signature["device_id"] for signature in proof["signatures"]}
    assert signers == {
        mesh.devices["phone"].device_id,
        mesh.devices["laptop"].device_id,
    }


def test_delegate_prints_the_delegation_for_the_agent_key(mesh: Mesh) -> None:
    delegation = result_of(mesh, "delegate")

    assert isinstance(delegation, dict)
    assert delegation["issuer"] == mesh.devices["phone"].device_id
    assert delegation["capabilities"] == ["read-calendar"]


def test_did_document_names_the_mesh_and_its_active_devices(mesh: Mesh) -> None:
    document = result_of(mesh, "did-document")

    assert document["id"] == result_of(mesh, "init")["did"]
    listed = {
        method["id"].partition("#")[2] for method in document["verificationMethod"]
    }
    assert mesh.devices["laptop"].device_id in listed


def test_events_prints_one_object_per_line_with_id_and_type(mesh: Mesh) -> None:
    printed = mesh.printed["events"]

    assert printed.status == 0, printed.err
    lines = printed.out.splitlines()
    assert lines, "no events were printed"
    events = [json.loads(line) for line in lines]
    for event in events:
        has_fields(event, "id", "type")
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)


# -- errors ----------------------------------------------------------------------

DAEMON_ERRORS = [
    "init again",
    "approve with a wrong code",
    "approve an unknown proposal",
    "revoke an unknown device",
    "passport set outside the passport",
    "resolve an unknown conflict",
    "delegate to a bad key",
]


@pytest.mark.parametrize("label", DAEMON_ERRORS)
def test_daemon_error_is_one_json_object_on_stderr_and_exit_1(
    mesh: Mesh, label: str
) -> None:
    printed = mesh.printed[label]

    assert printed.status == 1, printed
    error = printed.error()
    assert isinstance(error["data"], dict) and error["data"]["reason"], error


def test_reasons_of_daemon_errors_are_the_documented_ones(mesh: Mesh) -> None:
    reasons = {
        label: mesh.printed[label].error()["data"]["reason"] for label in DAEMON_ERRORS
    }

    assert reasons["approve with a wrong code"] == "wrong_code"
    assert reasons["approve an unknown proposal"] == "unknown_proposal"


def test_verify_of_a_tampered_proof_exits_1_with_its_verdict(mesh: Mesh) -> None:
    printed = mesh.printed["verify a tampered proof"]

    verdict = json.loads(printed.out)
    assert printed.status == 1
    assert verdict["valid"] is False and verdict["reason"]


BAD_USAGE = [
    ("threshold", "0"),
    ("approve", "some-id", "--code", "12"),
    ("passport", "set", "profile/name", "{not json"),
    ("join",),
    ("verify", "/nonexistent/proof.json"),
    ("prove",),
    ("events", "--since", "soon"),
    ("sync", "--everything"),
    ("resolve", "conflict-x"),
    ("no-such-command",),
]


@pytest.mark.parametrize("args", BAD_USAGE, ids=[" ".join(args) for args in BAD_USAGE])
def test_bad_usage_is_a_json_error_and_exit_2(
    mesh: Mesh, args: tuple[str, ...]
) -> None:
    status, out, err = mesh.devices["phone"].daemon.meshctl("--json", *args)

    error = Printed(status, out, err).error()
    assert status == 2
    assert error["data"]["reason"] == "usage"


NO_DAEMON = [
    ("status",),
    ("devices",),
    ("pending",),
    ("passport", "get"),
    ("sync",),
    ("prove", "--challenge", "c"),
    ("events", "--since", "0", "--no-follow"),
]


@pytest.mark.parametrize("args", NO_DAEMON, ids=[" ".join(args) for args in NO_DAEMON])
def test_without_a_daemon_every_command_exits_3(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    home = tmp_path / "nobody"
    home.mkdir(mode=0o700)

    status, out, err = run_meshctl("--json", *args, home=home)

    error = Printed(status, out, err).error()
    assert status == 3
    assert error["data"]["reason"] == "no_daemon"
