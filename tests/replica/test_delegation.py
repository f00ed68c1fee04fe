"""Capabilities and delegations as passport entries."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import Context, DeviceKeys
from meshd.errors import InvalidInput
from meshd.replica.delegation import capability_id, delegation_standing

from .replica_harness import START, Mesh


def test_adding_a_capability_files_it_under_an_id_derived_from_its_name(
    tmp_path: Path,
) -> None:
    mesh = Mesh(tmp_path, 2)
    laptop, phone = mesh.replicas
    first, _ = laptop.add_capability("calendar.read", {"scope": "work"}, START)
    second, _ = phone.add_capability("calendar.read", {"scope": "all"}, START + 1)
    mesh.sync_all(START + 2)
    assert first == second == capability_id("calendar.read")
    assert laptop.get(f"capabilities/{first}") == {
        "name": "calendar.read",
        "data": {"scope": "all"},
    }


def test_a_delegation_is_valid_until_it_expires(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    agent = DeviceKeys.generate().public.signing
    delegation = mesh.replicas[0].issue_delegation(
        agent, ["calendar.read"], START + 3600, START
    )
    mesh.sync_all(START + 1)
    [seen] = mesh.replicas[1].valid_delegations(START + 10)
    assert seen.delegation_id == delegation.delegation_id
    assert seen.body.agent_key == agent
    assert mesh.replicas[1].valid_delegations(START + 3600) == []


def test_delegations_end_when_their_issuing_device_is_revoked(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 3)
    agent = DeviceKeys.generate().public.signing
    mesh.replicas[0].issue_delegation(agent, ["mail.send"], START + 3600, START)
    mesh.replicas[1].issue_delegation(agent, ["mail.read"], START + 3600, START)
    mesh.sync_all(START + 1)
    assert len(mesh.replicas[2].valid_delegations(START + 2)) == 2

    mesh.view.revoke(mesh.keys[0].device_id, cutoff=1)
    [left] = mesh.replicas[2].valid_delegations(START + 3)
    assert left.body.capabilities == ("mail.read",)


def test_a_delegation_with_a_forged_signature_is_not_valid(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    agent = DeviceKeys.generate().public.signing
    delegation = mesh.replicas[0].issue_delegation(agent, ["x"], START + 60, START)
    signed = Signed.decode(delegation.signed)
    # Signed in the op context instead of the delegation context.
    wrong = mesh.keys[0].sign(Context.OP, signed.body)
    forged = Signed(signed.body, (Signature(mesh.keys[0].device_id, wrong),)).encode()
    value = dict(delegation.to_json(), signed=base64.b64encode(forged).decode())
    mesh.replicas[1].local_set(f"delegations/{delegation.delegation_id}", value, START)
    assert mesh.replicas[1].valid_delegations(START + 1) == []


def test_a_delegation_must_expire_in_the_future(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 2)
    with pytest.raises(InvalidInput):
        mesh.replicas[0].issue_delegation(b"k" * 32, ["x"], START - 1, START)


def test_each_delegation_that_does_not_hold_says_why(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, 3)
    agent = DeviceKeys.generate().public.signing
    short = mesh.replicas[0].issue_delegation(agent, ["a"], START + 60, START)
    revoked = mesh.replicas[1].issue_delegation(agent, ["b"], START + 3600, START)
    mesh.view.revoke(mesh.keys[1].device_id, cutoff=1)
    view, later = mesh.view, START + 61

    def standing(delegation_id: str, value: object) -> str:
        return delegation_standing(delegation_id, value, view, later)

    assert standing(short.delegation_id, short.to_json()) == "expired"
    assert standing(revoked.delegation_id, revoked.to_json()) == "issuer_revoked"
    assert standing("elsewhere", revoked.to_json()) == "misfiled"
    assert standing(short.delegation_id, {"signed": "not base64!"}) == "malformed"
    assert standing(short.delegation_id, "text") == "malformed"
