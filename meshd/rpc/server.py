"""The JSON-RPC server: connections, limits and dispatch over a Unix socket.

Each connection reads newline-delimited messages and answers them one at a
time, in order. Streams started by a method (``events.subscribe``) run beside
the reader in the connection's own nursery and share its send lock, so
responses and notifications never interleave inside a line.

Limits protect the daemon from a misbehaving local client: a bounded number
of connections (the next one is told the daemon is busy and closed), a line
limit, a deadline for finishing a line once it has started (a client sending
a byte a second cannot hold a slot forever) and a bounded batch size.

Stopping: :meth:`RpcServer.stop` closes the listener, lets the requests
already being handled finish (up to a grace period) and then cancels every
connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from meshd.errors import AnswerTooLarge, MeshError, TooManyConnections
from meshd.rpc import codec
from meshd.rpc.codec import ErrorObject, Item, Message, Request
from meshd.rpc.methods import InvalidParams, MethodTable
from meshd.rpc.peer import check_peer

logger = logging.getLogger(__name__)

# Read size: one syscall per 64 KiB keeps a 1 MiB line to a handful of reads.
_RECEIVE_SIZE = 64 * 1024
# Time for lines already in the socket buffers to be read when stopping.
_SETTLE_TIME = 0.05
# The longest message or data text of an error: room for a sentence that
# quotes what the client sent, not for all of it.
MAX_ERROR_TEXT_LENGTH = 500


@dataclass(frozen=True)
class ServerLimits:
    """Limits of one server; the defaults suit a single person's devices.

    Attributes:
        max_connections: connections served at once; more are refused.
        line_limit: bytes in one line, the newline excluded.
        line_timeout: seconds to finish a line once its first byte arrived.
        max_batch: requests in one batch.
        max_streams: streams (subscriptions) open on one connection.
        stop_grace: seconds that requests in progress get when stopping.
    """

    max_connections: int = 64
    line_limit: int = codec.LINE_LIMIT
    line_timeout: float = 10.0
    max_batch: int = 256
    max_streams: int = 8
    stop_grace: float = 10.0


class Session:
    """One client connection as methods see it: send and stream."""

    def __init__(self, stream: trio.SocketStream, max_streams: int) -> None:
        self._stream = stream
        self._send_lock = trio.Lock()
        self._pending: list[Callable[[], Awaitable[None]]] = []
        self._started = 0
        self._max_streams = max_streams

    async def send(self, message: Any) -> None:
        """Send one message as a line.

        Raises:
            trio.BrokenResourceError: the client went away.
            ValueError: the message cannot be encoded as JSON.
        """
        await self.send_line(codec.encode(message))

    async def send_line(self, line: bytes) -> None:
        """Send one encoded line whole, never inside another one.

        Raises:
            trio.BrokenResourceError: the client went away.
        """
        # Taking a free lock without a checkpoint saves a trip through the
        # scheduler per response; send_all still checkpoints.
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            await self._stream.send_all(line)
        finally:
            self._send_lock.release()

    def start_after_response(self, stream: Callable[[], Awaitable[None]]) -> None:
        """Run ``stream`` once the current response has been sent.

        Raises:
            InvalidState: the connection already has its maximum of streams.
        """
        from meshd.errors import InvalidState

        if self._started + len(self._pending) >= self._max_streams:
            raise InvalidState(
                f"At most {self._max_streams} streams per connection",
                limit=self._max_streams,
            )
        self._pending.append(stream)

    def take_pending(self) -> list[Callable[[], Awaitable[None]]]:
        pending, self._pending = self._pending, []
        self._started += len(pending)
        return pending


class Dispatcher:
    """Turns parsed messages into responses by calling the method table.

    No response is longer than ``line_limit``, the most a client reads in
    one line: a larger answer is replaced by an ``answer_too_large`` error,
    so the client learns what to ask instead of losing the connection.
    """

    def __init__(
        self, table: MethodTable, max_batch: int, line_limit: int = codec.LINE_LIMIT
    ) -> None:
        self.table = table
        self.max_batch = max_batch
        self.line_limit = line_limit

    async def answer(self, message: Message, session: Session) -> bytes | None:
        """The line to send (one response or a batch's array), or None."""
        if isinstance(message, codec.Single):
            response = await self.answer_json(message.item, session)
            return None if response is None else response + b"\n"

        if len(message.items) > self.max_batch:
            return codec.encode(
                codec.error_response(
                    ErrorObject(
                        codec.INVALID_REQUEST,
                        "Invalid Request: a batch holds at most "
                        f"{self.max_batch} requests",
                    )
                )
            )
        responses = []
        for item in message.items:
            response = await self.answer_json(item, session)
            if response is not None:
                responses.append(response)
        return self._fitted_batch(responses) if responses else None

    def _fitted_batch(self, responses: list[bytes]) -> bytes:
        """The batch's line, its largest responses replaced by errors while
        the whole would not fit one line."""
        total = sum(len(response) + 1 for response in responses) + 1
        for index in sorted(
            range(len(responses)), key=lambda i: len(responses[i]), reverse=True
        ):
            if total <= self.line_limit:
                break
            replaced = self._too_large(json.loads(responses[index])["id"], total)
            total += len(replaced) - len(responses[index])
            responses[index] = replaced
        return codec.encode_batch(responses)

    async def answer_item(self, item: Item, session: Session) -> Any:
        """The response to one item as a JSON value, or None for nothing."""
        response = await self.answer_json(item, session)
        return None if response is None else json.loads(response)

    async def answer_json(self, item: Item, session: Session) -> bytes | None:
        """The response to one item as a JSON text, or None for nothing.

        Raises:
            ValueError: an error's data cannot be encoded as JSON.
        """
        if isinstance(item, ErrorObject):
            response = codec.encode_json(codec.error_response(item))
        else:
            outcome = await self._call(item, session)
            if item.notification:
                return None
            if isinstance(outcome, ErrorObject):
                response = codec.encode_json(codec.error_response(outcome))
            else:
                response = _encoded_result(item, outcome)
        if len(response) > self.line_limit:
            request_id = None if isinstance(item, ErrorObject) else item.request_id
            return self._too_large(request_id, len(response))
        return response

    def _too_large(self, request_id: codec.JsonId, size: int) -> bytes:
        """The error that replaces an answer of ``size`` bytes."""
        error = AnswerTooLarge(
            f"The answer is {size} bytes, over the {self.line_limit} one line may"
            " carry: ask for less at a time (read the passport by path)",
            size=size,
            limit=self.line_limit,
        )
        response = codec.encode_json(
            codec.error_response(
                ErrorObject(error.code, error.message, error.to_data(), request_id)
            )
        )
        # An id near the line limit cannot be repeated: say it with null, as
        # for a request whose id could not be read.
        if len(response) > self.line_limit and request_id is not None:
            return self._too_large(None, size)
        return response

    async def _call(self, request: Request, session: Session) -> Any:
        """The handler's result, or the ErrorObject that replaces it."""
        method = self.table.get(request.method)
        if method is None:
            return _error(
                request,
                codec.METHOD_NOT_FOUND,
                "Method not found",
                {"method": codec.echo(request.method)},
            )
        try:
            arguments = method.bind(request.params)
            if method.session:
                arguments["session"] = session
            return await method.handler(**arguments)
        except InvalidParams as exc:
            return _error(request, codec.INVALID_PARAMS, exc.message, exc.data)
        except MeshError as exc:
            return _error(request, exc.code, *_bounded(exc))
        except Exception:
            # The client learns only that it failed; the log keeps the detail.
            logger.exception("RPC method %s failed", request.method)
            return _error(request, codec.INTERNAL_ERROR, "Internal error")


def _bounded(error: MeshError) -> tuple[str, dict[str, Any]]:
    """An error's message and data, each text cut to MAX_ERROR_TEXT_LENGTH.

    Errors repeat what the client sent (an id, a name) to say what is wrong;
    however long that was, the answer stays small.
    """
    data = {
        key: codec.echo(value, MAX_ERROR_TEXT_LENGTH)
        if isinstance(value, str)
        else value
        for key, value in error.to_data().items()
    }
    return codec.echo(error.message, MAX_ERROR_TEXT_LENGTH), data


def _error(request: Request, code: int, message: str, data: Any = None) -> ErrorObject:
    return ErrorObject(code, message, data, request.request_id, request.notification)


def _encoded_result(request: Request, result: Any) -> bytes:
    """The result response, encoded once; an internal error if JSON cannot
    carry the result."""
    try:
        return codec.encode_result(request.request_id, result)
    except ValueError:
        logger.error(
            "RPC method %s returned a result JSON cannot carry", request.method
        )
        return codec.encode_json(
            codec.error_response(
                _error(request, codec.INTERNAL_ERROR, "Internal error")
            )
        )


class RpcServer:
    """Serves a method table on a listening Unix socket."""

    def __init__(
        self,
        table: MethodTable,
        listener: trio.socket.SocketType,
        limits: ServerLimits | None = None,
    ) -> None:
        self.limits = limits or ServerLimits()
        self._dispatcher = Dispatcher(
            table, self.limits.max_batch, self.limits.line_limit
        )
        self._listener = trio.SocketListener(listener)
        self._connections = 0
        self._in_flight = 0
        self._stopping = False
        self._accept_scope = trio.CancelScope()
        self._scope = trio.CancelScope()

    async def serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept and serve connections until :meth:`stop`."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                task_status.started()
                with self._accept_scope:
                    await self._accept_loop(nursery)
        await self._listener.aclose()

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish, close the rest."""
        self._stopping = True

        # Lines already sent before the stop are read and answered: give the
        # accept loop a moment to take connections still in the listen
        # backlog, and their readers to pick the lines up.
        await trio.sleep(_SETTLE_TIME)
        self._accept_scope.cancel()
        with trio.move_on_after(self.limits.stop_grace):
            while self._in_flight:
                await trio.sleep(0.01)
        if self._in_flight:
            logger.warning(
                "RPC server stopping with %d requests cut short", self._in_flight
            )
        self._scope.cancel()

    async def _accept_loop(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await self._listener.accept()
            except OSError as exc:
                # Out of descriptors and similar: back off instead of spinning.
                logger.warning("RPC server accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            decision = check_peer(stream.socket)
            if not decision.allowed:
                logger.warning("RPC connection refused: %s", decision.reason)
                return

            if self._connections >= self.limits.max_connections:
                await self._refuse_busy(stream)
                return
            self._connections += 1
            try:
                await self._run_session(stream)
            except Exception:
                # One connection's failure must never take the daemon down.
                logger.exception("RPC connection failed")
            finally:
                self._connections -= 1

    async def _refuse_busy(self, stream: trio.SocketStream) -> None:
        busy = TooManyConnections(limit=self.limits.max_connections)
        error = ErrorObject(busy.code, busy.message, busy.to_data())
        with trio.move_on_after(1):
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError
            ):
                await stream.send_all(codec.encode(codec.error_response(error)))

    async def _run_session(self, stream: trio.SocketStream) -> None:
        session = Session(stream, self.limits.max_streams)
        async with trio.open_nursery() as nursery:
            try:
                await self._read_loop(stream, session, nursery)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                logger.debug("RPC connection lost")
            # The client closed its side: its streams have no one to read them.
            nursery.cancel_scope.cancel()

    async def _read_loop(
        self, stream: trio.SocketStream, session: Session, nursery: trio.Nursery
    ) -> None:
        buffer = codec.LineBuffer(self.limits.line_limit)
        deadline = trio.current_time() + self.limits.line_timeout
        served = False
        while True:
            try:
                line = buffer.next_line()
            except codec.LineTooLong:
                await self._send_fatal(
                    session, f"Invalid Request: line longer than {buffer.limit} bytes"
                )
                return
            if line is not None:
                await self._handle_line(line, session, nursery)
                continue

            if self._stopping and served:
                return
            if not buffer.has_partial_line:
                deadline = trio.current_time() + self.limits.line_timeout
            data = await self._receive(stream, buffer.has_partial_line, deadline)
            served = True
            if data is None:
                await self._send_fatal(
                    session, "Invalid Request: line not finished in time"
                )
                return
            if not data:
                return
            buffer.feed(data)

    async def _receive(
        self, stream: trio.SocketStream, partial: bool, deadline: float
    ) -> bytes | None:
        """The next bytes; b"" at end of stream; None when the line timed out."""
        if not partial:
            return await stream.receive_some(_RECEIVE_SIZE)
        with trio.move_on_at(deadline):
            return await stream.receive_some(_RECEIVE_SIZE)
        return None

    async def _handle_line(
        self, line: bytes, session: Session, nursery: trio.Nursery
    ) -> None:
        message = codec.parse_line(line)
        if message is None:
            return

        self._in_flight += 1
        try:
            response = await self._dispatcher.answer(message, session)
            if response is not None:
                await session.send_line(response)
        finally:
            self._in_flight -= 1

        # Streams start only after their subscribe response is on the wire.
        for stream in session.take_pending():
            nursery.start_soon(stream)

    async def _send_fatal(self, session: Session, message: str) -> None:
        """Answer -32600 with a null id before closing the connection."""
        logger.info("RPC connection closed: %s", message)
        error = ErrorObject(codec.INVALID_REQUEST, message)
        with trio.move_on_after(1):
            await session.send(codec.error_response(error))
