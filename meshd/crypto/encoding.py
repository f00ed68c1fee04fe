"""Canonical encoding: msgpack arrays with a fixed field order.

Wire format (do not reorder)
----------------------------
A record is a msgpack array ``[tag, version, field_1, ..., field_n]`` with the
fields in the order the dataclass declares them. Nested records are encoded
the same way. Maps have string keys in sorted order. Integers must fit in 64
bits. The same value always encodes to the same bytes, but nothing relies on
that to verify: signed objects keep the exact bytes that were signed
(:class:`Signed`), and verification runs over those bytes.

Decoding is strict: a wrong tag, an unknown version, a missing or extra field,
a value of the wrong type, an unsorted or duplicate map key, or an object past
its size limit each raise a typed :class:`~meshd.errors.DecodeError`.

To define a record::

    @dataclass(frozen=True)
    class Head(Record):
        TAG: ClassVar[str] = "head"
        VERSION: ClassVar[int] = 1
        sequence: int
        device: str
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

import msgpack

from meshd.errors import DecodeError, InvalidInput, TooLarge, UnknownVersion

DEFAULT_MAX_SIZE = 256 * 1024
HARD_MAX_SIZE = 64 * 1024 * 1024
# Lists and maps inside one object: records nest a few levels; each level costs
# several stack frames in the field decoders, so this stays far below the
# interpreter's recursion limit.
MAX_DEPTH = 64
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1

R = TypeVar("R", bound="Record")


class Record:
    """Base of every encoded object. Subclasses are frozen dataclasses."""

    TAG: ClassVar[str]
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = DEFAULT_MAX_SIZE

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(_to_wire(self), use_bin_type=True)
        return packed

    @classmethod
    def decode(cls: type[R], data: bytes, max_size: int | None = None) -> R:
        """Decode ``data`` as this record type.

        Raises:
            TooLarge: ``data`` is longer than the record's limit.
            UnknownVersion: the tag matches but the version is not known.
            DecodeError: anything else that does not fit the schema.
        """
        limit = max_size if max_size is not None else cls.MAX_SIZE
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("Expected bytes")
        if len(data) > limit:
            raise TooLarge(
                f"A {cls.TAG} object of {len(data)} bytes exceeds {limit}",
                size=len(data),
                limit=limit,
            )
        value = unpack_canonical(bytes(data), limit)
        _check_depth(value)
        return _record_from_wire(cls, value, cls.TAG)


def _check_depth(value: Any) -> None:
    """Raises:
    DecodeError: lists and maps nest deeper than any record needs, which
        would otherwise exhaust the stack of the recursive field decoders.
    """
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise DecodeError(f"The object nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())


def unpack_canonical(data: bytes, limit: int) -> Any:
    """Plain msgpack values of canonical bytes: maps with keys of one type,
    sorted and unique; no extension types; no string, bytes, array or map
    longer than ``limit``. The total size is the caller's to check.

    Raises:
        DecodeError: not canonical msgpack.
    """
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            object_pairs_hook=_canonical_map,
            max_bin_len=limit,
            max_str_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=0,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many unrelated types
        raise DecodeError("The bytes are not valid msgpack") from exc


def _canonical_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """Build a map only if its keys are of one type, sorted and unique.

    msgpack itself keeps the last of duplicate keys and cannot order str
    against bytes, so both would otherwise slip through or crash.
    """
    keys = [key for key, _ in pairs]
    if len({type(key) for key in keys}) > 1:
        raise DecodeError("Map keys are of mixed types")
    if any(left >= right for left, right in itertools.pairwise(keys)):
        raise DecodeError("Map keys are not sorted and unique")
    return dict(pairs)


def peek_tag(data: bytes) -> tuple[str, int]:
    """The tag and version of an encoded record, without decoding its fields."""
    value = unpack_canonical(data, min(len(data), HARD_MAX_SIZE))
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not isinstance(value[0], str)
        or type(value[1]) is not int
    ):
        raise DecodeError("Not a record")
    return value[0], value[1]


# -- Schema -----------------------------------------------------------------------

_HINTS: dict[type, list[tuple[str, Any]]] = {}


def _fields(cls: type) -> list[tuple[str, Any]]:
    cached = _HINTS.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = [(field.name, hints[field.name]) for field in dataclasses.fields(cls)]
        _HINTS[cls] = cached
    return cached


def _to_wire(value: Any) -> Any:
    if isinstance(value, Record):
        fields = [_to_wire(getattr(value, name)) for name, _ in _fields(type(value))]
        return [value.TAG, value.VERSION, *fields]
    if isinstance(value, tuple | list):
        return [_to_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_wire(value[key]) for key in sorted(value)}
    return value


def _from_wire(expected: Any, value: Any, where: str) -> Any:
    origin = get_origin(expected)
    if isinstance(expected, type) and issubclass(expected, Record):
        return _record_from_wire(expected, value, where)
    if origin in (Union, types.UnionType):
        return _union_from_wire(expected, value, where)
    if origin is tuple:
        return _tuple_from_wire(expected, value, where)
    if origin is dict:
        return _dict_from_wire(expected, value, where)
    return _scalar_from_wire(expected, value, where)


def _record_from_wire(cls: type[R], value: Any, where: str) -> R:
    if not isinstance(value, list) or len(value) < 2:
        raise DecodeError(f"{where}: expected a {cls.TAG} record")
    tag, version, *items = value
    if tag != cls.TAG:
        raise DecodeError(f"{where}: expected a {cls.TAG} record, found {tag!r}")
    if type(version) is not int:
        raise DecodeError(f"{where}: {cls.TAG} version is not an integer")
    if version != cls.VERSION:
        raise UnknownVersion(
            f"{where}: {cls.TAG} version {version!r} is not known", version=str(version)
        )
    fields = _fields(cls)
    if len(items) != len(fields):
        raise DecodeError(
            f"{where}: {cls.TAG} has {len(items)} fields, expected {len(fields)}"
        )
    kwargs = {
        name: _from_wire(hint, item, f"{where}.{name}")
        for (name, hint), item in zip(fields, items, strict=True)
    }
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, InvalidInput) as exc:
        # A record that checks its own fields reports a bad one as malformed.
        raise DecodeError(f"{where}: {exc}") from exc


def _union_from_wire(expected: Any, value: Any, where: str) -> Any:
    options = get_args(expected)
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _from_wire(option, value, where)
        except DecodeError as exc:
            errors.append(exc)
    raise DecodeError(f"{where}: value fits none of the allowed types")


def _tuple_from_wire(expected: Any, value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise DecodeError(f"{where}: expected a list")
    args = get_args(expected)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_from_wire(args[0], item, f"{where}[]") for item in value)
    if len(args) != len(value):
        raise DecodeError(f"{where}: expected {len(args)} items")
    return tuple(
        _from_wire(arg, item, f"{where}[{index}]")
        for index, (arg, item) in enumerate(zip(args, value, strict=True))
    )


def _dict_from_wire(expected: Any, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: expected a map")
    key_type, value_type = get_args(expected)
    keys = list(value)
    if keys != sorted(keys):
        raise DecodeError(f"{where}: map keys are not in canonical order")
    return {
        _scalar_from_wire(key_type, key, where): _from_wire(
            value_type, item, f"{where}.{key}"
        )
        for key, item in value.items()
    }


def _scalar_from_wire(expected: Any, value: Any, where: str) -> Any:
    if expected is Any:
        raise DecodeError(f"{where}: untyped field")
    if expected is int:
        if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
            raise DecodeError(f"{where}: expected an integer")
        return value
    if expected is bool:
        if type(value) is not bool:
            raise DecodeError(f"{where}: expected a boolean")
        return value
    if expected is str:
        if type(value) is not str:
            raise DecodeError(f"{where}: expected a string")
        return value
    if expected is bytes:
        if type(value) is not bytes:
            raise DecodeError(f"{where}: expected bytes")
        return value
    raise DecodeError(f"{where}: unsupported field type {expected!r}")


# -- Signed objects ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Signature(Record):
    """One device's signature over a :class:`Signed` body."""

    TAG: ClassVar[str] = "sig"
    VERSION: ClassVar[int] = 1
    signer: str
    signature: bytes


@dataclasses.dataclass(frozen=True)
class Signed(Record):
    """The exact bytes that were signed, and the signatures over them.

    ``body`` is an encoded record and is never re-encoded: verifiers check the
    signatures over ``body`` as stored, then decode it.
    """

    TAG: ClassVar[str] = "signed"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 8 * 1024 * 1024
    body: bytes
    signatures: tuple[Signature, ...]

    def open(self, cls: type[R], max_size: int | None = None) -> R:
        """Decode the body as ``cls`` (signatures are checked by the caller)."""
        return cls.decode(self.body, max_size)

    def signers(self) -> list[str]:
        return [entry.signer for entry in self.signatures]
