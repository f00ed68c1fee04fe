"""The JSON-RPC 2.0 specification's examples (section 7), on a real daemon.

``subtract``, ``sum`` and friends are not meshd methods, so each example is
played with a real method of the same shape: ``device.unlock`` takes one
param by position or by name, ``daemon.ping`` and ``mesh.status`` take none.
"""

from __future__ import annotations

import json
from typing import Any

from tests.daemons import MeshdProcess


def exchange(daemon: MeshdProcess, *lines: str) -> list[Any]:
    """Send lines on one connection; every JSON text that came back."""
    raw = daemon.send_raw("".join(line + "\n" for line in lines).encode())
    return [json.loads(line) for line in raw.splitlines()]


def test_positional_params_are_bound_in_declaration_order(
    shared_meshd: MeshdProcess,
) -> None:
    answers = exchange(
        shared_meshd,
        '{"jsonrpc": "2.0", "method": "device.unlock", "params": ["any"], "id": 1}',
    )

    assert answers[0]["id"] == 1
    assert answers[0]["result"]["locked"] is False


def test_named_params_are_bound_by_name(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd,
        '{"jsonrpc": "2.0", "method": "device.unlock",'
        ' "params": {"passphrase": "any"}, "id": 3}',
    )

    assert answers == [
        {
            "jsonrpc": "2.0",
            "result": {"locked": False, "device_id": answers[0]["result"]["device_id"]},
            "id": 3,
        }
    ]


def test_notification_gets_no_response(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd,
        '{"jsonrpc": "2.0", "method": "daemon.ping", "params": []}',
        '{"jsonrpc": "2.0", "method": "daemon.ping"}',
        '{"jsonrpc": "2.0", "method": "no.such.method"}',
        '{"jsonrpc": "2.0", "method": "daemon.ping", "id": "after"}',
    )

    assert [answer["id"] for answer in answers] == ["after"]


def test_non_existent_method_is_method_not_found(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd, '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}'
    )

    assert answers[0]["error"]["code"] == -32601
    assert answers[0]["error"]["message"] == "Method not found"
    assert answers[0]["id"] == "1"


def test_invalid_json_is_parse_error_with_null_id(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd, '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]'
    )

    assert answers == [
        {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
            "id": None,
        }
    ]


def test_invalid_request_object_is_invalid_request(shared_meshd: MeshdProcess) -> None:
    answers = exchange(shared_meshd, '{"jsonrpc": "2.0", "method": 1, "params": "bar"}')

    assert answers[0]["error"]["code"] == -32600
    assert answers[0]["id"] is None


def test_batch_with_invalid_json_is_one_parse_error(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd,
        '[{"jsonrpc": "2.0", "method": "daemon.ping", "params": [], "id": "1"},'
        '{"jsonrpc": "2.0", "method"]',
    )

    assert len(answers) == 1
    assert answers[0]["error"]["code"] == -32700


def test_empty_batch_is_one_invalid_request(shared_meshd: MeshdProcess) -> None:
    answers = exchange(shared_meshd, "[]")

    assert isinstance(answers[0], dict)
    assert answers[0]["error"]["code"] == -32600
    assert answers[0]["id"] is None


def test_batch_of_one_non_object_is_a_list_of_one_error(
    shared_meshd: MeshdProcess,
) -> None:
    answers = exchange(shared_meshd, "[1]")

    assert len(answers[0]) == 1
    assert answers[0][0]["error"]["code"] == -32600


def test_batch_of_three_non_objects_is_three_errors(shared_meshd: MeshdProcess) -> None:
    answers = exchange(shared_meshd, "[1,2,3]")

    assert [entry["error"]["code"] for entry in answers[0]] == [-32600] * 3
    assert [entry["id"] for entry in answers[0]] == [None] * 3


def test_mixed_batch_answers_each_request_but_not_notifications(
    shared_meshd: MeshdProcess,
) -> None:
    answers = exchange(
        shared_meshd,
        json.dumps(
            [
                {"jsonrpc": "2.0", "method": "daemon.ping", "params": [], "id": "1"},
                {"jsonrpc": "2.0", "method": "daemon.ping", "params": []},
                {"jsonrpc": "2.0", "method": "mesh.status", "params": {}, "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"n": 1}, "id": "5"},
                {"jsonrpc": "2.0", "method": "device.info", "id": "9"},
            ]
        ),
    )

    by_id = {entry["id"]: entry for entry in answers[0]}
    assert len(answers[0]) == 5
    assert by_id["1"]["result"]["pong"] is True
    assert by_id["2"]["result"]["state"] == "no mesh"
    assert by_id[None]["error"]["code"] == -32600
    assert by_id["5"]["error"]["code"] == -32601
    assert by_id["9"]["result"]["device_id"] == by_id["2"]["result"]["device_id"]


def test_batch_of_only_notifications_gets_nothing(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd,
        '[{"jsonrpc": "2.0", "method": "daemon.ping", "params": [1, 2]},'
        '{"jsonrpc": "2.0", "method": "daemon.ping"}]',
    )

    assert answers == []


def test_ids_are_echoed_exactly_as_given(shared_meshd: MeshdProcess) -> None:
    ids = ["text", 7, -3, 1.5, None, "", 2**62]
    lines = [
        json.dumps({"jsonrpc": "2.0", "method": "daemon.ping", "id": value})
        for value in ids
    ]

    answers = exchange(shared_meshd, *lines)

    assert [answer["id"] for answer in answers] == ids
    assert all(answer["result"]["pong"] for answer in answers)


def test_bad_params_name_the_param_in_data(shared_meshd: MeshdProcess) -> None:
    answers = exchange(
        shared_meshd,
        *[
            json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": n})
            for n, (method, params) in enumerate(
                [
                    ("device.unlock", {"passphrase": 5}),
                    ("device.unlock", {}),
                    ("device.unlock", {"pass": "x"}),
                    ("device.unlock", ["a", "b"]),
                    ("daemon.ping", [True]),
                ]
            )
        ],
    )

    assert [answer["error"]["code"] for answer in answers] == [-32602] * 5
    assert answers[0]["error"]["data"]["param"] == "passphrase"
    assert answers[0]["error"]["data"]["expected"] == "string"
    assert answers[1]["error"]["data"]["param"] == "passphrase"
    assert answers[2]["error"]["data"]["param"] == "pass"


def test_application_error_carries_code_message_and_reason(
    shared_meshd: MeshdProcess,
) -> None:
    answers = exchange(
        shared_meshd,
        '{"jsonrpc": "2.0", "method": "events.subscribe", "params": [-4], "id": 1}',
    )

    error = answers[0]["error"]
    assert error["code"] == -32001
    assert error["data"]["reason"] == "invalid_input"
    assert "since" in error["message"]
