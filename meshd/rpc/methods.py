"""Method declarations: parameters, binding and the OpenRPC document.

A :class:`Method` declares everything a client needs to know (its params
with their JSON types, a one-line summary, what the result holds) next to
the handler that serves it. The server binds incoming params against the
declaration before the handler runs, so handlers receive checked Python
values as keyword arguments, and ``rpc.discover`` builds its OpenRPC
document from the same declarations, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from meshd.errors import all_error_classes
from meshd.rpc import codec

# OpenRPC specification version the discovery document follows.
OPENRPC_VERSION = "1.2.6"

JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: (
        isinstance(value, int | float) and not isinstance(value, bool)
    ),
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "null": lambda value: value is None,
}

_MISSING: Any = object()

Handler = Callable[..., Awaitable[Any]]


class InvalidParams(Exception):
    """Params do not fit the declaration; ``data`` names the bad param."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = {"reason": "invalid_params", **data}


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``types`` lists the JSON types accepted (``("string", "null")`` for an
    optional string). A param without ``required`` takes ``default``.
    """

    name: str
    types: tuple[str, ...]
    required: bool = True
    default: Any = None
    description: str = ""

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.types if kind not in JSON_TYPES]
        if unknown:
            raise ValueError(f"Param {self.name}: unknown JSON type {unknown[0]}")

    def check(self, value: Any) -> Any:
        """Raises:
        InvalidParams: the value has none of the declared JSON types.
        """
        if any(JSON_TYPES[kind](value) for kind in self.types):
            return value
        expected = " or ".join(self.types)
        raise InvalidParams(
            f"Invalid params: {self.name} must be {expected}",
            param=self.name,
            expected=expected,
        )

    def schema(self) -> dict[str, Any]:
        kinds = list(self.types)
        return {"type": kinds[0] if len(kinds) == 1 else kinds}


def required(name: str, *types: str, description: str = "") -> Param:
    return Param(name, types, True, None, description)


def optional(
    name: str, *types: str, default: Any = None, description: str = ""
) -> Param:
    return Param(name, types, False, default, description)


@dataclass(frozen=True)
class Method:
    """A JSON-RPC method: its name, declaration and handler.

    ``session`` methods also receive the connection's
    :class:`~meshd.rpc.server.Session` as a ``session`` keyword (used to
    stream notifications after the response).
    """

    name: str
    handler: Handler
    summary: str
    result: str
    params: tuple[Param, ...] = ()
    session: bool = False
    notifications: str = ""

    def bind(self, params: list[Any] | dict[str, Any]) -> dict[str, Any]:
        """Turn positional or named params into checked keyword arguments.

        Raises:
            InvalidParams: too many, unknown, missing or mistyped params.
        """
        named = self._named(params)
        unknown = [name for name in named if name not in self._names()]
        if unknown:
            shown = codec.echo(unknown[0])
            raise InvalidParams(f"Invalid params: unknown param {shown}", param=shown)

        bound: dict[str, Any] = {}
        for param in self.params:
            value = named.get(param.name, _MISSING)
            if value is _MISSING and param.required:
                raise InvalidParams(
                    f"Invalid params: {param.name} is required", param=param.name
                )
            bound[param.name] = (
                param.default if value is _MISSING else param.check(value)
            )
        return bound

    def _named(self, params: list[Any] | dict[str, Any]) -> dict[str, Any]:
        if isinstance(params, dict):
            return params
        if len(params) > len(self.params):
            raise InvalidParams(
                f"Invalid params: {self.name} takes at most {len(self.params)}",
                position=len(self.params),
            )
        return {
            param.name: value for param, value in zip(self.params, params, strict=False)
        }

    def _names(self) -> set[str]:
        return {param.name for param in self.params}

    def describe(self) -> dict[str, Any]:
        """This method as an OpenRPC Method Object."""
        described: dict[str, Any] = {
            "name": self.name,
            "summary": self.summary,
            "paramStructure": "either",
            "params": [_describe_param(param) for param in self.params],
            "result": {"name": "result", "description": self.result, "schema": {}},
        }
        if self.notifications:
            described["x-notifications"] = self.notifications
        return described


def _describe_param(param: Param) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": param.name,
        "required": param.required,
        "schema": param.schema(),
    }
    if param.description:
        described["description"] = param.description
    if not param.required and param.default is not None:
        described["schema"]["default"] = param.default
    return described


class MethodTable:
    """Every method the daemon serves, by name, in declaration order."""

    def __init__(self, methods: Iterable[Method] = ()) -> None:
        self._methods: dict[str, Method] = {}
        self.register(*methods)

    def register(self, *methods: Method) -> None:
        """Add methods.

        Raises:
            ValueError: a method of that name is already registered.
        """
        for method in methods:
            if method.name in self._methods:
                raise ValueError(f"Method {method.name} is already registered")
            self._methods[method.name] = method

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return list(self._methods)

    def __iter__(self) -> Any:
        return iter(self._methods.values())

    def openrpc(self, title: str, version: str) -> dict[str, Any]:
        """The OpenRPC document of this table, with the application errors."""
        return {
            "openrpc": OPENRPC_VERSION,
            "info": {"title": title, "version": version},
            "methods": [method.describe() for method in self._methods.values()],
            "components": {"errors": _describe_errors()},
        }


def _describe_errors() -> dict[str, Any]:
    errors: dict[str, Any] = {}
    for error_class in all_error_classes():
        errors[error_class.reason] = {
            "code": error_class.code,
            "message": error_class.default_message,
            "data": {"reason": error_class.reason},
        }
    return errors
