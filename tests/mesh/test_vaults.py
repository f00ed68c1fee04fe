"""Vault generations and recovery: the new device rebuilds the vault seed
from its approvers' shares, and every share it is handed is checked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshd.crypto import vault
from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import Context, DeviceKeys, seal, unseal
from meshd.errors import (
    CorruptShare,
    DecryptionFailed,
    InvalidInput,
    UnauthorizedShare,
)
from meshd.mesh.proposals import approval_for, make_join_request, short_code
from meshd.mesh.records import Approval, EntryBody
from meshd.mesh.scenario import Scenario, build, scenario_keys
from meshd.mesh.vaults import open_directory, open_share, recover_vault_seed

NOW = 1_700_000_000_000


def recover(mesh: Scenario) -> bytes:
    """Rebuild the seed on new device N from the last request's approvals."""
    assert mesh.last is not None
    base = mesh.last.state
    return recover_vault_seed(
        base.vault,
        base.active_members(),
        mesh.last.proposal,
        mesh.last.approvals,
        mesh.key("N"),
    )


def resign_approval(signed: Signed, keys: DeviceKeys, **changes: object) -> Signed:
    approval = Approval.decode(signed.body)
    body = replace(approval, **changes).encode()  # type: ignore[arg-type]
    return Signed(body, (Signature(keys.device_id, keys.sign(Context.APPROVAL, body)),))


def test_recovery_from_two_remaining_devices_rebuilds_the_vault_seed() -> None:
    mesh = build("genesis A B phone t=2; recover N replacing phone by A,B")
    assert mesh.last is not None
    old_generation = mesh.last.state.vault

    seed = recover(mesh)

    assert vault.vault_public_key(seed) == old_generation.public_key
    assert mesh.active_names() == ["A", "B", "N"]
    assert not mesh.state.member(mesh.id("phone")).active  # type: ignore[union-attr]
    # The new device holds its own share of the new generation, and reads names.
    open_share(mesh.state.vault, mesh.key("N"))
    directory = open_directory(
        mesh.state.vault,
        mesh.state.vault_previous,
        mesh.id("N"),
        mesh.key("N").encryption_secret,
    )
    assert directory.names[mesh.id("N")] == "N"


def test_recovery_in_three_of_five_needs_three_shares() -> None:
    mesh = build("genesis A B C D E t=3; recover N replacing D,E by A,B,C")
    assert mesh.last is not None

    seed = recover(mesh)
    assert vault.vault_public_key(seed) == mesh.last.state.vault.public_key
    assert mesh.state.threshold == 3 and len(mesh.active_names()) == 4

    base = mesh.last.state
    with pytest.raises(InvalidInput):
        recover_vault_seed(
            base.vault,
            base.active_members(),
            mesh.last.proposal,
            mesh.last.approvals[:2],
            mesh.key("N"),
        )


def test_stolen_phone_cannot_read_the_new_vault_generation() -> None:
    mesh = build("genesis laptop tablet phone t=2; revoke phone by laptop,tablet")
    phone = mesh.key("phone")
    generation = mesh.state.vault

    with pytest.raises(InvalidInput):
        open_share(generation, phone)
    for slot in generation.slots:
        with pytest.raises(DecryptionFailed):
            unseal(phone.encryption_secret, slot.sealed_share)
    with pytest.raises(DecryptionFailed):
        open_directory(
            generation,
            mesh.state.vault_previous,
            mesh.id("phone"),
            phone.encryption_secret,
        )


def test_share_from_a_non_member_is_not_accepted() -> None:
    mesh = build("genesis A B C t=2")
    request = make_join_request(mesh.state, mesh.key("N"), "N", "phone", NOW)
    code = short_code(request.body)
    approvals = [
        approval_for(mesh.state, request, mesh.key(n), NOW, code) for n in "AB"
    ]
    outsider = scenario_keys("Z")
    forged = resign_approval(approvals[1], outsider, approver=outsider.device_id)

    with pytest.raises(UnauthorizedShare) as error:
        recover_vault_seed(
            mesh.state.vault,
            mesh.state.active_members(),
            request,
            [approvals[0], forged],
            mesh.key("N"),
        )
    assert error.value.details["device"] == outsider.device_id


def test_share_for_a_request_this_device_did_not_make_is_not_accepted() -> None:
    mesh = build("genesis A B C t=2")
    mine = make_join_request(mesh.state, mesh.key("N"), "N", "phone", NOW)
    theirs = make_join_request(mesh.state, mesh.key("M"), "M", "phone", NOW)
    code = short_code(theirs.body)
    approvals = [approval_for(mesh.state, theirs, mesh.key(n), NOW, code) for n in "AB"]

    with pytest.raises(UnauthorizedShare, match="not for a request"):
        recover_vault_seed(
            mesh.state.vault,
            mesh.state.active_members(),
            mine,
            approvals,
            mesh.key("N"),
        )
    with pytest.raises(UnauthorizedShare, match="not made by this device"):
        recover_vault_seed(
            mesh.state.vault,
            mesh.state.active_members(),
            theirs,
            approvals,
            mesh.key("N"),
        )


def test_corrupted_share_is_named_not_combined() -> None:
    mesh = build("genesis A B C t=2")
    request = make_join_request(mesh.state, mesh.key("N"), "N", "phone", NOW)
    code = short_code(request.body)
    approvals = [
        approval_for(mesh.state, request, mesh.key(n), NOW, code) for n in "AB"
    ]
    slot = mesh.state.vault.slot_of(mesh.id("B"))
    assert slot is not None
    garbage = seal(mesh.key("N").public.encryption, bytes([slot.index]) + bytes(16))
    corrupt = resign_approval(approvals[1], mesh.key("B"), sealed_share=garbage)

    with pytest.raises(CorruptShare) as error:
        recover_vault_seed(
            mesh.state.vault,
            mesh.state.active_members(),
            request,
            [approvals[0], corrupt],
            mesh.key("N"),
        )
    assert error.value.details == {"share": slot.index, "device": mesh.id("B")}


def test_rotated_device_keeps_its_share_sealed_to_the_new_key() -> None:
    mesh = build("genesis A B C t=2")
    before = open_share(mesh.state.vault, mesh.key("A"))
    mesh.run("rotate A")

    after = open_share(mesh.state.vault, mesh.key("A"), mesh.id("A"))
    assert after == before
    with pytest.raises(CorruptShare):
        open_share(mesh.state.vault, scenario_keys("A"))


def test_every_membership_change_brings_a_fresh_vault_key() -> None:
    mesh = build(
        "genesis A B C t=2; add D by A,B; revoke C by A,D; threshold 3 by A,B,D"
    )
    bodies = [EntryBody.decode(entry.body) for entry in mesh.entries()]

    publics = {body.vault.public_key for body in bodies if body.vault is not None}
    assert len(publics) == 4
    assert [body.vault.number for body in bodies if body.vault] == [0, 1, 2, 3]
