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
import functools
import inspect
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
        """The canonical bytes of this record.

        Raises:
            InvalidInput: an integer field does not fit in 64 bits, so no
                device could read it back.
        """
        try:
            packed: bytes = msgpack.packb(_to_wire(self), use_bin_type=True)
        except OverflowError as exc:
            raise InvalidInput(
                f"A number in this {self.TAG} is too large to be stored"
            ) from exc
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
        if _needs_depth_check(cls):
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
#
# Each field type is turned once into a decoder function (a plain function or
# a partial over the decoders of its parts), so decoding a record checks each
# value with one call instead of working out what its type hint means again.
# Records are decoded by a partial over their class, whose field decoders are
# built on first use: a record that contains itself compiles in finite time.

# A decoder checks one wire value against one type and returns the value to
# store. ``where`` (the enclosing value) and ``name`` (this value's place in
# it, such as ".kind" or "[2]") name the value in error messages; they are
# joined only when a message or a nested value needs them.
_Decoder = typing.Callable[[Any, str, str], Any]

_HINTS: dict[type, list[tuple[str, Any]]] = {}
_PLANS: dict[type, _RecordPlan] = {}
_DECODERS: dict[Any, _Decoder] = {}
# Whether decoding a record type may nest deeper than MAX_DEPTH (see
# :func:`_schema_depth`), so its input must be checked first.
_DEPTH_CHECKED: dict[type, bool] = {}


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


def _decoder(expected: Any) -> _Decoder:
    found = _DECODERS.get(expected)
    if found is None:
        found = _compile(expected)
        _DECODERS[expected] = found
    return found


def _compile(expected: Any) -> _Decoder:
    """The decoder of one field type (records are compiled lazily)."""
    origin = get_origin(expected)
    if isinstance(expected, type) and issubclass(expected, Record):
        return functools.partial(_record_from_wire, expected)
    if origin in (Union, types.UnionType):
        options = get_args(expected)
        decoders = tuple(_decoder(o) for o in options if o is not type(None))
        return functools.partial(_union_from_wire, type(None) in options, decoders)
    if origin is tuple:
        return _compile_tuple(get_args(expected))
    if origin is dict:
        key_type, value_type = get_args(expected)
        return functools.partial(
            _dict_from_wire, _decoder(key_type), _decoder(value_type)
        )
    return _SCALARS.get(expected) or functools.partial(_unsupported, expected)


def _compile_tuple(args: tuple[Any, ...]) -> _Decoder:
    if len(args) == 2 and args[1] is Ellipsis:
        return functools.partial(_variadic_from_wire, _decoder(args[0]))
    decoders = tuple(_decoder(arg) for arg in args)
    return functools.partial(_tuple_from_wire, decoders)


@dataclasses.dataclass(frozen=True)
class _RecordPlan:
    """How to decode one record type: its fields (name, decoder, place in
    messages) and whether its instances can be filled in without calling the
    generated ``__init__`` (which only stores each field, then calls
    ``__post_init__``; doing that directly halves the cost of a small record).
    """

    fields: tuple[tuple[str, _Decoder, str], ...]
    direct: bool


def _plan(cls: type) -> _RecordPlan:
    """The decoding plan of a record type, built once per type."""
    plan = _PLANS.get(cls)
    if plan is None:
        fields = tuple(
            (name, _decoder(hint), f".{name}") for name, hint in _fields(cls)
        )
        plan = _RecordPlan(fields, _fills_directly(cls))
        _PLANS[cls] = plan
    return plan


def _fills_directly(cls: type) -> bool:
    """Whether the dataclass ``__init__`` of ``cls`` takes exactly its fields,
    each by name, and the instances keep their fields in ``__dict__``."""
    names = [name for name, _ in _fields(cls)]
    parameters = list(inspect.signature(cls).parameters)
    init_only = any(not field.init for field in dataclasses.fields(cls))
    return parameters == names and not init_only and "__slots__" not in vars(cls)


def _construct(cls: type[R], plan: _RecordPlan, values: dict[str, Any]) -> R:
    """An instance of ``cls`` with ``values``, checked by its ``__post_init__``."""
    if not plan.direct:
        return cls(**values)
    record = object.__new__(cls)
    record.__dict__.update(values)
    check = getattr(record, "__post_init__", None)
    if check is not None:
        check()
    return record


