"""The mesh log: the brief's membership stories, hostile entries, forks and
rollback, each checked through the real signed entries."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import Context, DeviceKeys
from meshd.errors import (
    BadSignature,
    DeviceRevoked,
    InvalidEntry,
    InvalidInput,
    InvalidState,
    LockoutRefused,
    RollbackRefused,
    ThresholdNotMet,
)
from meshd.mesh.changes import Founder, make_genesis, rotate_vault
from meshd.mesh.log import MAX_FORK_DEPTH, MeshLog, create_mesh, fork_choice
from meshd.mesh.proposals import (
    approval_for,
    finalize,
    make_join_request,
    propose,
    short_code,
)
from meshd.mesh.records import (
    ENROLL,
    ENTRY_KIND_OF_PROPOSAL,
    REVOKE,
    THRESHOLD,
    ZERO_HASH,
    DeviceRecord,
    Directory,
    EntryBody,
    Proposal,
    Revocation,
)
from meshd.mesh.scenario import Scenario, build, scenario_keys
from meshd.mesh.state import entry_hash
from meshd.mesh.vaults import new_generation
from meshd.mesh.view import MembershipView

NOW = 1_700_000_000_000


def resigned(signed: Signed, body: EntryBody, signer: str) -> Signed:
    """``body`` re-encoded and signed by ``signer``'s scenario keys."""
    data = body.encode()
    keys = scenario_keys(signer)
    return Signed(
        data, (Signature(keys.device_id, keys.sign(Context.MEMBERSHIP, data)),)
    )


def problem(error: pytest.ExceptionInfo[InvalidEntry]) -> str:
    return str(error.value.details["problem"])


# -- Stories ------------------------------------------------------------------------


def test_two_of_three_enrollment_adds_the_device_and_keeps_the_threshold() -> None:
    mesh = build("genesis A B C t=2; add D by A,B")

    assert mesh.active_names() == ["A", "B", "C", "D"]
    assert mesh.state.threshold == 2
    assert mesh.state.device_name(mesh.id("D")) == "D"
    assert mesh.state.vault.number == 1
    assert {slot.device_id for slot in mesh.state.vault.slots} == {
        mesh.id(name) for name in "ABCD"
    }


def test_single_device_cannot_enroll_revoke_or_change_threshold_in_two_of_three() -> (
    None
):
    for statement in ("add D by A", "revoke C by A", "threshold 3 by A"):
        mesh = build("genesis A B C t=2")
        with pytest.raises(ThresholdNotMet):
            mesh.run(statement)
        assert mesh.state.position == 0


def test_second_device_raises_threshold_from_one_to_two() -> None:
    log, _ = create_mesh("alice", scenario_keys("A"), "phone", "phone", NOW)
    assert log.state.threshold == 1
    assert any("THRESHOLD IS 1" in warning for warning in log.state.warnings())

    mesh = build("genesis A; add B by A")
    assert mesh.state.threshold == 2
    assert not any("THRESHOLD IS 1" in w for w in mesh.state.warnings())


def test_adding_a_second_device_while_keeping_threshold_one_is_refused() -> None:
    mesh = build("genesis A")

    with pytest.raises(LockoutRefused, match="only while the mesh has one device"):
        mesh.run("add B by A t=1")
    assert mesh.state.position == 0


def test_lowering_the_threshold_to_one_with_three_devices_is_refused() -> None:
    mesh = build("genesis A B C t=2")

    with pytest.raises(LockoutRefused) as refused:
        propose(mesh.state, mesh.key("A"), THRESHOLD, NOW, threshold=1)
    assert refused.value.reason == "lockout_refused"
    assert refused.value.details["rule"] == "threshold_one"
    assert mesh.state.threshold == 2


def test_a_threshold_one_entry_written_into_storage_is_refused_by_the_log() -> None:
    mesh = build("genesis A B C t=2")

    # Hostile A and B write an entry that approval_for and finalize refuse.
    proposal = _hostile_proposal(mesh, THRESHOLD, mesh.key("A"), threshold=1)
    names = {mesh.id(n): n for n in "ABC"}
    entry = _hostile_entry(mesh, proposal, ["A", "B"], names)
    with pytest.raises(LockoutRefused, match="only while the mesh has one device"):
        mesh.mesh.apply(entry)
    assert mesh.state.threshold == 2 and mesh.state.position == 0


