"""The canonical encoding: round trips and a strict, crash-free decoder."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, ClassVar

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshd.crypto.encoding import (
    HARD_MAX_SIZE,
    Record,
    Signature,
    Signed,
    peek_tag,
)
from meshd.errors import DecodeError, InvalidInput, TooLarge, UnknownVersion
from meshd.keystore import DeviceSecrets, KeyPairSecret, KeystoreFile

from .strategies import (
    concrete_record_classes,
    import_all_meshd_modules,
    records_strategy,
)

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclasses.dataclass(frozen=True)
class Sample(Record):
    """A record using every shape the schema supports, to reach every decoder path."""

    TAG: ClassVar[str] = "test-sample"
    VERSION: ClassVar[int] = 3
    count: int
    flag: bool
    name: str
    blob: bytes
    labels: dict[str, int]
    maybe: str | None
    either: int | bytes
    pair: tuple[str, int]
    items: tuple[Signature, ...]


def sample(**changes: Any) -> Sample:
    base = Sample(
        count=7,
        flag=True,
        name="laptop",
        blob=b"\x00\x01",
        labels={"a": 1, "b": 2},
        maybe=None,
        either=b"x",
        pair=("p", 1),
        items=(Signature("dev", b"s" * 64),),
    )
    return dataclasses.replace(base, **changes)


def wire(record: Record) -> list[object]:
    """The decoded msgpack structure of a record, to tamper with."""
    return msgpack.unpackb(record.encode(), raw=False)  # type: ignore[no-any-return]


def pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


# -- Round trips ------------------------------------------------------------------


def test_every_record_in_meshd_is_discovered() -> None:
    import_all_meshd_modules()
    found = set(concrete_record_classes())

    assert {Signature, Signed, KeyPairSecret, DeviceSecrets, KeystoreFile} <= found


@FUZZ
@given(st.data())
def test_every_record_in_meshd_round_trips(data: st.DataObject) -> None:
    import_all_meshd_modules()

    for cls in concrete_record_classes():
        record = data.draw(records_strategy(cls), label=cls.__qualname__)
        encoded = record.encode()

        assert cls.decode(encoded, max_size=HARD_MAX_SIZE) == record
        assert cls.decode(encoded, max_size=HARD_MAX_SIZE).encode() == encoded
        assert peek_tag(encoded) == (cls.TAG, cls.VERSION)


@FUZZ
@given(records_strategy(Sample))
def test_sample_record_with_every_field_shape_round_trips(record: Sample) -> None:
    assert Sample.decode(record.encode()) == record


def test_equal_values_encode_to_equal_bytes_whatever_the_dict_order() -> None:
    forward = sample(labels={"a": 1, "b": 2, "c": 3})
    backward = sample(labels={"c": 3, "b": 2, "a": 1})

    assert forward.encode() == backward.encode()


def test_signed_keeps_the_exact_body_bytes() -> None:
    body = sample().encode()
    signed = Signed(body, (Signature("dev", b"s" * 64),))

    decoded = Signed.decode(signed.encode())

    assert decoded.body == body
    assert decoded.open(Sample) == sample()
    assert decoded.signers() == ["dev"]


# -- Hostile input ------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    import_all_meshd_modules()
    classes: list[type[Record]] = [Sample, *concrete_record_classes()]
    for cls in classes:
        with contextlib.suppress(DecodeError):
            cls.decode(data)


@FUZZ
@given(records_strategy(Sample), st.data())
def test_damaged_encodings_raise_only_decode_errors(
    record: Sample, data: st.DataObject
) -> None:
    encoded = bytearray(record.encode())
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))

    for candidate in (bytes(encoded), bytes(encoded[:cut])):
        with contextlib.suppress(DecodeError):
            Sample.decode(candidate)


_MSGPACK_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 64) - 1),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
)
_MSGPACK_VALUES = st.recursive(
    _MSGPACK_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=3), st.binary(max_size=3)), inner, max_size=4
        ),
    ),
    max_leaves=20,
)


@FUZZ
@given(st.lists(_MSGPACK_VALUES, max_size=9))
def test_well_formed_msgpack_of_the_wrong_shape_raises_only_decode_errors(
    fields: list[object],
) -> None:
    # Right tag and version, so the field decoders see hostile values.
    data = pack([Sample.TAG, Sample.VERSION, *fields])

    with contextlib.suppress(DecodeError):
        Sample.decode(data)


def test_unknown_version_is_reported_as_such() -> None:
    fields = wire(sample())
    fields[1] = Sample.VERSION + 1

    with pytest.raises(UnknownVersion):
        Sample.decode(pack(fields))


@pytest.mark.parametrize("version", [True, 3.0, "3", None])
def test_a_version_that_is_not_an_integer_is_rejected(version: object) -> None:
    fields = wire(sample())
    fields[1] = version

    with pytest.raises(DecodeError):
        Sample.decode(pack(fields))


def test_an_extra_field_is_rejected() -> None:
    with pytest.raises(DecodeError, match="fields"):
        Sample.decode(pack([*wire(sample()), 0]))


def test_a_missing_field_is_rejected() -> None:
    with pytest.raises(DecodeError, match="fields"):
        Sample.decode(pack(wire(sample())[:-1]))


def test_a_record_of_another_kind_is_rejected() -> None:
    signature = Signature("dev", b"s" * 64).encode()

    with pytest.raises(DecodeError, match="expected a test-sample"):
        Sample.decode(signature)


def test_a_nested_record_with_the_wrong_tag_is_rejected() -> None:
    fields = wire(sample())
    fields[-1] = [["not-sig", 1, "dev", b"s"]]

    with pytest.raises(DecodeError, match="not-sig"):
        Sample.decode(pack(fields))


def test_an_object_over_its_size_limit_is_too_large() -> None:
    record = sample(blob=bytes(Sample.MAX_SIZE))

    with pytest.raises(TooLarge):
        Sample.decode(record.encode())
    with pytest.raises(TooLarge):
        Sample.decode(sample().encode(), max_size=10)


def test_a_bytes_field_longer_than_the_limit_is_rejected_inside_the_object() -> None:
    # A length prefix claiming more than the limit must not be believed.
    data = bytearray(pack([Sample.TAG, Sample.VERSION, 1]))
    data[0] = 0x9B  # an array of 11 items, the last one announcing 4 GiB
    data += b"\xc6\xff\xff\xff\xf0"

    with pytest.raises(DecodeError):
        Sample.decode(bytes(data))


def test_unsorted_map_keys_are_rejected() -> None:
    fields = wire(sample())
    encoded = pack(fields).replace(pack({"a": 1, "b": 2}), b"\x82\xa1b\x02\xa1a\x01")

    with pytest.raises(DecodeError):
        Sample.decode(encoded)


def test_duplicate_map_keys_are_rejected() -> None:
    encoded = pack(wire(sample())).replace(
        pack({"a": 1, "b": 2}), b"\x82\xa1a\x01\xa1a\x02"
    )

    with pytest.raises(DecodeError):
        Sample.decode(encoded)


def test_map_keys_of_mixed_types_are_rejected_without_crashing() -> None:
    encoded = pack(wire(sample())).replace(
        pack({"a": 1, "b": 2}), b"\x82\xa1a\x01\xc4\x01b\x02"
    )

    with pytest.raises(DecodeError):
        Sample.decode(encoded)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (2, True),  # a boolean where an integer belongs
        (3, 1),  # an integer where a boolean belongs
        (3, 0),
        (4, b"laptop"),  # bytes where text belongs
        (5, "blob"),  # text where bytes belong
        (2, 7.0),  # a float where an integer belongs
        (6, {"a": True}),  # a boolean where a map value integer belongs
        (8, True),  # a boolean where int | bytes belongs
        (9, ["p", 1, 2]),  # a tuple of the wrong length
    ],
)
def test_values_of_the_wrong_type_are_rejected(index: int, value: object) -> None:
    fields = wire(sample())
    fields[index] = value

    with pytest.raises(DecodeError):
        Sample.decode(pack(fields))


def test_deeply_nested_input_is_rejected_without_crashing() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"

    with pytest.raises(DecodeError):
        Sample.decode(deep)
    with pytest.raises(DecodeError):
        peek_tag(deep)


def test_deeply_nested_records_are_rejected_without_crashing() -> None:
    # A signature list whose item is a list nested far below any real shape.
    fields = wire(sample())
    nested: object = "dev"
    for _ in range(900):
        nested = [nested]
    fields[-1] = [nested]

    with pytest.raises(DecodeError):
        Sample.decode(pack(fields))


def test_non_bytes_input_is_rejected() -> None:
    with pytest.raises(DecodeError):
        Sample.decode("text")  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class CheckedKey(Record):
    """A record that validates a field the way product records do."""

    TAG: ClassVar[str] = "test-checked-key"
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise InvalidInput("A key must be 32 bytes")


def test_a_record_that_rejects_its_own_fields_is_reported_as_malformed() -> None:
    with pytest.raises(DecodeError):
        CheckedKey.decode(pack([CheckedKey.TAG, 1, b"short"]))
    assert CheckedKey.decode(CheckedKey(bytes(32)).encode()) == CheckedKey(bytes(32))


@dataclasses.dataclass(frozen=True)
class Tree(Record):
    """A record that contains itself, as a history or a folder tree might."""

    TAG: ClassVar[str] = "test-tree"
    children: tuple[Tree, ...]


def test_a_self_nesting_record_nested_too_deep_is_rejected_without_crashing() -> None:
    # Shallow enough for msgpack (two arrays a level), too deep for the stack.
    level = pack(Tree.TAG)
    data = (b"\x93" + level + b"\x01\x91") * 450 + b"\x93" + level + b"\x01\x90"

    with pytest.raises(DecodeError):
        Tree.decode(data)


def test_a_self_nesting_record_of_modest_depth_round_trips() -> None:
    tree = Tree(())
    for _ in range(20):
        tree = Tree((tree, Tree(())))

    assert Tree.decode(tree.encode()) == tree