def _needs_depth_check(cls: type) -> bool:
    """Whether a value of ``cls`` can nest deeper than MAX_DEPTH.

    The decoders walk a value only as deep as its type, and a value nested
    deeper than its type fails a type check on the way, so only a type that
    contains itself (or one deeper than MAX_DEPTH) needs the depth checked
    before decoding to keep the recursion off the interpreter's limit.
    """
    found = _DEPTH_CHECKED.get(cls)
    if found is None:
        depth = _schema_depth(cls, frozenset())
        found = depth is None or depth > MAX_DEPTH
        _DEPTH_CHECKED[cls] = found
    return found


def _schema_depth(expected: Any, open_records: frozenset[type]) -> int | None:
    """How deep (as :func:`_check_depth` counts) a valid value of a type can
    nest, or ``None`` if a record contains itself (no bound)."""
    origin = get_origin(expected)
    if isinstance(expected, type) and issubclass(expected, Record):
        if expected in open_records:
            return None
        inner = open_records | {expected}
        parts = [_schema_depth(hint, inner) for _, hint in _fields(expected)]
    elif origin in (Union, types.UnionType, tuple, dict):
        args = [a for a in get_args(expected) if a is not Ellipsis]
        if origin is dict:
            args = args[1:]  # keys are scalars
        parts = [_schema_depth(arg, open_records) for arg in args]
        if origin is Union or origin is types.UnionType:
            return None if None in parts else max(p or 0 for p in parts)
    else:
        return 1
    if None in parts:
        return None
    return 1 + max([1, *(p or 0 for p in parts)])


def _record_from_wire(cls: type[R], value: Any, where: str, name: str = "") -> R:
    where = where + name
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
    plan = _PLANS.get(cls) or _plan(cls)
    if len(items) != len(plan.fields):
        raise DecodeError(
            f"{where}: {cls.TAG} has {len(items)} fields, expected {len(plan.fields)}"
        )
    values = {
        field: decode(item, where, place)
        for (field, decode, place), item in zip(plan.fields, items, strict=True)
    }
    try:
        return _construct(cls, plan, values)
    except (ValueError, TypeError, InvalidInput) as exc:
        # A record that checks its own fields reports a bad one as malformed.
        raise DecodeError(f"{where}: {exc}") from exc


def _union_from_wire(
    optional: bool, options: tuple[_Decoder, ...], value: Any, where: str, name: str
) -> Any:
    if value is None and optional:
        return None
    for decode in options:
        try:
            return decode(value, where, name)
        except DecodeError:
            continue
    raise DecodeError(f"{where}{name}: value fits none of the allowed types")


def _variadic_from_wire(
    decode: _Decoder, value: Any, where: str, name: str
) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise DecodeError(f"{where}{name}: expected a list")
    where = where + name
    return tuple([decode(item, where, "[]") for item in value])


def _tuple_from_wire(
    decoders: tuple[_Decoder, ...], value: Any, where: str, name: str
) -> tuple[Any, ...]:
    where = where + name
    if not isinstance(value, list):
        raise DecodeError(f"{where}: expected a list")
    if len(decoders) != len(value):
        raise DecodeError(f"{where}: expected {len(decoders)} items")
    return tuple(
        decode(item, where, f"[{index}]")
        for index, (decode, item) in enumerate(zip(decoders, value, strict=True))
    )


def _dict_from_wire(
    decode_key: _Decoder, decode_value: _Decoder, value: Any, where: str, name: str
) -> dict[Any, Any]:
    where = where + name
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: expected a map")
    keys = list(value)
    if keys != sorted(keys):
        raise DecodeError(f"{where}: map keys are not in canonical order")
    return {
        decode_key(key, where, ""): decode_value(item, where, f".{key}")
        for key, item in value.items()
    }


def _int_from_wire(value: Any, where: str, name: str) -> int:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        raise DecodeError(f"{where}{name}: expected an integer")
    return value


def _exact_from_wire(kind: type, label: str, value: Any, where: str, name: str) -> Any:
    if type(value) is not kind:
        raise DecodeError(f"{where}{name}: expected {label}")
    return value


def _unsupported(expected: Any, value: Any, where: str, name: str) -> Any:
    if expected is Any:
        raise DecodeError(f"{where}{name}: untyped field")
    raise DecodeError(f"{where}{name}: unsupported field type {expected!r}")


_SCALARS: dict[Any, _Decoder] = {
    int: _int_from_wire,
    bool: functools.partial(_exact_from_wire, bool, "a boolean"),
    str: functools.partial(_exact_from_wire, str, "a string"),
    bytes: functools.partial(_exact_from_wire, bytes, "bytes"),
}


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