def test_an_enrollment_entry_that_keeps_threshold_one_is_refused_by_the_log() -> None:
    mesh = build("genesis A")
    new = scenario_keys("B")

    # The new device signs a request to keep threshold 1, the one member
    # endorses it and the vault says 1: well signed, yet unlawful.
    request = _hostile_proposal(
        mesh, ENROLL, new, threshold=1, new_device=DeviceRecord.of(new.public, "phone")
    )
    entry = _hostile_entry(mesh, request, ["A"], {"A": "A", new.device_id: "B"})
    with pytest.raises(LockoutRefused, match="only while the mesh has one device"):
        mesh.mesh.apply(entry)
    assert mesh.state.position == 0


def test_revoking_down_to_one_device_may_lower_the_threshold_to_one() -> None:
    mesh = build("genesis A B t=2; revoke B by A,B t=1")

    assert mesh.active_names() == ["A"]
    assert mesh.state.threshold == 1


def _hostile_proposal(
    mesh: Scenario,
    kind: str,
    proposer: DeviceKeys,
    *,
    threshold: int,
    new_device: DeviceRecord | None = None,
) -> Signed:
    """A proposal signed by ``proposer``, made without the proposal checks."""
    state = mesh.state
    proposal = Proposal(
        kind,
        state.mesh_id,
        state.head_hash,
        state.position,
        state.device_id_of(proposer.public),
        NOW,
        NOW + 60_000,
        new_device,
        (),
        threshold,
        b"",
        None,
        bytes(16),
    ).encode()
    signer = state.device_id_of(proposer.public)
    return Signed(
        proposal,
        (Signature(signer, proposer.sign(Context.PROPOSAL, proposal)),),
    )


def _hostile_entry(
    mesh: Scenario, proposal: Signed, endorsers: list[str], names: dict[str, str]
) -> Signed:
    """An entry for ``proposal`` endorsed by ``endorsers`` and finalized by the
    first of them, with a vault for ``names`` at the proposal's threshold."""
    state = mesh.state
    body = Proposal.decode(proposal.body)
    keys = {device: scenario_keys(name) for device, name in names.items()}
    recipients = {device: k.public.encryption for device, k in keys.items()}
    directory = Directory("test-mesh", dict(names), {})
    vault = new_generation(
        state.vault.number + 1, body.threshold, recipients, directory, state.head_hash
    )
    endorsements = tuple(
        sorted(
            (
                Signature(mesh.id(n), mesh.key(n).sign(Context.APPROVAL, proposal.body))
                for n in endorsers
            ),
            key=lambda s: s.signer,
        )
    )
    entry = EntryBody(
        state.position + 1,
        state.head_hash,
        ENTRY_KIND_OF_PROPOSAL[body.kind],
        NOW,
        None,
        proposal.encode(),
        endorsements,
        None,
        vault,
    )
    return resigned(proposal, entry, endorsers[0])


def _device_id(keys: DeviceKeys) -> str:
    return keys.device_id


def test_a_genesis_of_several_devices_at_threshold_one_is_refused() -> None:
    founders = [Founder(scenario_keys(n), n, "phone") for n in "AB"]
    with pytest.raises(InvalidInput):
        make_genesis("alice", founders, 1, NOW)

    # Signed by both founders all the same, it is refused when read.
    lawful = make_genesis("alice", founders, 2, NOW)
    body = EntryBody.decode(lawful.body)
    facts = replace(body.genesis, threshold=1)  # type: ignore[arg-type]
    records = {r.device_id: r.encryption_key for r in facts.devices}
    vault = new_generation(0, 1, records, Directory("alice", {}, {}), ZERO_HASH)
    data = replace(body, genesis=facts, vault=vault).encode()
    forged = Signed(
        data,
        tuple(
            Signature(k.device_id, k.sign(Context.MEMBERSHIP, data))
            for k in sorted((scenario_keys(n) for n in "AB"), key=_device_id)
        ),
    )
    with pytest.raises(InvalidEntry) as error:
        MeshLog(forged)
    assert problem(error) == "threshold"


