"""Hypothesis strategies built from the type hints of encoded records.

``records_strategy(cls)`` draws instances of any :class:`Record` subclass by
reading its dataclass fields, so a record added anywhere in meshd is covered
by the round-trip tests without writing a strategy by hand. A record whose
constructor validates its fields (a key must be 32 bytes, say) can register a
strategy for such a field with :func:`register_field`, or for the whole
record with :func:`register_record`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

from hypothesis import strategies as st

import meshd
from meshd.crypto.encoding import Record
from meshd.errors import MeshError

# The wire format carries 64-bit integers: signed down to -2**63, unsigned up.
INTEGERS = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    int: INTEGERS,
    bool: st.booleans(),
    str: st.text(max_size=40),
    bytes: st.binary(max_size=80),
}

_FIELD_OVERRIDES: dict[tuple[type, str], st.SearchStrategy[Any]] = {}
_RECORD_OVERRIDES: dict[type, st.SearchStrategy[Any]] = {}


def _device_records(cls: Any) -> st.SearchStrategy[Any]:
    # A device id is derived from the signing key, so it cannot be drawn apart.
    from meshd.crypto.suite import device_id_from_key

    def build(signing: bytes, encryption: bytes, kind: str) -> Any:
        return cls(device_id_from_key(signing), signing, encryption, kind)

    keys = st.binary(min_size=32, max_size=32)
    return st.builds(build, keys, keys, SCALARS[str])


# Records whose fields constrain each other, keyed by "module.QualifiedName" so
# this file need not import the modules that define them.
_NAMED_RECORD_BUILDERS: dict[str, Callable[[Any], st.SearchStrategy[Any]]] = {
    "meshd.mesh.records.DeviceRecord": _device_records,
}


def register_field(
    cls: type[Record], name: str, strategy: st.SearchStrategy[Any]
) -> None:
    """Draw field ``name`` of ``cls`` from ``strategy`` instead of its type."""
    _FIELD_OVERRIDES[(cls, name)] = strategy


def register_record(cls: type[Record], strategy: st.SearchStrategy[Any]) -> None:
    """Draw whole instances of ``cls`` from ``strategy``."""
    _RECORD_OVERRIDES[cls] = strategy


def value_strategy(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type the canonical encoding supports.

    Raises:
        TypeError: the type is one the encoding cannot carry, so a record
            using it could never be decoded either.
    """
    origin = get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, Record):
        return st.deferred(lambda: records_strategy(hint))
    if origin in (Union, types.UnionType):
        return st.one_of(*(value_strategy(option) for option in get_args(hint)))
    if hint is type(None):
        return st.none()
    if origin is tuple:
        return _tuple_strategy(hint)
    if origin is dict:
        key_type, value_type = get_args(hint)
        return st.dictionaries(
            value_strategy(key_type), value_strategy(value_type), max_size=4
        )
    if hint in SCALARS:
        return SCALARS[hint]
    raise TypeError(f"The canonical encoding cannot carry {hint!r}")


def _tuple_strategy(hint: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    args = get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return st.lists(value_strategy(args[0]), max_size=3).map(tuple)
    return st.tuples(*(value_strategy(arg) for arg in args))


def records_strategy(cls: type[Record]) -> st.SearchStrategy[Any]:
    """Instances of ``cls``, drawn field by field from its type hints."""
    if cls in _RECORD_OVERRIDES:
        return _RECORD_OVERRIDES[cls]
    builder = _NAMED_RECORD_BUILDERS.get(f"{cls.__module__}.{cls.__qualname__}")
    if builder is not None:
        return builder(cls)
    hints = typing.get_type_hints(cls)
    fields = {
        field.name: _FIELD_OVERRIDES.get((cls, field.name))
        or value_strategy(hints[field.name])
        for field in dataclasses.fields(cls)  # type: ignore[arg-type]
    }
    return st.fixed_dictionaries(fields).flatmap(lambda values: _build(cls, values))


def _build(cls: type[Record], values: dict[str, Any]) -> st.SearchStrategy[Any]:
    # A record that validates its fields rejects some draws: skip those draws
    # (too many skips fail the health check, a sign it needs register_field).
    try:
        return st.just(cls(**values))
    except (ValueError, TypeError, MeshError):
        return st.nothing()


def import_all_meshd_modules() -> None:
    """Import every module of meshd so every Record subclass is defined."""
    for module in pkgutil.walk_packages(meshd.__path__, prefix="meshd."):
        # A __main__ module runs a program when imported; it defines no records.
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)


def concrete_record_classes() -> list[type[Record]]:
    """Every Record subclass of meshd that is a dataclass with a tag."""
    found: list[type[Record]] = []
    pending = list(Record.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        # Records that tests define for themselves are not part of the format.
        in_meshd = cls.__module__.startswith("meshd.")
        if in_meshd and dataclasses.is_dataclass(cls) and hasattr(cls, "TAG"):
            found.append(cls)
    return sorted(set(found), key=lambda cls: (cls.__module__, cls.__qualname__))
