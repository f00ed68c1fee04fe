"""The sans-IO codec: framing and request checks without a socket."""

from __future__ import annotations

import pytest

from meshd.rpc import codec


def test_line_buffer_splits_lines_across_reads() -> None:
    buffer = codec.LineBuffer(limit=100)
    buffer.feed(b'{"a":1}\n{"b"')

    assert buffer.next_line() == b'{"a":1}'
    assert buffer.next_line() is None
    assert buffer.has_partial_line
    buffer.feed(b":2}\n")
    assert buffer.next_line() == b'{"b":2}'
    assert not buffer.has_partial_line


def test_line_buffer_refuses_a_line_over_the_limit_before_its_newline() -> None:
    buffer = codec.LineBuffer(limit=10)
    buffer.feed(b"x" * 11)

    with pytest.raises(codec.LineTooLong):
        buffer.next_line()


def test_line_buffer_accepts_a_line_exactly_at_the_limit() -> None:
    buffer = codec.LineBuffer(limit=10)
    buffer.feed(b"x" * 10 + b"\n")

    assert buffer.next_line() == b"x" * 10


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe{}",
        b"NaN",
        b'{"id": Infinity}',
        b"[" * 100_000,
        b"1" * 5000,
        b"{",
        b'{"jsonrpc": "2.0", "method": "x", "params": ["\\ud800"], "id": 1}',
        b'{"\\udfff": 1}',
    ],
)
def test_malformed_lines_are_parse_errors(line: bytes) -> None:
    message = codec.parse_line(line)

    assert isinstance(message, codec.Single)
    assert isinstance(message.item, codec.ErrorObject)
    assert message.item.code == codec.PARSE_ERROR


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc": "2.0", "method": "x", "id": true}',
        b'{"jsonrpc": "2.0", "method": "x", "id": {}}',
        b'{"jsonrpc": "2.0", "method": "x", "id": 1e999}',
        b'{"jsonrpc": "1.0", "method": "x", "id": 1}',
        b'{"method": "x", "id": 1}',
        b'{"jsonrpc": "2.0", "method": "x", "params": 3, "id": 1}',
        b'"just a string"',
    ],
)
def test_malformed_requests_are_invalid_requests(line: bytes) -> None:
    message = codec.parse_line(line)

    assert isinstance(message, codec.Single)
    assert isinstance(message.item, codec.ErrorObject)
    assert message.item.code == codec.INVALID_REQUEST


def test_request_without_id_is_a_notification_and_null_id_is_not() -> None:
    notification = codec.parse_request({"jsonrpc": "2.0", "method": "m"})
    request = codec.parse_request({"jsonrpc": "2.0", "method": "m", "id": None})

    assert isinstance(notification, codec.Request) and notification.notification
    assert isinstance(request, codec.Request) and not request.notification


def test_blank_lines_are_ignored() -> None:
    assert codec.parse_line(b"   \r") is None


def test_encode_refuses_values_json_cannot_carry() -> None:
    with pytest.raises(ValueError):
        codec.encode({"result": float("nan")})
    with pytest.raises(ValueError):
        codec.encode({"result": object()})


@pytest.mark.parametrize("request_id", [1, "é", None, 2.5])
def test_an_encoded_result_gives_the_same_response_as_encoding_it(
    request_id: codec.JsonId,
) -> None:
    result = {"state": "member", "devices": [{"name": "téléphone"}], "n": None}

    prepared = codec.encode_result(
        request_id, codec.EncodedJson(codec.encode_json(result))
    )

    assert prepared == codec.encode_result(request_id, result)
    assert prepared == codec.encode(codec.result_response(request_id, result))[:-1]