def test_stolen_phone_is_revoked_by_the_other_two_with_its_cutoff() -> None:
    mesh = build(
        "genesis laptop tablet phone t=2; revoke phone by laptop,tablet cutoff=41"
    )

    phone = mesh.state.member(mesh.id("phone"))
    assert phone is not None and not phone.active
    assert phone.cutoff == 41
    assert phone.revoked_position == 1
    assert mesh.id("phone") not in {s.device_id for s in mesh.state.vault.slots}


def test_stolen_phone_cannot_finalize_its_own_revocation() -> None:
    mesh = build("genesis laptop tablet phone t=2")

    with pytest.raises(DeviceRevoked):
        mesh.run("revoke phone by laptop,phone fin phone")


def test_revoked_device_cannot_endorse_later_changes() -> None:
    mesh = build("genesis A B C t=2; revoke C by A,B")

    with pytest.raises(DeviceRevoked):
        mesh.run("threshold 2 by A,C")


def test_revoked_signer_in_an_entry_is_refused_with_its_reason() -> None:
    mesh = build("genesis A B C t=2; revoke C by A,B")
    state = mesh.state
    proposal = propose(state, mesh.key("A"), THRESHOLD, NOW, threshold=2)

    # An entry endorsed by A and by the revoked C (made outside the checks).
    body_entry = _entry_with_endorsers(mesh, proposal, ["A", "C"])
    with pytest.raises(InvalidEntry) as error:
        mesh.mesh.apply(body_entry)
    assert problem(error) == "revoked_signer"


def _entry_with_endorsers(
    mesh: Scenario, proposal: Signed, endorsers: list[str]
) -> Signed:
    """An entry for ``proposal`` made by a lenient finalizer (A)."""
    state = mesh.state
    good = [approval_for(state, proposal, mesh.key(n), NOW) for n in ("A", "B")]
    entry = finalize(state.read_directory(mesh.key("A")), proposal, good, mesh.key("A"))
    body = EntryBody.decode(entry.body)
    endorsements = tuple(
        sorted(
            (
                Signature(mesh.id(n), mesh.key(n).sign(Context.APPROVAL, proposal.body))
                for n in endorsers
            ),
            key=lambda s: s.signer,
        )
    )
    return resigned(entry, replace(body, approvals=endorsements), "A")


def test_lockout_guards_refuse_with_the_reason() -> None:
    with pytest.raises(LockoutRefused, match="above the 3 active"):
        build("genesis A B C t=2; threshold 4 by A,B")
    with pytest.raises(LockoutRefused, match="lower the threshold"):
        build("genesis A B t=2; revoke B by A,B")
    with pytest.raises(LockoutRefused, match="last device"):
        build("genesis A; revoke A by A")


def test_key_rotation_keeps_the_device_id_and_old_keys_stop_counting() -> None:
    mesh = build("genesis A B C t=2; rotate A")
    member = mesh.state.member(mesh.id("A"))

    assert member is not None and member.keys == scenario_keys("A", 1).public
    assert mesh.state.member_at(mesh.id("A"), mesh.state.hash_at(0)) is not None
    old = mesh.state.member_at(mesh.id("A"), mesh.state.hash_at(0))
    assert old is not None and old.keys == scenario_keys("A").public

    # The rotated device still approves, with its new keys.
    mesh.run("add D by A,B")
    assert mesh.state.threshold == 2 and len(mesh.active_names()) == 4


def test_lone_vault_generation_by_one_active_device() -> None:
    mesh = build("genesis A B C t=2; vault by B")

    assert mesh.state.vault.number == 1
    assert mesh.state.last_kind == "vault-generation"


