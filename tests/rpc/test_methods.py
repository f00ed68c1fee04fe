"""Method declarations: binding params, the dispatcher and the OpenRPC document."""

from __future__ import annotations

from typing import Any

import pytest

from meshd.errors import Locked
from meshd.rpc import codec
from meshd.rpc.methods import InvalidParams, Method, MethodTable, optional, required
from meshd.rpc.server import Dispatcher


async def echo(name: str, count: int = 1) -> dict[str, Any]:
    return {"name": name, "count": count}


ECHO = Method(
    "test.echo",
    echo,
    summary="Echo the params",
    result="{name, count}",
    params=(required("name", "string"), optional("count", "integer", default=1)),
)


def test_positional_and_named_params_bind_to_the_same_arguments() -> None:
    assert ECHO.bind(["a", 2]) == ECHO.bind({"name": "a", "count": 2})


def test_missing_optional_param_takes_its_default() -> None:
    assert ECHO.bind({"name": "a"}) == {"name": "a", "count": 1}


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"name": 1}, "name"),
        ({"name": "a", "count": True}, "count"),
        ({"name": "a", "count": 1.5}, "count"),
        ({}, "name"),
        ({"name": "a", "colour": "red"}, "colour"),
    ],
)
def test_bad_params_are_named_in_the_error(params: dict[str, Any], bad: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        ECHO.bind(params)

    assert raised.value.data["param"] == bad


def test_too_many_positional_params_are_refused() -> None:
    with pytest.raises(InvalidParams):
        ECHO.bind(["a", 1, "extra"])


def test_a_method_name_cannot_be_registered_twice() -> None:
    table = MethodTable([ECHO])

    with pytest.raises(ValueError):
        table.register(ECHO)


def test_openrpc_document_is_generated_from_the_declarations() -> None:
    document = MethodTable([ECHO]).openrpc("meshd", "1.0")

    (method,) = document["methods"]
    assert document["openrpc"].startswith("1.")
    assert method["name"] == "test.echo"
    assert [param["name"] for param in method["params"]] == ["name", "count"]
    assert method["params"][1] == {
        "name": "count",
        "required": False,
        "schema": {"type": "integer", "default": 1},
    }
    assert document["components"]["errors"]["locked"]["code"] == Locked.code


async def test_a_failing_handler_is_an_internal_error_without_detail() -> None:
    async def broken() -> None:
        raise RuntimeError("secret detail of the failure")

    table = MethodTable([Method("test.broken", broken, summary="", result="")])
    request = codec.Request("test.broken", [], 1)

    dispatcher = Dispatcher(table, 10)
    response = await dispatcher.answer_item(request, None)  # type: ignore[arg-type]

    assert response["error"] == {"code": -32603, "message": "Internal error"}
    assert "secret" not in repr(response)


async def test_a_result_json_cannot_carry_is_an_internal_error() -> None:
    async def unencodable() -> Any:
        return {"value": float("inf")}

    table = MethodTable([Method("test.inf", unencodable, summary="", result="")])
    request = codec.Request("test.inf", {}, "x")

    dispatcher = Dispatcher(table, 10)
    response = await dispatcher.answer_item(request, None)  # type: ignore[arg-type]

    assert response == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error"},
        "id": "x",
    }


async def test_mesh_errors_keep_their_code_and_reason() -> None:
    async def locked() -> None:
        raise Locked()

    table = MethodTable([Method("test.locked", locked, summary="", result="")])

    response = await Dispatcher(table, 10).answer_item(
        codec.Request("test.locked", [], 4),
        None,  # type: ignore[arg-type]
    )

    assert response["error"]["code"] == Locked.code
    assert response["error"]["data"] == {"reason": "locked"}
