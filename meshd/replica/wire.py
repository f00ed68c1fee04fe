"""Fast, strict decoding of the replica's hot records.

Ops arrive by the thousand and path states are read at every start-up, so
these few records skip the generic schema walk of
:mod:`meshd.crypto.encoding` and are checked field by field here instead.
The bytes are the same canonical msgpack: anything the generic decoder
refuses (wrong tag or version, missing or extra fields, wrong types,
unsorted or repeated map keys, excess size or nesting) is refused here with
the same typed errors, and what these functions encode is exactly what
``Record.encode`` would produce.
"""

from __future__ import annotations

from typing import Any

import msgpack

from meshd.crypto.encoding import unpack_canonical
from meshd.errors import DecodeError, TooLarge, UnknownVersion

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1


def unpack(data: bytes, limit: int, what: str) -> Any:
    """Raises:
    TooLarge: longer than ``limit``.
    DecodeError: not msgpack.
    """
    if not isinstance(data, bytes):
        raise DecodeError("Expected bytes")
    if len(data) > limit:
        raise TooLarge(f"A {what} of {len(data)} bytes exceeds {limit}", limit=limit)
    value = unpack_canonical(data, limit)
    _check_string_keys(value)
    return value


def _check_string_keys(value: Any) -> None:
    # The replica's records only have maps with text keys; the generic
    # decoder allows bytes keys too, so narrow it here (without recursion).
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if any(type(key) is not str for key in item):
                raise DecodeError("Map keys must be strings")
            pending.extend(item.values())


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def fields(value: Any, tag: str, version: int, count: int) -> list[Any]:
    """The fields of a wire record ``[tag, version, *fields]``.

    Raises:
        UnknownVersion: right tag, unknown version.
        DecodeError: anything else.
    """
    if not isinstance(value, list) or len(value) < 2 or value[0] != tag:
        raise DecodeError(f"Expected a {tag} record")
    if type(value[1]) is not int or value[1] != version:
        raise UnknownVersion(f"{tag} version {value[1]!r} is not known")
    if len(value) != count + 2:
        raise DecodeError(f"A {tag} record has {count} fields")
    return value[2:]


def text(value: Any) -> str:
    if type(value) is not str:
        raise DecodeError("Expected a string")
    return value


def binary(value: Any) -> bytes:
    if type(value) is not bytes:
        raise DecodeError("Expected bytes")
    return value


def integer(value: Any) -> int:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        raise DecodeError("Expected an integer")
    return value


def boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise DecodeError("Expected a boolean")
    return value


def integer_map(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise DecodeError("Expected a map")
    return {key: integer(item) for key, item in value.items()}


def binary_map(value: Any) -> dict[str, bytes]:
    if not isinstance(value, dict):
        raise DecodeError("Expected a map")
    return {key: binary(item) for key, item in value.items()}


def items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError("Expected a list")
    return value