def test_did_document_lists_active_ed25519_keys() -> None:
    mesh = build("genesis A B C t=2; revoke C by A,B")
    document = mesh.state.did_document()

    assert document["id"] == mesh.state.did
    assert mesh.state.did.startswith("did:human:")
    methods = document["verificationMethod"]
    assert [m["id"].split("#")[1] for m in methods] == sorted(
        [mesh.id("A"), mesh.id("B")]
    )
    assert all(m["publicKeyMultibase"].startswith("z6Mk") for m in methods)


def test_log_round_trips_through_bytes_and_reaches_the_same_state() -> None:
    mesh = build("genesis A B C t=2; add D by A,B; revoke C by A,D; rotate B")
    stored = [entry.encode() for entry in mesh.entries()]

    reloaded = MeshLog.from_entries(stored, scenario_keys("A"), mesh.state.head_hash)

    assert reloaded.head == mesh.state.head_hash
    assert reloaded.state.active_ids() == mesh.state.active_ids()
    assert reloaded.state.label == "test-mesh"


def test_outsider_cannot_read_device_names_in_the_log() -> None:
    mesh = build("genesis A B C t=2; add D by A,B")
    outsider = MeshLog.from_entries(mesh.entries(), scenario_keys("Z"))

    assert outsider.state.label is None
    assert outsider.state.device_name(mesh.id("A")) is None
    assert b"test-mesh" not in b"".join(e.encode() for e in mesh.entries())


# -- Hostile entries ------------------------------------------------------------------


def _revoke_entry(mesh: Scenario, approvers: list[str], finalizer: str = "A") -> Signed:
    state = mesh.state
    proposal = propose(
        state,
        mesh.key(approvers[0]),
        REVOKE,
        NOW,
        revocations=[Revocation(mesh.id("C"), 0)],
    )
    approvals = [approval_for(state, proposal, mesh.key(n), NOW) for n in approvers]
    keys = mesh.key(finalizer)
    return finalize(state.read_directory(keys), proposal, approvals, keys)


def test_forged_endorsement_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    entry = _revoke_entry(mesh, ["A", "B"])
    body = EntryBody.decode(entry.body)
    forged = tuple(
        Signature(s.signer, bytes(64)) if s.signer == mesh.id("B") else s
        for s in body.approvals
    )

    with pytest.raises(BadSignature):
        mesh.mesh.apply(resigned(entry, replace(body, approvals=forged), "A"))


def test_duplicated_endorser_is_counted_once_and_refused() -> None:
    mesh = build("genesis A B C t=2")
    entry = _revoke_entry(mesh, ["A", "B"])
    body = EntryBody.decode(entry.body)
    mine = next(s for s in body.approvals if s.signer == mesh.id("A"))

    with pytest.raises(InvalidEntry) as error:
        mesh.mesh.apply(resigned(entry, replace(body, approvals=(mine, mine)), "A"))
    assert problem(error) == "duplicate_signer"


def test_endorsement_signed_in_another_context_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    entry = _revoke_entry(mesh, ["A", "B"])
    body = EntryBody.decode(entry.body)
    proposal = Signed.decode(body.proposal)
    wrong = tuple(
        Signature(s.signer, mesh.key("B").sign(Context.PROPOSAL, proposal.body))
        if s.signer == mesh.id("B")
        else s
        for s in body.approvals
    )

    with pytest.raises(BadSignature) as error:
        mesh.mesh.apply(resigned(entry, replace(body, approvals=wrong), "A"))
    assert error.value.details["device"] == mesh.id("B")


def test_finalizer_signature_in_another_context_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    entry = _revoke_entry(mesh, ["A", "B"])
    keys = mesh.key("A")
    other = Signed(
        entry.body, (Signature(keys.device_id, keys.sign(Context.OP, entry.body)),)
    )

    with pytest.raises(BadSignature):
        mesh.mesh.apply(other)


