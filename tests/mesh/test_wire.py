"""The mesh log's fast decoders accept exactly what the generic decoder
accepts: the same records from valid bytes, the same typed error from
damaged ones (flipped bytes, missing or extra fields, wrong types, unknown
versions, excess size)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshd.crypto.encoding import Record, Signature, Signed
from meshd.errors import DecodeError, TooLarge
from meshd.mesh import wire
from meshd.mesh.records import (
    DeviceRecord,
    EntryBody,
    GenesisFacts,
    KeyRotation,
    Proposal,
    Revocation,
    SealedNote,
    ShareSlot,
    VaultGeneration,
)
from meshd.mesh.scenario import build
from meshd.mesh.state import open_proposal
from tests.crypto.strategies import records_strategy

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Decoder = Callable[[bytes], Record]

# Each fast decoder beside the generic one it stands in for.
DECODERS: dict[type[Record], Decoder] = {
    Signed: wire.decode_signed,
    EntryBody: wire.decode_entry,
    Proposal: wire.decode_proposal,
}


def _real_encodings() -> dict[type[Record], list[bytes]]:
    """Encodings of every entry kind, from a real mesh."""
    mesh = build(
        "genesis A B C t=2; add D by A,B; revoke C by A,D cutoff=7;"
        "recover F replacing D by A,B; threshold 3 by A,B,F; rotate A; vault by B"
    )
    entries = mesh.entries()
    proposals = [
        open_proposal(body.proposal)[0]
        for body in (EntryBody.decode(entry.body) for entry in entries)
        if body.proposal
    ]
    return {
        Signed: [signed.encode() for signed in [*entries, *proposals]],
        EntryBody: [entry.body for entry in entries],
        Proposal: [signed.body for signed in proposals],
    }


REAL = _real_encodings()


def outcome(decode: Callable[[bytes], Any], data: bytes) -> tuple[str, Any]:
    """What a decoder makes of ``data``: the record, or the type of its error."""
    try:
        return "accepted", decode(data)
    except DecodeError as exc:
        return "refused", type(exc)


def assert_same_outcome(cls: type[Record], data: bytes) -> tuple[str, Any]:
    generic = outcome(cls.decode, data)
    fast = outcome(DECODERS[cls], data)
    assert fast == generic
    if fast[0] == "accepted":
        assert type(fast[1]) is cls
    return fast


# -- Damage at the level of the wire values ------------------------------------------


def places(value: Any, path: tuple[int | str, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value inside a decoded msgpack value, itself included."""
    found = [path]
    if isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(places(item, (*path, index)))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(places(item, (*path, key)))
    return found


def changed(value: Any, path: tuple[Any, ...], change: Callable[[Any], Any]) -> Any:
    """A copy of ``value`` with the part at ``path`` replaced by ``change(part)``."""
    if not path:
        return change(value)
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copy: Any = list(value)
    else:
        copy = dict(value)
    copy[head] = changed(value[head], rest, change)
    return copy


WIRE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def damage(part: Any, how: str, other: Any) -> Any:
    """One kind of damage to one value."""
    if how == "replace":
        return other
    if how == "bump" and type(part) is int:
        return part + 1 if part < (1 << 63) else part - 1
    if how == "retype" and type(part) is int:
        return part == 1 if part in (0, 1) else str(part)
    if how == "drop" and isinstance(part, list) and part:
        return part[:-1]
    if how == "drop-first" and isinstance(part, list) and part:
        return part[1:]
    if how == "extra" and isinstance(part, list):
        return [*part, other]
    if how == "edit" and isinstance(part, str):
        return part + "x"
    if how == "edit" and isinstance(part, bytes):
        return part[1:] if part else b"x"
    return other


HOW = st.sampled_from(
    ["replace", "bump", "retype", "drop", "drop-first", "extra", "edit"]
)


@st.composite
def damaged_encodings(draw: st.DrawFn, cls: type[Record]) -> bytes:
    """A valid encoding of ``cls`` with one value inside it damaged."""
    original = draw(st.sampled_from(REAL[cls]))
    value = msgpack.unpackb(original, raw=False)
    path = draw(st.sampled_from(places(value)))
    how = draw(HOW)
    other = draw(WIRE_VALUES)
    packed: bytes = msgpack.packb(
        changed(value, path, lambda part: damage(part, how, other)),
        use_bin_type=True,
    )
    return packed


@st.composite
def flipped_bytes(draw: st.DrawFn, cls: type[Record]) -> bytes:
    """A valid encoding of ``cls`` with a few bytes changed."""
    data = bytearray(draw(st.sampled_from(REAL[cls])))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[index] ^= draw(st.integers(min_value=1, max_value=255))
    return bytes(data)


KINDS = st.sampled_from(sorted(DECODERS, key=lambda cls: cls.TAG))


# -- Tests -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(DECODERS, key=lambda cls: cls.TAG))
def test_every_real_entry_decodes_to_the_same_record(cls: type[Record]) -> None:
    for data in REAL[cls]:
        assert assert_same_outcome(cls, data)[0] == "accepted"


@FUZZ
@given(st.data())
def test_drawn_records_decode_to_the_same_record(data: st.DataObject) -> None:
    cls = data.draw(KINDS)
    record = data.draw(records_strategy(cls))

    assert assert_same_outcome(cls, record.encode()) == ("accepted", record)


@FUZZ
@given(st.data())
def test_damaged_values_are_refused_alike(data: st.DataObject) -> None:
    cls = data.draw(KINDS)

    assert_same_outcome(cls, data.draw(damaged_encodings(cls)))


@FUZZ
@given(st.data())
def test_flipped_bytes_are_refused_alike(data: st.DataObject) -> None:
    cls = data.draw(KINDS)

    assert_same_outcome(cls, data.draw(flipped_bytes(cls)))


@pytest.mark.parametrize("cls", sorted(DECODERS, key=lambda cls: cls.TAG))
def test_an_object_over_its_size_limit_is_too_large_for_both(
    cls: type[Record],
) -> None:
    oversize = REAL[cls][0] + bytes(cls.MAX_SIZE)

    assert assert_same_outcome(cls, oversize) == ("refused", TooLarge)


@pytest.mark.parametrize("cls", sorted(DECODERS, key=lambda cls: cls.TAG))
def test_input_that_is_not_bytes_is_refused_by_both(cls: type[Record]) -> None:
    for value in ("text", None, 7, [1, 2]):
        assert_same_outcome(cls, value)  # type: ignore[arg-type]


def test_records_filled_without_their_constructor_have_no_checks_to_skip() -> None:
    # The fast decoders store fields directly except for DeviceRecord, which
    # checks its id; a check added to any other record must be called there.
    filled = [
        Signed,
        Signature,
        EntryBody,
        GenesisFacts,
        KeyRotation,
        VaultGeneration,
        ShareSlot,
        SealedNote,
        Proposal,
        Revocation,
    ]

    assert [cls for cls in filled if "__post_init__" in vars(cls)] == []
    assert "__post_init__" in vars(DeviceRecord)
