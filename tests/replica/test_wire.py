"""The fast decoders accept and refuse exactly what the generic ones do."""

from __future__ import annotations

import msgpack
import pytest

from meshd.crypto.encoding import Record, Signed
from meshd.crypto.suite import DeviceKeys
from meshd.errors import DecodeError, TooLarge, UnknownVersion
from meshd.replica.clock import Timestamp
from meshd.replica.merge import OpSummary, PathState
from meshd.replica.op import OpBody, OpPayload, decode_op, decode_payload, make_op

from .membership_fake import FakeMembership


def summary(op_id: str) -> OpSummary:
    return OpSummary(op_id, "dev", 3, 1000, 2, False, '"x"', "")


def test_path_state_bytes_equal_the_generic_record_encoding() -> None:
    state = PathState("profile/name", summary("b"), (summary("a"), summary("b")))
    assert state.encode() == Record.encode(state)
    assert PathState.decode(Record.encode(state)) == state


def test_op_decoding_matches_the_generic_decoder() -> None:
    keys = DeviceKeys.generate()
    view = FakeMembership([keys])
    op = make_op(
        keys,
        view,
        sequence=2,
        timestamp=Timestamp(5, 1),
        version_vector={keys.device_id: 1},
        payload=OpPayload("profile/name", False, '"A"', ""),
    )
    decoded = decode_op(op.data)
    assert decoded.body == OpBody.decode(Signed.decode(op.data).body)
    assert decoded.signed == Signed.decode(op.data)
    payload = OpPayload("profile/name", True, "", "x")
    assert decode_payload(payload.encode()) == payload


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (["path-state", 2, "p", [], []], UnknownVersion),
        (["path-state", 1, "p", []], DecodeError),
        (["path-state", 1, 7, [], []], DecodeError),
        (["other", 1, "p", [], []], DecodeError),
    ],
)
def test_malformed_path_states_are_refused(value: list, error: type) -> None:
    with pytest.raises(error):
        PathState.decode(msgpack.packb(value))


def test_unsorted_or_repeated_map_keys_and_oversize_ops_are_refused() -> None:
    unsorted = msgpack.packb(["signed", 1, msgpack.packb({"b": 1, "a": 2}), []])
    with pytest.raises(DecodeError):
        decode_op(unsorted)
    with pytest.raises(TooLarge):
        decode_op(b"\x00" * (300 * 1024))