def test_swapped_encryption_key_in_a_join_request_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    request = make_join_request(state, mesh.key("D"), "D", "phone", NOW)
    proposal = Proposal.decode(request.body)
    assert proposal.new_device is not None
    thief = scenario_keys("thief").public.encryption
    swapped = replace(
        proposal, new_device=replace(proposal.new_device, encryption_key=thief)
    )
    forged = Signed(swapped.encode(), request.signatures)

    with pytest.raises(BadSignature):
        approval_for(state, forged, mesh.key("A"), NOW, short_code(forged.body))


def test_entry_with_tampered_vault_key_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    entry = _revoke_entry(mesh, ["A", "B"])
    body = EntryBody.decode(entry.body)
    assert body.vault is not None
    tampered = replace(body, vault=replace(body.vault, public_key=bytes(32)))

    with pytest.raises(BadSignature):
        mesh.mesh.apply(Signed(tampered.encode(), entry.signatures))


def test_replayed_older_entry_changes_nothing_and_a_stale_chain_is_refused() -> None:
    mesh = build("genesis A B C t=2; add D by A,B; threshold 3 by A,B")
    head = mesh.state.head_hash
    old = mesh.entries()[1]

    assert mesh.mesh.apply(old).head_hash == head

    # Storage offers only the first two entries: this device accepted more.
    with pytest.raises(RollbackRefused):
        MeshLog.from_entries(mesh.entries()[:2], accepted_head=head)


