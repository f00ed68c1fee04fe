"""JSON-RPC 2.0 framing and messages, without any I/O.

Theory of operation: the socket carries newline-delimited JSON texts (one
request, notification or batch per line, UTF-8). :class:`LineBuffer` cuts the
byte stream into lines and refuses a line longer than the limit before it is
buffered whole. :func:`parse_line` turns one line into a :class:`Single` or a
:class:`Batch`, each item either a :class:`Request` to dispatch or an
:class:`ErrorObject` already decided (the request was malformed). The
dispatcher then builds responses with :func:`result_response` and
:func:`error_response`, and :func:`encode` turns them back into a line.

Everything the JSON-RPC 2.0 specification says about ids is kept: a request
id is echoed exactly as given (string, number or null), a request without an
``id`` member is a notification and gets no response, and an error found
before the id could be read is answered with a null id.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# Error codes fixed by the JSON-RPC 2.0 specification, section 5.1.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# One line may hold at most 1 MiB (the newline excluded): large enough for a
# whole passport, small enough that a client cannot make the daemon buffer
# without bound.
LINE_LIMIT = 1024 * 1024
# How much of a text from the client an error repeats: enough to recognise
# it, never so much that an answer grows with what was sent.
MAX_ECHO_LENGTH = 80

JsonId = str | int | float | None
Params = list[Any] | dict[str, Any]


class LineTooLong(Exception):
    """The peer sent more than the line limit without a newline."""


@dataclass(frozen=True)
class ErrorObject:
    """A JSON-RPC error object: ``code``, ``message`` and optional ``data``."""

    code: int
    message: str
    data: Any = None
    request_id: JsonId = None
    notification: bool = False

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True)
class Request:
    """A well-formed request; ``notification`` when it carried no ``id``."""

    method: str
    params: Params = field(default_factory=dict)
    request_id: JsonId = None
    notification: bool = False


Item = Request | ErrorObject


@dataclass(frozen=True)
class Single:
    item: Item


@dataclass(frozen=True)
class Batch:
    items: tuple[Item, ...]


Message = Single | Batch


@dataclass(frozen=True)
class EncodedJson:
    """A result already encoded by :func:`encode_json`, sent as it is.

    A handler whose answer rarely changes returns one to spare the server
    encoding the same result on every call.
    """

    text: bytes


class LineBuffer:
    """Cuts a byte stream into lines of at most ``limit`` bytes."""

    def __init__(self, limit: int = LINE_LIMIT) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0

    @property
    def has_partial_line(self) -> bool:
        """True while part of a line has arrived without its newline."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> bytes | None:
        """The next complete line without its newline, or None if none yet.

        Raises:
            LineTooLong: the pending line is already longer than the limit.
        """
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            if len(self._buffer) > self.limit:
                raise LineTooLong()
            return None
        if end > self.limit:
            raise LineTooLong()

        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        return line


def echo(text: str, limit: int = MAX_ECHO_LENGTH) -> str:
    """A text from the client as an error message or its data repeats it: at
    most ``limit`` characters, then "..." when it was cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def parse_line(line: bytes) -> Message | None:
    """Parse one line into a message; None for a blank line (ignored).

    Never raises: every defect becomes an :class:`ErrorObject` to answer.
    """
    if not line.strip():
        return None
    try:
        document = _loads(line)
    except ValueError:
        return Single(ErrorObject(PARSE_ERROR, "Parse error"))

    if isinstance(document, list):
        if not document:
            return Single(ErrorObject(INVALID_REQUEST, "Invalid Request: empty batch"))
        return Batch(tuple(parse_request(entry) for entry in document))
    return Single(parse_request(document))


def _loads(line: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN or Infinity, bounded nesting.

    Raises:
        ValueError: the line is not a JSON text this server accepts.
    """
    try:
        text = line.decode("utf-8")
        if text.startswith("\ufeff"):
            raise ValueError("a byte order mark is not JSON")
        document = _DECODER.decode(text)
    except RecursionError as exc:
        # Deep nesting ("[[[[...") exhausts the parser's stack: a parse error.
        raise ValueError("nesting too deep") from exc

    # The strict UTF-8 decode already refused encoded surrogates, so only a
    # "\u" escape can spell one: most lines need no walk.
    if b"\\u" in line:
        _refuse_lone_surrogates(document)
    return document


def _refuse_lone_surrogates(document: Any) -> None:
    """JSON escapes can spell half of a UTF-16 pair ("\\ud800"), which is no
    Unicode text: nothing downstream could store or sign it.

    Raises:
        ValueError: a string or key holds a lone surrogate.
    """
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError is a ValueError
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads and json.dumps with options build a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def parse_request(entry: Any) -> Item:
    """Check one request object (section 4 of the specification)."""
    if not isinstance(entry, dict):
        return ErrorObject(INVALID_REQUEST, "Invalid Request: not an object")
    notification = "id" not in entry
    request_id = entry.get("id")
    if not _valid_id(request_id):
        return ErrorObject(INVALID_REQUEST, "Invalid Request: bad id")

    problem = _request_problem(entry)
    if problem is not None:
        return ErrorObject(
            INVALID_REQUEST, f"Invalid Request: {problem}", None, request_id
        )
    params = entry.get("params", {})
    return Request(entry["method"], params, request_id, notification)


def _valid_id(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _request_problem(entry: dict[str, Any]) -> str | None:
    if entry.get("jsonrpc") != "2.0":
        return 'the "jsonrpc" member must be "2.0"'
    if not isinstance(entry.get("method"), str):
        return 'the "method" member must be a string'
    if "params" in entry and not isinstance(entry["params"], list | dict):
        return 'the "params" member must be an array or an object'
    return None


def result_response(request_id: JsonId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def encode_result(request_id: JsonId, result: Any) -> bytes:
    """The JSON text of a result response; an :class:`EncodedJson` result is
    put in as it is, giving the same text as encoding the whole response.

    Raises:
        ValueError: the result holds something JSON cannot carry.
    """
    if isinstance(result, EncodedJson):
        return b"".join(
            (
                b'{"jsonrpc":"2.0","result":',
                result.text,
                b',"id":',
                encode_json(request_id),
                b"}",
            )
        )
    return encode_json(result_response(request_id, result))


def error_response(error: ErrorObject) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": error.request_id}


def notification(method: str, params: Params) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def encode(message: Any) -> bytes:
    """One JSON line, UTF-8, compact.

    Raises:
        ValueError: the message holds something JSON cannot carry (NaN, a
            non-string key, an object of an unknown type).
    """
    return encode_json(message) + b"\n"


def encode_json(value: Any) -> bytes:
    """One JSON text, UTF-8, compact, without a newline.

    Raises:
        ValueError: the value holds something JSON cannot carry.
    """
    try:
        text = _ENCODER.encode(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    return text.encode("utf-8")


def encode_batch(responses: list[bytes]) -> bytes:
    """One line holding the JSON texts of a batch's responses as an array."""
    return b"[" + b",".join(responses) + b"]\n"
