"""The meshd daemon: the device service and the process around it.

:class:`DeviceService` is the glue between the JSON-RPC server and the
device's parts. It owns the keystore (and the keys once unlocked) and the
event bus, and serves the methods of :mod:`meshd.rpc.table`. The mesh,
replica and sync layers plug in by adding rows to that table or by calling
:meth:`DeviceService.register` with more :class:`~meshd.rpc.methods.Method`
objects before the server starts.

:class:`Daemon` runs one service: it takes the home's lock (one daemon per
home), opens the keystore, listens on the socket (or the one systemd passed),
tells the service manager it is ready, and on SIGTERM or SIGINT lets the
requests in progress finish, closes and removes the socket and returns.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import signal
import socket
import time
import weakref
from importlib import metadata
from pathlib import Path
from typing import Any

import trio

from meshd.config import Config
from meshd.crypto.suite import DeviceKeys, short_id
from meshd.errors import AlreadySubscribed, InvalidInput, Locked, MeshError, NotFound
from meshd.events import EventBus
from meshd.keystore import DeviceSecrets, Keystore, ensure_private_dir
from meshd.node import MeshNode, mesh_methods
from meshd.paths import Paths
from meshd.rpc.codec import EncodedJson
from meshd.rpc.listener import (
    bind_socket,
    ensure_socket_folder,
    inherited_socket,
    remove_socket,
)
from meshd.rpc.methods import Method, MethodTable
from meshd.rpc.server import RpcServer, Session
from meshd.rpc.table import method_table

logger = logging.getLogger(__name__)

NO_MESH_WARNING = (
    "This device is not part of a mesh yet: run 'meshctl init' to create one"
    " or 'meshctl join INVITE' to join one"
)
LOCKED_WARNING = "The keystore is locked: run 'meshctl unlock'"


class DaemonStartError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def version() -> str:
    try:
        return metadata.version("meshd")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class DeviceService:
    """This device as the API sees it: keys, events and the method table."""

    def __init__(self, paths: Paths, config: Config) -> None:
        self.paths = paths
        self.config = config
        self.keystore = Keystore(paths.state)
        self.events = EventBus.numbered_from_clock(config.ring_size)
        self.keys: DeviceKeys | None = None
        self.methods = MethodTable(method_table(self))
        self.methods.register(*mesh_methods(self.require_node))
        self._started = time.monotonic()
        self._unlock_lock = trio.Lock()
        self.node: MeshNode | None = None
        self._nursery: trio.Nursery | None = None
        # Connections that stream events now: one stream each.
        self._streaming: weakref.WeakSet[Session] = weakref.WeakSet()

    def register(self, *methods: Method) -> None:
        """Serve more methods (before or while the server runs).

        Raises:
            ValueError: a method of the same name is already served.
        """
        self.methods.register(*methods)

    def attach(self, nursery: trio.Nursery) -> None:
        """Run background work (the sync loop) in ``nursery``."""
        self._nursery = nursery
        if self.node is not None:
            nursery.start_soon(self.node.run)

    def _open_node(self) -> None:
        """Open this device's store and mesh once the keys are known.

        Raises:
            StoreError: the local store cannot be opened.
        """
        if self.keys is None or self.node is not None:
            return
        self.node = MeshNode(
            self.paths.state, self.keys, self.events, self.config.sync_interval
        )
        if self._nursery is not None:
            self._nursery.start_soon(self.node.run)

    def require_node(self) -> MeshNode:
        """Raises:
        Locked: the keystore has not been unlocked yet.
        """
        if self.node is None:
            raise Locked()
        return self.node

    def require_keys(self) -> DeviceKeys:
        """The device keys, for methods that sign or decrypt.

        Raises:
            Locked: the keystore has not been unlocked yet.
        """
        if self.keys is None:
            raise Locked()
        return self.keys

    async def open(self, passphrase: str | None) -> None:
        """Create the keystore in an empty home, or load an existing one.

        A protected keystore without a passphrase leaves the service locked.

        Raises:
            MeshError: the keystore is corrupt, exposed or the passphrase wrong.
        """
        if not self.keystore.exists():
            keys = DeviceKeys.generate()
            params = self.config.kdf_parameters() if passphrase else None
            await trio.to_thread.run_sync(
                self.keystore.create, DeviceSecrets.of(keys), passphrase, params
            )
            self.keys = keys
            logger.info("Device created: %s", short_id(keys.device_id))
            self._open_node()
            return

        if passphrase is None and self.keystore.is_protected():
            logger.info("Keystore locked: waiting for 'meshctl unlock'")
            return
        secrets = await trio.to_thread.run_sync(self.keystore.load, passphrase)
        self.keys = secrets.current.keys()
        self._open_node()

    # -- rpc ---------------------------------------------------------------------

    async def discover(self) -> dict[str, Any]:
        return self.methods.openrpc("meshd", version())

    # -- daemon ------------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        return {
            "pong": True,
            "version": version(),
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self._started, 3),
            "locked": self.keys is None,
        }

    # -- device ------------------------------------------------------------------

    async def device_info(self) -> dict[str, Any]:
        keys = self.require_keys()
        if self.node is not None:
            # After a key rotation the node holds the current keys.
            keys = self.node.device.keys
        public = keys.public
        return {
            "device_id": keys.device_id,
            "signing_key": base64.b64encode(public.signing).decode("ascii"),
            "encryption_key": base64.b64encode(public.encryption).decode("ascii"),
        }

    async def unlock(self, passphrase: str) -> dict[str, Any]:
        """Raises:
        WrongPassphrase: the passphrase does not open the keystore.
        """
        async with self._unlock_lock:
            if self.keys is None:
                secrets = await trio.to_thread.run_sync(self.keystore.load, passphrase)
                self.keys = secrets.current.keys()
                logger.info(
                    "Keystore unlocked: device %s", short_id(self.keys.device_id)
                )
                self.events.publish("device.unlocked", device_id=self.keys.device_id)
                self._open_node()
        return {"locked": False, "device_id": self.keys.device_id}

    # -- mesh --------------------------------------------------------------------

    async def mesh_status(self) -> dict[str, Any] | EncodedJson:
        """Who this device is, its mesh and what needs attention."""
        if self.node is not None and self.node.device.log is not None:
            return await self.node.status_json()
        # TODO: a locked device cannot show its id, because the keystore keeps
        # no public part in the clear; the user sees "device -" until unlock.
        locked = self.keys is None
        return {
            "state": "locked" if locked else "no mesh",
            "did": None,
            "label": None,
            "device_id": None if self.keys is None else self.keys.device_id,
            "threshold": None,
            "devices": [],
            "storage": None,
            "locked": locked,
            "warnings": [LOCKED_WARNING] if locked else [NO_MESH_WARNING],
        }

    # -- events ------------------------------------------------------------------

    async def subscribe(self, session: Session, since: int | None) -> dict[str, Any]:
        """Start streaming events on ``session``; see :mod:`meshd.events`.

        Raises:
            InvalidInput: ``since`` is negative.
            AlreadySubscribed: ``session`` streams events already; a second
                stream would deliver every event twice on one connection.
        """
        if since is not None and since < 0:
            raise InvalidInput("since must be 0 or more", field="since")
        if session in self._streaming:
            raise AlreadySubscribed()
        subscription, replay = self.events.subscribe(since)

        async def stream() -> None:
            try:
                for event in replay.events:
                    await session.send(_event_notification(event.to_json()))
                async for event in subscription:
                    await session.send(_event_notification(event.to_json()))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                # A stream that ended (a subscriber that fell behind) may be
                # started again on the same connection, with since.
                subscription.close()
                self._streaming.discard(session)

        try:
            session.start_after_response(stream)
        except MeshError:
            subscription.close()
            raise
        self._streaming.add(session)
        return {"latest": replay.latest, "missed": replay.missed}


def _event_notification(event: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "event", "params": event}


class Daemon:
    """One meshd process: the service, its socket and its lifecycle."""

    def __init__(self, paths: Paths, config: Config, passphrase: str | None) -> None:
        self.paths = paths
        self.config = config
        self._passphrase = passphrase
        self.service = DeviceService(paths, config)

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT.

        Raises:
            DaemonStartError: another daemon holds the home, or the socket or
                keystore cannot be used.
        """
        # A socket folder that others may enter is refused before anything
        # is written into the home.
        inherited = inherited_socket()
        if inherited is None:
            ensure_socket_folder(self.paths.socket.parent)

        ensure_private_dir(self.paths.state)
        with HomeLock(self.paths.lock):
            # Listening comes before the keystore and the store are opened
            # (and created on a first start): a socket path that cannot be
            # served leaves the home as it was.
            listener, owned_path = self._listen(inherited)
            try:
                await self.service.open(self._passphrase)
                self._passphrase = None
                await self._serve(listener, owned_path)
            finally:
                listener.close()
                if owned_path is not None:
                    remove_socket(owned_path)

    def _listen(
        self, inherited: socket.socket | None
    ) -> tuple[socket.socket, Path | None]:
        """The listening socket, and its path when this process owns it."""
        if inherited is not None:
            logger.info("Socket received from the service manager")
            return inherited, None
        return bind_socket(self.paths.socket), self.paths.socket

    async def _serve(self, listener: socket.socket, owned_path: Path | None) -> None:
        server = RpcServer(
            self.service.methods,
            trio.socket.from_stdlib_socket(listener),
            self.config.limits,
        )
        device = (
            short_id(self.service.keys.device_id) if self.service.keys else "locked"
        )
        address = listener.getsockname() or str(owned_path)
        async with trio.open_nursery() as nursery:
            # Catch SIGTERM before the first client can connect, so a request
            # answered after start-up is never cut short by a default signal.
            await nursery.start(self._stop_on_signal, server, nursery)
            await nursery.start(server.serve)
            self.service.attach(nursery)
            logger.info(
                "Daemon started: device %s, socket %s, pid %d",
                device,
                address,
                os.getpid(),
            )
            self.service.events.publish("daemon.started", pid=os.getpid())
            notify_service_manager(
                f"READY=1\nSTATUS=Serving on {address}\nMAINPID={os.getpid()}"
            )
        logger.info("Daemon stopped: device %s", device)

    async def _stop_on_signal(
        self,
        server: RpcServer,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for number in signals:
                logger.info("Daemon stopping: %s", signal.Signals(number).name)
                notify_service_manager("STOPPING=1")
                await server.stop()
                # Requests have finished: stop the sync loop and close the store.
                # The receiver stays open until the nursery ends, so a second
                # signal during the shutdown cannot kill the process half-way.
                nursery.cancel_scope.cancel()
                if self.service.node is not None:
                    self.service.node.device.close()


class HomeLock:
    """An exclusive lock on a device home: one daemon per home.

    flock(2) is released by the kernel when the process dies, so a crash
    never leaves a home locked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def __enter__(self) -> HomeLock:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode("ascii", "replace").strip()
            os.close(descriptor)
            raise DaemonStartError(
                f"Another meshd (pid {holder or 'unknown'}) is already running"
                f" on {self.path.parent}"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
        self._descriptor = descriptor
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            os.ftruncate(self._descriptor, 0)
            os.close(self._descriptor)
            self._descriptor = None


def notify_service_manager(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` to systemd's NOTIFY_SOCKET (the sd_notify protocol).

    An address starting with '@' is in the abstract namespace. Returns False
    when there is no service manager to tell or it cannot be reached.
    """
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
            notify_socket.connect(address)
            notify_socket.sendall(state.encode("utf-8"))
    except OSError as exc:
        logger.warning("Service manager notification failed: %s", exc.strerror)
        return False
    return True


def read_passphrase_file(path: Path) -> str:
    """The passphrase in ``path``: its first line, without the newline.

    Raises:
        NotFound: the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotFound(
            f"Cannot read the passphrase file {path}: {exc.strerror}"
        ) from exc
    return text.splitlines()[0] if text else ""