def test_entry_for_a_proposal_made_on_another_head_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    early = mesh.state
    proposal = propose(early, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    approvals = [approval_for(early, proposal, mesh.key(n), NOW) for n in ("A", "B")]
    mesh.run("vault by A")

    with pytest.raises(InvalidEntry) as error:
        finalize(
            mesh.state.read_directory(mesh.key("A")), proposal, approvals, mesh.key("A")
        )
    assert problem(error) == "stale_proposal"


# -- Forks ---------------------------------------------------------------------------


def _two_at_position_one(first: str, second: str) -> tuple[Scenario, Signed, Signed]:
    one = build("genesis A B C D t=2")
    two = one.branch()
    return one, one.run(first).entries()[1], two.run(second).entries()[1]


def test_fork_rule_one_revocation_beats_concurrent_change() -> None:
    mesh, thief_change, owner_revoke = _two_at_position_one(
        "threshold 3 by C,D,A", "revoke C by A,B"
    )

    winner, rule = fork_choice(thief_change, owner_revoke)
    assert (winner, rule) == (owner_revoke, 1)
    mesh.mesh.apply(owner_revoke)
    assert mesh.state.head_hash == entry_hash(owner_revoke)
    assert mesh.state.member(mesh.id("C")) is not None
    assert not mesh.state.member(mesh.id("C")).active  # type: ignore[union-attr]


def test_fork_rule_two_more_signers_win_and_equivocation_is_recorded() -> None:
    mesh, more, fewer = _two_at_position_one(
        "threshold 3 by A,B,C", "threshold 4 by A,B"
    )

    with pytest.raises(RollbackRefused, match="rule 2"):
        mesh.mesh.apply(fewer)
    assert mesh.state.head_hash == entry_hash(more)
    # A wrote both entries; B only approved both proposals, which is honest.
    assert mesh.state.equivocators == {mesh.id("A")}
    assert any("equivocation" in w for w in mesh.state.warnings())


def test_fork_rule_three_lower_hash_wins_between_two_finalizers() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    proposal = propose(state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    approvals = [approval_for(state, proposal, mesh.key(n), NOW) for n in ("A", "B")]
    by_a = finalize(
        state.read_directory(mesh.key("A")), proposal, approvals, mesh.key("A")
    )
    by_b = finalize(
        state.read_directory(mesh.key("B")), proposal, approvals, mesh.key("B")
    )
    lower = min(by_a, by_b, key=entry_hash)

    for order in ((by_a, by_b), (by_b, by_a)):
        log = MeshLog(mesh.entries()[0])
        for entry in order:
            with contextlib.suppress(RollbackRefused):
                log.apply(entry)
        assert log.head == entry_hash(lower)
        assert log.forks[0].rule == 3


def test_same_approvals_give_the_same_membership_change_bytes() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    proposal = propose(state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    approvals = [approval_for(state, proposal, mesh.key(n), NOW) for n in ("B", "A")]
    one = EntryBody.decode(
        finalize(
            state.read_directory(mesh.key("A")), proposal, approvals, mesh.key("A")
        ).body
    )
    two = EntryBody.decode(
        finalize(
            state.read_directory(mesh.key("C")),
            proposal,
            approvals[::-1],
            mesh.key("C"),
        ).body
    )

    assert replace(one, vault=None) == replace(two, vault=None)


def test_fork_deeper_than_the_bound_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    rival = mesh.branch().run("vault by B").entries()[1]
    for _ in range(MAX_FORK_DEPTH + 1):
        mesh.run("vault by A")

    with pytest.raises(RollbackRefused, match="deep"):
        mesh.mesh.apply(rival)


def test_entry_held_until_its_predecessor_arrives() -> None:
    mesh = build("genesis A B C t=2; add D by A,B; revoke C by A,D")
    genesis, first, second = mesh.entries()
    log = MeshLog(genesis)

    log.receive(second)
    assert log.position == 0 and log.held == 1
    log.receive(first)
    assert log.head == mesh.state.head_hash and log.held == 0


def test_rotate_vault_needs_a_device_that_reads_the_directory() -> None:
    mesh = build("genesis A B C t=2")

    with pytest.raises(InvalidState):
        rotate_vault(MeshLog(mesh.entries()[0]).state, mesh.key("A"), NOW)


def test_genesis_missing_a_founder_signature_is_refused() -> None:
    genesis = build("genesis A B C t=2").entries()[0]
    partial = Signed(genesis.body, genesis.signatures[:2])

    with pytest.raises(InvalidEntry) as error:
        MeshLog(partial)
    assert problem(error) == "signers"


def test_log_and_state_answer_as_a_membership_view() -> None:
    mesh = build("genesis A B C t=2; revoke C by A,B cutoff=3")
    views: list[MembershipView] = [mesh.mesh, mesh.state]

    for view in views:
        assert view.threshold == 2 and view.position == 1
        assert [m.device_id for m in view.active_members()] == sorted(
            [mesh.id("A"), mesh.id("B")]
        )
        genesis_hash = mesh.state.hash_at(0)
        then = view.member_at(mesh.id("C"), genesis_hash)
        assert then is not None and then.active
        now = view.member(mesh.id("C"))
        assert now is not None and not now.active and now.cutoff == 3
        assert view.position_of(view.head_hash) == 1
        assert view.position_of(bytes(32)) is None


def test_a_third_device_keeps_the_threshold_of_two() -> None:
    mesh = build("genesis A; add B by A; add C by A,B")

    assert mesh.state.threshold == 2
    assert len(mesh.active_names()) == 3


def test_strict_apply_names_an_entry_that_arrives_before_its_predecessor() -> None:
    mesh = build("genesis A B C t=2; vault by A; vault by B")
    log = MeshLog(mesh.entries()[0])

    with pytest.raises(InvalidEntry) as error:
        log.apply(mesh.entries()[2])
    assert problem(error) == "out_of_order"


def test_a_log_with_three_entries_racing_for_one_position_loads_in_any_order() -> None:
    mesh = build("genesis A B C D t=2")
    state = mesh.state
    racing = []
    for proposer, approver, threshold in (("A", "B", 3), ("B", "C", 4), ("C", "D", 2)):
        proposal = propose(
            state, mesh.key(proposer), THRESHOLD, NOW, threshold=threshold
        )
        approvals = [
            approval_for(state, proposal, mesh.key(name), NOW)
            for name in (proposer, approver)
        ]
        reader = state.read_directory(mesh.key(proposer))
        racing.append(finalize(reader, proposal, approvals, mesh.key(proposer)))
    genesis = mesh.entries()[0]

    heads = {
        MeshLog.from_entries([genesis, *order]).head
        for order in (racing, racing[::-1], [racing[1], racing[0], racing[2]])
    }

    assert len(heads) == 1
    assert MeshLog.from_entries([genesis, *racing]).state.equivocators == set()
