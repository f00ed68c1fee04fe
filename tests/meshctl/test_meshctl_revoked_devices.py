"""What meshctl says about a revoked device's proofs and delegations."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshd.crypto.suite import DeviceKeys
from tests.daemons import MANUAL_SYNC_CONFIG as CONFIG
from tests.daemons import MeshdFactory, MeshdProcess
from tests.daemons import meshctl_ok as ok


@dataclass
class Mesh:
    """The phone, after revoking the laptop that had signed a proof and
    issued a delegation; the phone's own delegation has expired."""

    phone: MeshdProcess
    proof_file: Path
    proof_valid_before: bool
    laptop_delegation: str
    expired_delegation: str


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    base = tmp_path_factory.mktemp("meshctl-revoked")
    base.chmod(0o700)
    storage = base / "storage"
    storage.mkdir()
    factory = MeshdFactory(base)
    try:
        yield build_mesh(factory, storage)
    finally:
        factory.stop_all()


def build_mesh(factory: MeshdFactory, storage: Path) -> Mesh:
    phone, laptop = (factory.start(config=CONFIG) for _ in range(2))
    ok(phone, "init", "--label", "alice", "--storage", str(storage))
    joined = ok(laptop, "join", ok(phone, "invite")["invite"])
    ok(phone, "sync")
    ok(phone, "approve", joined["request_id"], "--code", joined["code"])
    ok(laptop, "sync")
    laptop_id = ok(laptop, "status")["device_id"]

    # The laptop proves who it is and delegates, while still a member.
    proof_file = factory.base / "proof.json"
    proof = ok(laptop, "prove", "--challenge", "c-1", "--audience", "bank.example")
    proof_file.write_text(json.dumps(proof), encoding="utf-8")
    agent = DeviceKeys.generate().public.signing.hex()
    delegated = ok(laptop, "delegate", "--to", agent, "--capability", "mail")
    ok(laptop, "sync")
    ok(phone, "sync")
    valid_before = ok(phone, "verify", str(proof_file))["valid"]

    # Both revoke the laptop, going down to one device at threshold 1.
    short = ok(phone, "delegate", "--to", agent, "--capability", "x", "--expires", "1s")
    revoke = phone.call(
        "device.revoke", device_id=laptop_id, reason="lost", threshold=1
    )
    ok(laptop, "sync")
    ok(laptop, "approve", revoke["proposal_id"])
    ok(laptop, "sync")
    # The phone finalizes at the end of one round and publishes in the next.
    ok(phone, "sync")
    ok(phone, "sync")

    # The phone's own delegation ends a second after it was issued.
    time.sleep(max(0.0, short["expires_at"] + 0.5 - time.time()))
    return Mesh(phone, proof_file, valid_before, delegated["id"], short["id"])


def test_a_proof_by_a_revoked_device_is_refused_as_revoked(mesh: Mesh) -> None:
    status, out, _ = mesh.phone.meshctl("--json", "verify", str(mesh.proof_file))

    assert mesh.proof_valid_before
    assert status == 1
    assert json.loads(out)["reason"] == "revoked_signer"


def test_verify_text_names_the_revocation(mesh: Mesh) -> None:
    status, out, _ = mesh.phone.meshctl("verify", str(mesh.proof_file))

    assert status == 1
    assert "revoked_signer" in out and "unknown_signer" not in out


def test_delegations_json_says_why_each_does_not_hold(mesh: Mesh) -> None:
    listed = {d["id"]: d for d in ok(mesh.phone, "delegations")}

    laptop, expired = listed[mesh.laptop_delegation], listed[mesh.expired_delegation]

    assert (laptop["valid"], laptop["reason"]) == (False, "issuer_revoked")
    assert (expired["valid"], expired["reason"]) == (False, "expired")
    assert {"id", "capabilities", "expires_at", "issuer"} <= set(laptop)


def test_delegations_table_shows_the_reason_beside_valid(mesh: Mesh) -> None:
    status, out, _ = mesh.phone.meshctl("delegations")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}

    assert status == 0
    assert out.splitlines()[0].split()[-2:] == ["VALID", "REASON"]
    assert re.search(r" no +issuer revoked$", rows[mesh.laptop_delegation])
    assert re.search(r" no +expired$", rows[mesh.expired_delegation])
