"""Answers stay within one line, whatever a handler returns or an error repeats."""

from __future__ import annotations

import json
from typing import Any

from meshd.errors import NotFound
from meshd.rpc import codec
from meshd.rpc.methods import Method, MethodTable, required
from meshd.rpc.server import Dispatcher

LIMIT = 4096


async def sized(size: int) -> str:
    return "x" * size


async def missing(name: str) -> None:
    raise NotFound(f"Nothing is called {name!r}", name=name)


TABLE = MethodTable(
    [
        Method("test.sized", sized, "", "", (required("size", "integer"),)),
        Method("test.missing", missing, "", "", (required("name", "string"),)),
    ]
)


async def answer(message: Any) -> bytes:
    """The line the server sends for a request or a batch."""
    parsed = codec.parse_line(codec.encode_json(message))
    assert parsed is not None
    dispatcher = Dispatcher(TABLE, 10, LIMIT)
    sent = await dispatcher.answer(parsed, None)  # type: ignore[arg-type]
    assert sent is not None
    return sent


def request(method: str, request_id: int, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


async def test_an_answer_over_the_line_limit_becomes_a_typed_error() -> None:
    line = await answer(request("test.sized", 7, size=LIMIT))

    response = json.loads(line)
    assert len(line) <= LIMIT + 1
    assert response["id"] == 7
    assert response["error"]["data"]["reason"] == "answer_too_large"
    assert response["error"]["data"]["limit"] == LIMIT
    assert response["error"]["data"]["size"] > LIMIT


async def test_a_batch_over_the_line_limit_keeps_the_answers_that_fit() -> None:
    batch = [
        request("test.sized", 1, size=100),
        request("test.sized", 2, size=LIMIT // 2),
        request("test.sized", 3, size=LIMIT // 2 + 50),
    ]

    line = await answer(batch)

    responses = {item["id"]: item for item in json.loads(line)}
    assert len(line) <= LIMIT + 1
    assert responses[1]["result"] == "x" * 100
    assert responses[2]["result"] == "x" * (LIMIT // 2)
    assert responses[3]["error"]["data"]["reason"] == "answer_too_large"


async def test_an_error_repeats_only_the_start_of_a_huge_name() -> None:
    line = await answer(request("test.missing", 1, name="n" * 600_000))

    error = json.loads(line)["error"]
    assert len(line) < 2000
    assert error["data"]["reason"] == "not_found"
    assert error["data"]["name"].startswith("nnnn")
    assert error["message"].startswith("Nothing is called 'nnn")
