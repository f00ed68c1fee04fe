"""The decision on a foreign op: accept, duplicate, hold or reject."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from meshd.crypto.encoding import Signature, Signed
from meshd.crypto.suite import Context, DeviceKeys
from meshd.replica.clock import Timestamp
from meshd.replica.ingest import Reader, Verdict, decide
from meshd.replica.op import OpBody, OpPayload, SignedOp, make_op

from .membership_fake import FakeMembership

NOW_MS = 1_800_000_000_000


class Known:
    def __init__(self) -> None:
        self.vector: dict[str, int] = {}
        self.ids: dict[tuple[str, int], str] = {}

    def version_vector(self) -> Mapping[str, int]:
        return self.vector

    def has_op(self, op_id: str) -> bool:
        return op_id in self.ids.values()

    def op_at(self, author: str, sequence: int) -> str | None:
        return self.ids.get((author, sequence))

    def add(self, op: SignedOp) -> None:
        self.ids[(op.body.author, op.body.sequence)] = op.op_id
        self.vector[op.body.author] = op.body.sequence


@pytest.fixture
def alice() -> DeviceKeys:
    return DeviceKeys.generate()


@pytest.fixture
def bob() -> DeviceKeys:
    return DeviceKeys.generate()


@pytest.fixture
def view(alice: DeviceKeys, bob: DeviceKeys) -> FakeMembership:
    return FakeMembership([alice, bob])


def op_by(
    keys: DeviceKeys,
    view: FakeMembership,
    sequence: int = 1,
    wall_ms: int = NOW_MS,
    vector: Mapping[str, int] | None = None,
    path: str = "profile/name",
) -> SignedOp:
    return make_op(
        keys,
        view,
        sequence=sequence,
        timestamp=Timestamp(wall_ms, 0),
        version_vector=vector if vector is not None else {keys.device_id: sequence - 1},
        payload=OpPayload(path, False, '"Alice"', ""),
    )


def reader_for(keys: DeviceKeys) -> Reader:
    return Reader(keys.device_id, keys.encryption_secret)


def resign(keys: DeviceKeys, body: OpBody, context: Context = Context.OP) -> bytes:
    data = body.encode()
    return Signed(data, (Signature(body.author, keys.sign(context, data)),)).encode()


def test_a_valid_op_is_accepted_with_its_plaintext(alice, bob, view) -> None:
    decision = decide(op_by(alice, view).data, view, Known(), reader_for(bob), NOW_MS)
    assert decision.verdict is Verdict.ACCEPTED
    assert decision.accepted is not None
    assert decision.accepted.payload.path == "profile/name"


def test_the_vault_can_read_every_op(alice, bob, view) -> None:
    from meshd.crypto.vault import vault_secret

    stranger = Reader(
        "nobody", DeviceKeys.generate().encryption_secret, vault_secret(view.vault_seed)
    )
    decision = decide(op_by(alice, view).data, view, Known(), stranger, NOW_MS)
    assert decision.verdict is Verdict.ACCEPTED


def test_a_known_op_is_a_duplicate(alice, bob, view) -> None:
    op = op_by(alice, view)
    known = Known()
    known.add(op)
    decision = decide(op.data, view, known, reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.DUPLICATE, "known")


def test_a_flipped_ciphertext_bit_is_rejected(alice, bob, view) -> None:
    body = op_by(alice, view).body
    flipped = bytearray(body.ciphertext)
    flipped[-1] ^= 1
    data = resign(alice, replace(body, ciphertext=bytes(flipped)))
    decision = decide(data, view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (
        Verdict.REJECTED,
        "decryption_failed",
    )


def test_a_flipped_bit_under_the_signature_is_rejected(alice, bob, view) -> None:
    op = op_by(alice, view)
    body = bytearray(op.signed.body)
    body[-5] ^= 1
    data = Signed(bytes(body), op.signed.signatures).encode()
    decision = decide(data, view, Known(), reader_for(bob), NOW_MS)
    assert decision.verdict is Verdict.REJECTED
    assert decision.reason in ("bad_signature", "malformed")


def test_an_op_signed_in_another_context_is_rejected(alice, bob, view) -> None:
    data = resign(alice, op_by(alice, view).body, Context.HEAD)
    decision = decide(data, view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "bad_signature")


def test_an_op_reattributed_to_another_author_is_rejected(alice, bob, view) -> None:
    op = op_by(alice, view)
    body = replace(op.body, author=bob.device_id, version_vector={})
    data = body.encode()
    forged = Signed(
        data, (Signature(bob.device_id, op.signed.signatures[0].signature),)
    )
    decision = decide(forged.encode(), view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "bad_signature")


def test_an_op_moved_to_another_sequence_fails_its_associated_data(
    alice, bob, view
) -> None:
    # Even the author's own key cannot move a ciphertext to another sequence.
    op = op_by(alice, view, sequence=1)
    moved = replace(op.body, sequence=2, version_vector={alice.device_id: 1})
    known = Known()
    known.vector[alice.device_id] = 1
    decision = decide(resign(alice, moved), view, known, reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (
        Verdict.REJECTED,
        "decryption_failed",
    )


def test_an_op_for_another_mesh_is_rejected(alice, bob, view) -> None:
    other = FakeMembership([alice, bob])
    decision = decide(op_by(alice, other).data, view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "wrong_mesh")


def test_garbage_is_rejected_as_malformed(bob, view) -> None:
    for data in (b"", b"\x93\x01\x02", b"\xff" * 100, b"x" * 300_000):
        decision = decide(data, view, Known(), reader_for(bob), NOW_MS)
        assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "malformed")


def test_an_op_under_an_unknown_head_is_held(alice, bob, view) -> None:
    behind = view.copy_up_to(0)
    view.add(DeviceKeys.generate())
    decision = decide(op_by(alice, view).data, behind, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.HELD, "unknown_head")
    behind.catch_up(view)
    decision = decide(op_by(alice, view).data, behind, Known(), reader_for(bob), NOW_MS)
    assert decision.verdict is Verdict.ACCEPTED


def test_an_op_from_a_stranger_is_rejected(bob, view) -> None:
    stranger = DeviceKeys.generate()
    decision = decide(
        op_by(stranger, view).data, view, Known(), reader_for(bob), NOW_MS
    )
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "not_a_member")


def test_an_op_from_a_device_revoked_at_its_head_is_rejected(alice, bob, view) -> None:
    view.revoke(alice.device_id, cutoff=5)
    decision = decide(op_by(alice, view).data, view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "inactive_author")


def test_revoked_device_ops_after_cutoff_are_rejected_and_before_kept(
    alice, bob, view
) -> None:
    before = op_by(alice, view, sequence=1)
    after = op_by(alice, view, sequence=2)
    view.revoke(alice.device_id, cutoff=1)
    known = Known()
    assert decide(before.data, view, known, reader_for(bob), NOW_MS).verdict is (
        Verdict.ACCEPTED
    )
    known.add(before)
    decision = decide(after.data, view, known, reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "past_cutoff")


def test_an_op_from_a_clock_one_hour_ahead_is_held_not_trusted(
    alice, bob, view
) -> None:
    ahead = op_by(alice, view, wall_ms=NOW_MS + 3_600_000)
    decision = decide(ahead.data, view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.HELD, "clock_ahead")
    later = decide(ahead.data, view, Known(), reader_for(bob), NOW_MS + 3_600_000)
    assert later.verdict is Verdict.ACCEPTED


def test_a_sequence_gap_is_held_until_the_missing_op_arrives(alice, bob, view) -> None:
    second = op_by(alice, view, sequence=2)
    known = Known()
    decision = decide(second.data, view, known, reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.HELD, "missing_dependencies")
    known.add(op_by(alice, view, sequence=1))
    assert decide(second.data, view, known, reader_for(bob), NOW_MS).verdict is (
        Verdict.ACCEPTED
    )


def test_a_second_op_at_a_taken_sequence_is_rejected(alice, bob, view) -> None:
    known = Known()
    known.add(op_by(alice, view, sequence=1))
    decision = decide(op_by(alice, view).data, view, known, reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "op_equivocation")


def test_an_op_not_wrapped_to_this_device_is_held(alice, view) -> None:
    newcomer = DeviceKeys.generate()
    op = op_by(alice, view)
    view.add(newcomer)
    decision = decide(op.data, view, Known(), reader_for(newcomer), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.HELD, "not_a_recipient")


def test_an_op_with_a_bad_path_inside_is_rejected(alice, bob, view) -> None:
    op = make_op(
        alice,
        view,
        sequence=1,
        timestamp=Timestamp(NOW_MS, 0),
        version_vector={},
        payload=OpPayload("secrets/../x", False, "1", ""),
    )
    decision = decide(op.data, view, Known(), reader_for(bob), NOW_MS)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, "invalid_payload")


def test_op_ids_depend_on_the_exact_body(alice, view) -> None:
    first, second = op_by(alice, view), op_by(alice, view)
    assert first.op_id != second.op_id  # fresh nonce and payload key each time
