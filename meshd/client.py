"""A small client for the meshd socket, for meshctl and other apps.

Blocking::

    from meshd.client import Client
    with Client.for_home(Path("~/meshd-a").expanduser()) as client:
        status = client.call("mesh.status")
        for event in client.subscribe(since=0):
            print(event["id"], event["type"])

trio::

    async with TrioClient(socket_path) as client:
        status = await client.call("mesh.status")

Errors: an application error comes back as the :class:`~meshd.errors.MeshError`
subclass named by its ``data.reason`` (``Locked``, ``WrongCode``...); a
JSON-RPC error with no such class (method not found, invalid params, a
reason this version does not know) as :class:`RpcError`; no daemon on the
socket as :class:`DaemonUnavailable`.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from meshd.errors import InvalidInput, MeshError, all_error_classes
from meshd.paths import client_socket
from meshd.rpc.codec import LINE_LIMIT, LineBuffer, LineTooLong

DEFAULT_TIMEOUT = 60.0


class DaemonUnavailable(Exception):
    """No daemon answers on the socket (not running, or it went away)."""

    def __init__(self, socket_path: Path | str, detail: str) -> None:
        super().__init__(f"No meshd answers on {socket_path}: {detail}")
        self.socket_path = str(socket_path)
        self.detail = detail


class RpcError(Exception):
    """A JSON-RPC error without a matching MeshError class."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def error_from_response(error: Any) -> Exception:
    """The exception for a JSON-RPC error object."""
    if not isinstance(error, dict):
        return RpcError(-32603, "The daemon sent a malformed error", error)
    code = error.get("code", -32603)
    message = str(error.get("message", "Unknown error"))
    data = error.get("data")

    reason = data.get("reason") if isinstance(data, dict) else None
    error_class = _ERRORS_BY_REASON.get(reason) if isinstance(reason, str) else None
    if error_class is None or error_class.code != code:
        return RpcError(code if isinstance(code, int) else -32603, message, data)
    assert isinstance(data, dict)
    details = {
        key: value for key, value in data.items() if key not in ("reason", "message")
    }
    return error_class(message, **details)


_ERRORS_BY_REASON: dict[str, type[MeshError]] = {
    error_class.reason: error_class for error_class in all_error_classes()
}


