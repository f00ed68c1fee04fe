"""Authentication proofs checked with the mesh log or the DID document alone."""

from __future__ import annotations

import base64
import copy
from typing import Any

from meshd.auth import (
    device_proof,
    make_statement,
    statement_digest,
    threshold_proof,
    verify_proof,
)
from meshd.mesh.proposals import approval_for, propose
from meshd.mesh.records import AUTH
from meshd.mesh.scenario import Scenario, build
from meshd.rotation import enrolled

NOW = 1_700_000_100.0


def log_of(scenario: Scenario) -> list[bytes]:
    return [entry.encode() for entry in scenario.entries()]


def proof_by(scenario: Scenario, name: str, challenge: str = "nonce-1") -> Any:
    keys = enrolled(scenario.key(name), scenario.state)
    statement = make_statement(
        scenario.state, challenge, "bank.example", int(NOW * 1000), 1
    )
    return device_proof(statement, keys)


def threshold_proof_by(
    scenario: Scenario, approvers: list[str], claimed: int | None = None
) -> Any:
    """An auth proposal by the first approver, approved by all of them."""
    state = scenario.state
    threshold = state.threshold if claimed is None else claimed
    statement = make_statement(
        state, "login-7", "bank.example", int(NOW * 1000), threshold
    ).encode()
    first = enrolled(scenario.key(approvers[0]), state)
    proposal = propose(
        state, first, AUTH, int(NOW * 1000), challenge=statement_digest(statement)
    )
    approvals = [
        approval_for(state, proposal, enrolled(scenario.key(n), state), int(NOW * 1000))
        for n in approvers
    ]
    return threshold_proof(statement, proposal.body, approvals)


def test_device_proof_verifies_with_the_mesh_log_and_the_did_document() -> None:
    scenario = build("genesis A B C t=2")
    proof = proof_by(scenario, "A")

    by_log = verify_proof(proof, log_of(scenario), NOW, challenge="nonce-1")
    by_document = verify_proof(proof, scenario.state.did_document(), NOW)

    assert (by_log.valid, by_log.signers) == (True, (scenario.id("A"),))
    assert (by_document.valid, by_document.reason) == (True, "ok")


def test_threshold_proof_needs_threshold_distinct_approvers() -> None:
    scenario = build("genesis A B C t=2")

    complete = verify_proof(
        threshold_proof_by(scenario, ["A", "B"]), log_of(scenario), NOW
    )
    alone = verify_proof(threshold_proof_by(scenario, ["A"]), log_of(scenario), NOW)

    assert complete.valid and set(complete.signers) == {
        scenario.id("A"),
        scenario.id("B"),
    }
    assert (alone.valid, alone.reason) == (False, "threshold_not_met")


def test_a_proof_claiming_less_than_the_mesh_threshold_is_refused() -> None:
    scenario = build("genesis A B C t=2")
    proof = threshold_proof_by(scenario, ["A"], claimed=1)

    result = verify_proof(proof, log_of(scenario), NOW)

    assert (result.valid, result.reason) == (False, "below_mesh_threshold")


def test_tampered_proofs_are_refused_with_a_reason() -> None:
    scenario = build("genesis A B C t=2")
    proof = proof_by(scenario, "A")
    edited = copy.deepcopy(proof)
    edited["challenge"] = "another"
    forged = copy.deepcopy(proof)
    other = make_statement(scenario.state, "another", "bank.example", 0, 1)
    forged["statement"] = base64.b64encode(other.encode()).decode()
    forged.update(challenge="another", created_at=0.0)

    entries = log_of(scenario)

    assert verify_proof(edited, entries, NOW).reason == "fields_do_not_match_statement"
    assert verify_proof(forged, entries, NOW).reason == "bad_signature"
    assert verify_proof(proof, entries, NOW, challenge="x").reason == "wrong_challenge"
    assert verify_proof(proof, entries, NOW, audience="x").reason == "wrong_audience"


def test_a_revoked_device_can_no_longer_prove() -> None:
    scenario = build("genesis A B C t=2")
    proof = proof_by(scenario, "C")
    scenario.run("revoke C by A,B")

    result = verify_proof(proof, log_of(scenario), NOW)

    assert (result.valid, result.reason) == (False, "revoked_signer")


def test_a_proof_signed_after_the_signers_revocation_names_the_revocation() -> None:
    scenario = build("genesis A B C t=2")
    scenario.run("revoke C by A,B")
    proof = proof_by(scenario, "C")

    result = verify_proof(proof, log_of(scenario), NOW)

    assert (result.valid, result.reason) == (False, "revoked_signer")


def test_a_device_the_mesh_never_had_is_an_unknown_signer() -> None:
    scenario, stranger = build("genesis A B t=2"), build("genesis S t=1")
    proof = proof_by(scenario, "A")
    proof["signatures"][0]["device_id"] = stranger.id("S")

    result = verify_proof(proof, log_of(scenario), NOW)

    assert (result.valid, result.reason) == (False, "unknown_signer")


def test_a_proof_of_another_mesh_is_refused() -> None:
    ours, theirs = build("genesis A B t=2"), build("genesis A B t=2", label="other")
    proof = proof_by(theirs, "A")

    assert verify_proof(proof, log_of(ours), NOW).reason == "wrong_mesh"
    assert verify_proof(proof, ours.state.did_document(), NOW).reason == "wrong_mesh"


def test_after_a_key_rotation_proofs_name_the_enrollment_id() -> None:
    scenario = build("genesis A B t=2; rotate A")
    proof = proof_by(scenario, "A")

    by_log = verify_proof(proof, log_of(scenario), NOW)
    by_document = verify_proof(proof, scenario.state.did_document(), NOW)

    assert by_log.signers == (scenario.id("A"),) and by_log.valid
    assert by_document.valid, by_document.reason
