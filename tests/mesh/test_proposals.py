"""Proposals and approvals: codes, expiry, rejection, cancellation, and the
book the daemon drives, all over real signed bytes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import Context
from meshd.errors import (
    BadSignature,
    Expired,
    InvalidEntry,
    InvalidInput,
    InvalidState,
    LockoutRefused,
    NotAMember,
    ProposalClosed,
    ThresholdNotMet,
    TooManyAttempts,
    WrongCode,
)
from meshd.mesh import proposals
from meshd.mesh.proposals import (
    APPLIED,
    CANCELLED,
    DEFAULT_ENROLL_EXPIRY_MS,
    EXPIRED,
    PENDING,
    REJECTED,
    ProposalBook,
    approval_for,
    make_join_request,
    propose,
    read_note,
    rejection_for,
    short_code,
)
from meshd.mesh.records import (
    AUTH,
    REVOKE,
    THRESHOLD,
    Approval,
    DeviceRecord,
    Proposal,
    Revocation,
)
from meshd.mesh.scenario import Scenario, build, scenario_keys
from meshd.mesh.vaults import proposal_id

NOW = 1_700_000_000_000


def join(mesh: Scenario, name: str = "D") -> Signed:
    return make_join_request(mesh.state, mesh.key(name), "Work laptop", "laptop", NOW)


def test_short_code_is_six_digits_and_tied_to_the_request() -> None:
    mesh = build("genesis A B C t=2")
    one, two = join(mesh), join(mesh)

    assert len(short_code(one.body)) == 6 and short_code(one.body).isdigit()
    assert short_code(one.body) == short_code(Signed.decode(one.encode()).body)
    assert short_code(one.body) != short_code(two.body)  # fresh nonce per request


def test_enrollment_approval_needs_the_code_shown_on_the_new_device() -> None:
    mesh = build("genesis A B C t=2")
    request = join(mesh)

    with pytest.raises(WrongCode):
        approval_for(mesh.state, request, mesh.key("A"), NOW)
    with pytest.raises(WrongCode):
        approval_for(mesh.state, request, mesh.key("A"), NOW, "000000")
    approval = approval_for(
        mesh.state, request, mesh.key("A"), NOW, short_code(request.body)
    )
    assert Approval.decode(approval.body).sealed_share


def test_three_wrong_codes_lock_the_request() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(mesh.state, join(mesh))
    wrong = "999999" if short_code(pending.signed.body) != "999999" else "111111"

    for _ in range(2):
        with pytest.raises(WrongCode):
            book.approve(pending.id, mesh.state, mesh.key("A"), NOW, wrong)
    with pytest.raises(TooManyAttempts):
        book.approve(pending.id, mesh.state, mesh.key("A"), NOW, wrong)
    with pytest.raises(TooManyAttempts):
        book.approve(
            pending.id, mesh.state, mesh.key("A"), NOW, short_code(pending.signed.body)
        )


def test_restored_wrong_codes_count_toward_the_lock_and_never_go_down() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(mesh.state, join(mesh))
    right = short_code(pending.signed.body)
    wrong = "999999" if right != "999999" else "111111"

    book.restore_wrong_codes(pending.id, 2)
    book.restore_wrong_codes(pending.id, 1)
    with pytest.raises(TooManyAttempts):
        book.approve(pending.id, mesh.state, mesh.key("A"), NOW, wrong)

    fresh = ProposalBook()
    again = fresh.add(mesh.state, join(mesh))
    fresh.restore_wrong_codes(again.id, 3)
    with pytest.raises(TooManyAttempts):
        fresh.approve(
            again.id, mesh.state, mesh.key("A"), NOW, short_code(again.signed.body)
        )


def test_enrollment_request_expires_after_five_minutes_by_default() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(mesh.state, join(mesh))
    later = NOW + DEFAULT_ENROLL_EXPIRY_MS + 1

    with pytest.raises(Expired):
        book.approve(pending.id, mesh.state, mesh.key("A"), later, "123456")
    assert pending.status == EXPIRED
    assert book.pending(later) == []


def test_expiry_is_configurable() -> None:
    mesh = build("genesis A B C t=2")
    request = make_join_request(
        mesh.state, mesh.key("D"), "D", "phone", NOW, expires_in=60_000
    )

    with pytest.raises(Expired):
        approval_for(
            mesh.state, request, mesh.key("A"), NOW + 60_001, short_code(request.body)
        )


def test_book_collects_approvals_from_devices_and_finalizes_when_ready() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    request = join(mesh)
    code = short_code(request.body)
    on_a, on_b = ProposalBook(), ProposalBook()
    pending = on_a.add(state, Signed.decode(request.encode()))
    on_b.add(state, request)

    on_a.approve(pending.id, state, mesh.key("A"), NOW, code)
    assert not on_a.ready(pending.id, state)
    from_b = on_b.approve(pending.id, state, mesh.key("B"), NOW, code)
    on_a.receive(state, Signed.decode(from_b.encode()), NOW)
    assert on_a.ready(pending.id, state)

    entry = on_a.finalize(
        pending.id, state.read_directory(mesh.key("A")), mesh.key("A"), NOW
    )
    mesh.mesh.apply(Signed.decode(entry.encode()))
    on_a.settle(mesh.state, [pending.id])
    assert pending.status == APPLIED
    assert mesh.state.device_name(mesh.id("D")) == "Work laptop"


def test_rejections_are_recorded_and_close_an_unreachable_proposal() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    book = ProposalBook()
    proposal = propose(
        state, mesh.key("A"), REVOKE, NOW, revocations=[Revocation(mesh.id("C"), 0)]
    )
    pending = book.add(state, proposal)

    book.reject(pending.id, state, mesh.key("B"), NOW)
    assert pending.status == PENDING and mesh.id("B") in pending.rejections
    book.reject(pending.id, state, mesh.key("C"), NOW)
    assert pending.status == REJECTED
    with pytest.raises(ProposalClosed):
        book.approve(pending.id, state, mesh.key("A"), NOW)


def test_a_device_that_rejected_cannot_then_approve() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    book = ProposalBook()
    pending = book.add(
        state, propose(state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    )
    book.reject(pending.id, state, mesh.key("B"), NOW)

    with pytest.raises(InvalidState, match="its answer stands"):
        book.approve(pending.id, state, mesh.key("B"), NOW)
    assert mesh.id("B") not in pending.approvals
    assert not book.ready(pending.id, state)


def test_an_approval_from_a_device_that_rejected_is_not_counted_in_any_order() -> None:
    mesh = build("genesis A B C t=2")
    state = mesh.state
    proposal = propose(state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    answers = {
        "A": approval_for(state, proposal, mesh.key("A"), NOW),
        "B approves": approval_for(state, proposal, mesh.key("B"), NOW),
        "B rejects": rejection_for(state, proposal, mesh.key("B"), NOW),
    }

    # A hostile B signs both answers; devices meet them in different orders.
    for order in (
        ["A", "B rejects", "B approves"],
        ["A", "B approves", "B rejects"],
        ["B approves", "B rejects", "A"],
    ):
        book = ProposalBook()
        pending = book.add(state, proposal)
        for name in order:
            book.receive(state, answers[name], NOW)
        assert set(pending.approvals) == {mesh.id("A")}, order
        assert set(pending.rejections) == {mesh.id("B")}, order
        assert not book.ready(pending.id, state), order
        with pytest.raises(ThresholdNotMet):
            book.finalize(
                pending.id, state.read_directory(mesh.key("A")), mesh.key("A"), NOW
            )


def test_only_the_requesting_device_cancels_its_request() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(mesh.state, join(mesh))

    with pytest.raises(InvalidInput):
        book.cancel(pending.id, mesh.id("A"))
    book.cancel(pending.id, mesh.id("D"))
    assert pending.status == CANCELLED


def test_finalize_with_too_few_approvals_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(
        mesh.state, propose(mesh.state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    )
    book.approve(pending.id, mesh.state, mesh.key("A"), NOW)

    with pytest.raises(ThresholdNotMet):
        book.finalize(
            pending.id, mesh.state.read_directory(mesh.key("A")), mesh.key("A"), NOW
        )


def test_outsider_cannot_propose_or_approve() -> None:
    mesh = build("genesis A B C t=2")
    outsider = scenario_keys("Z")

    with pytest.raises(NotAMember):
        propose(mesh.state, outsider, THRESHOLD, NOW, threshold=3)
    request = join(mesh)
    with pytest.raises(NotAMember):
        approval_for(mesh.state, request, outsider, NOW, short_code(request.body))


def test_approval_from_an_outsider_is_refused_by_the_book() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    proposal = propose(mesh.state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    pending = book.add(mesh.state, proposal)

    # Z signs a well-formed approval with its own real keys.
    outsider = scenario_keys("Z")
    body = Approval(
        pending.id,
        outsider.device_id,
        "approve",
        outsider.sign(Context.APPROVAL, proposal.body),
        0,
        b"",
        NOW,
    ).encode()
    signed = Signed(
        body, (Signature(outsider.device_id, outsider.sign(Context.APPROVAL, body)),)
    )

    with pytest.raises(InvalidEntry) as error:
        book.receive(mesh.state, signed, NOW)
    assert error.value.details["problem"] == "not_active"
    assert pending.approvals == {}


def test_tampered_approval_signature_is_refused() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(
        mesh.state, propose(mesh.state, mesh.key("A"), THRESHOLD, NOW, threshold=3)
    )
    approval = approval_for(mesh.state, pending.signed, mesh.key("B"), NOW)
    body = Approval.decode(approval.body)
    tampered = Signed(
        Approval(
            body.proposal_id,
            body.approver,
            body.decision,
            body.endorsement,
            9,
            b"",
            NOW,
        ).encode(),
        approval.signatures,
    )

    with pytest.raises(BadSignature):
        book.receive(mesh.state, tampered, NOW)


def test_proposal_that_would_lock_out_is_refused_before_anyone_approves() -> None:
    mesh = build("genesis A B t=2")

    with pytest.raises(LockoutRefused):
        propose(
            mesh.state,
            mesh.key("A"),
            REVOKE,
            NOW,
            revocations=[Revocation(mesh.id("B"), 0)],
        )


def test_auth_proposal_collects_approvals_but_changes_nothing() -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    pending = book.add(
        mesh.state, propose(mesh.state, mesh.key("A"), AUTH, NOW, challenge=b"login")
    )
    book.approve(pending.id, mesh.state, mesh.key("A"), NOW)
    book.approve(pending.id, mesh.state, mesh.key("B"), NOW)

    assert book.ready(pending.id, mesh.state)
    with pytest.raises(InvalidState):
        book.finalize(
            pending.id, mesh.state.read_directory(mesh.key("A")), mesh.key("A"), NOW
        )


def test_device_name_in_a_request_is_readable_only_by_members() -> None:
    mesh = build("genesis A B C t=2")
    proposal = Proposal.decode(join(mesh).body)

    note = read_note(proposal, mesh.key("B"))
    assert note is not None and note.device_name == "Work laptop"
    assert read_note(proposal, scenario_keys("Z")) is None


def test_proposal_id_is_stable_across_bytes() -> None:
    mesh = build("genesis A B C t=2")
    request = join(mesh)

    assert proposal_id(Signed.decode(request.encode()).body) == proposal_id(
        request.body
    )


def test_revoke_proposal_smuggling_a_new_device_gets_no_vault_share() -> None:
    mesh = build("genesis A B C t=2")
    honest = Proposal.decode(
        propose(
            mesh.state,
            mesh.key("A"),
            REVOKE,
            NOW,
            revocations=[Revocation(mesh.id("C"), 0)],
        ).body
    )
    thief = DeviceRecord.of(scenario_keys("thief").public, "phone")
    body = replace(honest, new_device=thief).encode()
    smuggled = Signed(
        body, (Signature(mesh.id("A"), mesh.key("A").sign(Context.PROPOSAL, body)),)
    )

    with pytest.raises(InvalidEntry) as error:
        approval_for(mesh.state, smuggled, mesh.key("B"), NOW)
    assert error.value.details["problem"] == "proposal_shape"


def test_look_alike_join_request_with_the_same_code_blocks_approval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mesh = build("genesis A B C t=2")
    book = ProposalBook()
    genuine = book.add(mesh.state, join(mesh, "D"))
    # An attacker who grinds a million requests finds one showing the same
    # code; stand in for that search by making every code collide.
    monkeypatch.setattr(proposals, "short_code", lambda body: "424242")
    book.add(mesh.state, join(mesh, "X"))

    with pytest.raises(InvalidState, match="same code"):
        book.approve(genuine.id, mesh.state, mesh.key("A"), NOW, "424242")
    assert genuine.approvals == {}