def _request(request_id: int, method: str, params: Any) -> bytes:
    """One request line.

    Raises:
        InvalidInput: the line would pass the daemon's limit, which answers
            such a line by closing the connection.
    """
    message = {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
    line = json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"
    if len(line) > LINE_LIMIT:
        raise InvalidInput(
            f"The request is {len(line)} bytes, over the daemon's limit of "
            f"{LINE_LIMIT}",
            size=len(line),
        )
    return line


def _result(response: Any) -> Any:
    """The result of a response object, or raise its error."""
    if not isinstance(response, dict) or response.get("jsonrpc") != "2.0":
        raise RpcError(-32603, "The daemon sent a malformed response", response)
    if "error" in response:
        raise error_from_response(response["error"])
    return response.get("result")


def _decode(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise RpcError(-32700, "The daemon sent a line that is not JSON") from exc


class Client:
    """A blocking connection to one daemon; calls are answered in order."""

    def __init__(
        self, socket_path: Path | str, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._socket: socket.socket | None = None
        self._buffer = LineBuffer(LINE_LIMIT)
        self._ids = itertools.count(1)

    @classmethod
    def for_home(cls, home: Path | None = None, **options: Any) -> Client:
        """A client for the daemon of ``home`` (or the default daemon)."""
        return cls(client_socket(home), **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` with named params and return its result.

        Raises:
            MeshError: the daemon reported an application error.
            RpcError: a JSON-RPC error without a matching MeshError.
            DaemonUnavailable: no daemon answers on the socket.
        """
        return self.call_with(method, params)

    def call_with(self, method: str, params: list[Any] | dict[str, Any]) -> Any:
        """Call ``method`` with positional (list) or named (dict) params."""
        request_id = next(self._ids)
        self._send(_request(request_id, method, params))
        while True:
            response = _decode(self._read_line())
            # Notifications of a stream on this connection are not answers.
            if isinstance(response, dict) and "id" not in response:
                continue
            return _result(response)

    def subscribe(self, since: int | None = None) -> EventStream:
        """Events after ``since`` (all buffered ones for 0), then live ones.

        The stream has its own connection; close it (or the client) to stop.
        """
        stream_client = Client(self.socket_path, timeout=None)
        try:
            answer = stream_client.call("events.subscribe", since=since)
        except BaseException:
            stream_client.close()
            raise
        return EventStream(stream_client, answer)

    def _connect(self) -> socket.socket:
        if self._socket is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(self.timeout)
            try:
                connection.connect(str(self.socket_path))
            except OSError as exc:
                connection.close()
                raise DaemonUnavailable(
                    self.socket_path, exc.strerror or str(exc)
                ) from exc
            self._socket = connection
        return self._socket

    def _send(self, data: bytes) -> None:
        try:
            self._connect().sendall(data)
        except OSError as exc:
            self.close()
            raise DaemonUnavailable(self.socket_path, "the connection broke") from exc

    def _read_line(self) -> bytes:
        while True:
            try:
                line = self._buffer.next_line()
            except LineTooLong as exc:
                self.close()
                raise RpcError(-32600, "The daemon sent a line over the limit") from exc
            if line is not None:
                return line
            self._buffer.feed(self._receive())

    def _receive(self) -> bytes:
        try:
            data = self._connect().recv(65536)
        except TimeoutError as exc:
            self.close()
            raise DaemonUnavailable(self.socket_path, "no answer in time") from exc
        except OSError as exc:
            self.close()
            raise DaemonUnavailable(self.socket_path, "the connection broke") from exc
        if not data:
            self.close()
            raise DaemonUnavailable(
                self.socket_path, "the daemon closed the connection"
            )
        return data


class EventStream:
    """Events from ``events.subscribe``, as dicts with ``id`` and ``type``.

    Attributes:
        latest: the newest event id when the subscription started.
        missed: events after ``since`` had already left the daemon's buffer.
    """

    def __init__(self, client: Client, answer: Any) -> None:
        self._client = client
        answer = answer if isinstance(answer, dict) else {}
        self.latest: int = int(answer.get("latest", 0))
        self.missed: bool = bool(answer.get("missed", False))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            message = _decode(self._client._read_line())
            if isinstance(message, dict) and message.get("method") == "event":
                params = message.get("params")
                if isinstance(params, dict):
                    yield params

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TrioClient:
    """The same client for trio programs."""

    def __init__(self, socket_path: Path | str) -> None:
        self.socket_path = Path(socket_path)
        self._stream: trio.SocketStream | None = None
        self._buffer = LineBuffer(LINE_LIMIT)
        self._ids = itertools.count(1)
        self._lock = trio.Lock()

    async def __aenter__(self) -> TrioClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method``; errors as for :meth:`Client.call`."""
        async with self._lock:
            await self._send(_request(next(self._ids), method, params))
            while True:
                response = _decode(await self._read_line())
                if isinstance(response, dict) and "id" not in response:
                    continue
                return _result(response)

    async def subscribe(
        self, since: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Events after ``since``, then live ones, on a connection of their own."""
        async with TrioClient(self.socket_path) as stream_client:
            await stream_client.call("events.subscribe", since=since)
            while True:
                message = _decode(await stream_client._read_line())
                if isinstance(message, dict) and message.get("method") == "event":
                    params = message.get("params")
                    if isinstance(params, dict):
                        yield params

    async def _connect(self) -> trio.SocketStream:
        if self._stream is None:
            try:
                self._stream = await trio.open_unix_socket(str(self.socket_path))
            except OSError as exc:
                raise DaemonUnavailable(
                    self.socket_path, exc.strerror or str(exc)
                ) from exc
        return self._stream

    async def _send(self, data: bytes) -> None:
        stream = await self._connect()
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await self.aclose()
            raise DaemonUnavailable(self.socket_path, "the connection broke") from exc

    async def _read_line(self) -> bytes:
        stream = await self._connect()
        while True:
            try:
                line = self._buffer.next_line()
            except LineTooLong as exc:
                raise RpcError(-32600, "The daemon sent a line over the limit") from exc
            if line is not None:
                return line
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise DaemonUnavailable(
                    self.socket_path, "the connection broke"
                ) from exc
            if not data:
                raise DaemonUnavailable(
                    self.socket_path, "the daemon closed the connection"
                )
            self._buffer.feed(data)
