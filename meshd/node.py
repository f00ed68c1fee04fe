"""The mesh methods of the API and the sync loop, over one :class:`Device`.

:class:`MeshNode` is what the daemon runs once the keys are open: it owns the
:class:`~meshd.device.Device`, the storage backend of the mesh and the sync
engine, polls storage in the background, and serves the ``mesh.*``,
``device.*``, ``enrollment.*``, ``recovery.*``, ``proposal.*``,
``passport.*``, ``conflict.*`` and ``sync.*`` methods. Handlers do their
local work synchronously (SQLite, pure cores) and then ask the sync loop for
a round, so a change reaches storage without waiting for the next poll. They
wait for that round only :data:`PUSH_WAIT_SECONDS`: a change is saved once it
is committed on this device, and a slow or hung storage only delays its push
(the answer says ``pushed: false``), never the answer itself.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from meshd.auth import verify_proof
from meshd.crypto.suite import DeviceKeys, short_id
from meshd.delegations import parse_agent_key, parse_expiry
from meshd.device import (
    AWAITING_FINALIZER,
    JOINING,
    MEMBER,
    Device,
    joinable_log_entries,
    mesh_id_of,
)
from meshd.errors import (
    AnswerTooLarge,
    InvalidInput,
    Locked,
    MeshError,
    NoMesh,
    NotAMember,
    NotFound,
    PassportFull,
    ProtocolError,
    StorageUnavailable,
    TooLarge,
    TooManyAttempts,
)
from meshd.events import EventBus
from meshd.invite import Invite
from meshd.keystore import Keystore
from meshd.mesh.log import MeshLog
from meshd.mesh.proposals import CANCELLED, LOCKED, PENDING, REJECTED
from meshd.replica.delegation import capability_id as capability_id_of
from meshd.replica.head import verify_head
from meshd.replica.paths import (
    CONFLICT_MODE_PATH,
    MODE_MANUAL,
    MODE_NEWEST,
    JSONValue,
    encode_value,
    set_in_tree,
    validate_path,
)
from meshd.rpc.codec import LINE_LIMIT, EncodedJson, encode_json
from meshd.rpc.methods import Handler, Method, optional, required
from meshd.sync.engine import MAX_OBJECT_SIZE, Problem, SyncEngine
from meshd.sync.layout import HeadName, LogEntryName, SegmentName
from meshd.sync.storage import RetryPolicy, StorageBackend, one_line
from meshd.watch import DeviceWatch

logger = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 3.0
# Backoff after storage errors: doubling from one poll interval up to a
# minute, so an outage costs few requests and recovery is noticed quickly.
MAX_BACKOFF_SECONDS = 60.0
# How long a write waits for its push before answering: long enough for a
# storage that answers at all, far below the client's patience.
PUSH_WAIT_SECONDS = 3.0
# How long ``sync.now`` waits for its round before saying storage is slow:
# well under the client's patience (meshd.client.DEFAULT_TIMEOUT, 60 s), so a
# hung storage is never mistaken for a daemon that does not answer.
SYNC_WAIT_SECONDS = 20.0
# Rounds that may follow one that changed the device's state (joining, then
# member): each change is a step forward, and there are few of them.
MAX_FOLLOW_UP_ROUNDS = 3
MAX_LABEL_LENGTH = 100
# Status lists the newest storage problems as warnings; --json has them all.
MAX_PROBLEM_WARNINGS = 5
CONFLICT_MODES = (MODE_NEWEST, MODE_MANUAL)
MAX_REASON_LENGTH = 500
# The whole passport, as ``passport.get`` sends it, stays under this when
# written here: three quarters of one message (LINE_LIMIT, 1 MiB), so it is
# always read whole, with room for the ops of other devices merged after.
MAX_PASSPORT_SIZE = 768 * 1024
# The largest passport sent whole: one message, less room for the response
# around it. A larger one (grown by merged ops) is read by path.
MAX_PASSPORT_ANSWER = LINE_LIMIT - 4096
DEVICE_KINDS = ("phone", "laptop", "tablet", "watch", "desktop", "server", "other")
# The last fields of mesh.status: the request, read on every call, and after it.
_STATUS_TAIL = ("request", "last_sync")


@dataclass(frozen=True)
class StatusSnapshot:
    """A built status, the objects it was built from and its JSON text.

    ``head`` and ``tail`` are the JSON text of ``mesh.status`` (``locked``
    first, as the daemon answers it) on either side of the request's value.
    """

    inputs: tuple[object, ...]
    fields: dict[str, Any]
    request_pending: bool
    head: bytes
    tail: bytes

    @classmethod
    def build(
        cls, inputs: tuple[object, ...], fields: dict[str, Any], request_pending: bool
    ) -> StatusSnapshot:
        """Raises:
        ValueError: a field holds something JSON cannot carry.
        """
        before: dict[str, Any] = {"locked": False}
        before.update(
            (key, value) for key, value in fields.items() if key not in _STATUS_TAIL
        )
        head = encode_json(before)[:-1] + b',"request":'
        tail = b',"last_sync":' + encode_json(fields["last_sync"]) + b"}"
        return cls(inputs, fields, request_pending, head, tail)

    def built_from(self, inputs: tuple[object, ...]) -> bool:
        """True when ``inputs`` are the very objects this status came from.

        Identity, not equality: comparing two mesh states field by field
        would cost more than building the status again.
        """
        return len(inputs) == len(self.inputs) and all(
            mine is theirs for mine, theirs in zip(self.inputs, inputs, strict=True)
        )


class MeshNode:
    """The device's mesh life: API handlers plus the background sync loop."""

    def __init__(
        self,
        home: Path,
        keys: DeviceKeys,
        events: EventBus,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.device = Device(home, keys) if clock is None else Device(home, keys, clock)
        self.events = events
        self.watch = DeviceWatch(self.device, events)
        self.poll_seconds = poll_seconds
        self.backend: StorageBackend | None = None
        self.engine: SyncEngine | None = None
        self.last_error: str | None = None
        self.last_round: dict[str, int] = {}
        self._wake = trio.Event()
        self._round_lock = trio.Lock()
        # Rounds are numbered as they begin; a write waits for the first
        # round that began after it was committed.
        self._loop_running = False
        self._rounds_begun = 0
        self._rounds_ended = 0
        self._rounds_stored = 0
        self._last_failure: MeshError | None = None
        self._round_ended = trio.Event()
        self._status: StatusSnapshot | None = None
        self._connect()

    def _connect(self) -> None:
        url, mesh_id = self.device.storage_url, self.device.mesh_id
        if url is None or mesh_id is None:
            return
        self.backend = StorageBackend.for_mesh(
            url, mesh_id, own_device_id=self.device.device_id
        )
        self.engine = SyncEngine(self.device, self.backend)

    # -- The sync loop ---------------------------------------------------------

    async def run(self) -> None:
        """Poll storage until cancelled; a handler's change wakes it early."""
        logger.info("Sync loop started for %s", short_id(self.device.device_id))
        backoff = self.poll_seconds
        self._loop_running = True
        try:
            while True:
                with trio.move_on_after(backoff):
                    await self._wake.wait()
                self._wake = trio.Event()
                if self.engine is None:
                    continue
                try:
                    await self.sync_round()
                    backoff = self.poll_seconds
                except StorageUnavailable:
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    backoff *= 0.5 + random.random() / 2
                except MeshError as exc:
                    # Writes now leave their rounds to this loop: one refused
                    # object must not stop every later push.
                    logger.warning("Sync round failed: %s", exc)
        finally:
            self._loop_running = False
            logger.info("Sync loop stopped for %s", short_id(self.device.device_id))

    def wake(self) -> None:
        self._wake.set()

    async def sync_round(self) -> dict[str, Any]:
        """One round against storage; events tell subscribers what changed.

        A round that changes the device's state (a joining device that just
        became a member) is followed at once by another, so that the device
        fetches what it can now read in the same call.

        Raises:
            NoMesh: this device has no storage yet.
            StorageUnavailable: storage cannot be reached.
        """
        if self.engine is None:
            raise NoMesh()
        engine = self.engine
        async with self._round_lock:
            self._rounds_begun += 1
            number, failure = self._rounds_begun, None
            try:
                report = await self._one_round(engine)
                for _ in range(MAX_FOLLOW_UP_ROUNDS):
                    if not report.pop("state_changed"):
                        break
                    report = await self._one_round(engine)
                report.pop("state_changed", None)
                return report
            except MeshError as exc:
                failure = exc
                raise
            finally:
                self._round_over(number, failure)

    async def _one_round(self, engine: SyncEngine) -> dict[str, Any]:
        """Run the engine once, note its outcome and tell subscribers.

        Raises:
            StorageUnavailable: storage cannot be reached.
        """
        state_before = self.device.state_name
        try:
            report = await engine.run_round()
        except StorageUnavailable as exc:
            self.last_error = exc.message
            self.events.publish("sync.failed", reason=exc.reason)
            raise

        # The round that is running now is the newest one begun.
        self._rounds_stored = self._rounds_begun
        self.last_error = None
        self.last_round = {
            "pushed": report.pushed,
            "pulled": report.pulled,
            "held": report.held,
            "rejected": report.rejected,
        }
        self.watch.publish_changes()
        if report.pushed or report.pulled:
            self.events.publish("sync", **self.last_round)
        state_changed = state_before != self.device.state_name
        if state_changed:
            self.events.publish("device.state", state=self.device.state_name)
        return {**self.last_round, "state_changed": state_changed}

    # -- mesh.* ----------------------------------------------------------------

    async def create(
        self, label: str, storage: str, device_name: str, device_kind: str
    ) -> dict[str, Any]:
        _check_kind(device_kind)
        check_text(label, "label", MAX_LABEL_LENGTH, required=True)
        check_text(device_name, "device_name", MAX_LABEL_LENGTH)
        storage = await check_storage(storage)
        state = self.device.create_mesh(label, storage, device_name, device_kind)
        self._connect()
        pushed = await self._push_now()
        self.events.publish("mesh.created", did=state.did)
        return {
            "did": state.did,
            "device_id": self.device.device_id,
            "label": label,
            "pushed": pushed,
        }

    async def status(self) -> dict[str, Any]:
        """This device, its mesh and what needs attention (``mesh.status``).

        Raises:
            NoMesh: this device has no mesh yet.
        """
        snapshot = await self._status_snapshot()
        found = dict(snapshot.fields)
        found["request"] = self._status_request(snapshot)
        return found

    async def status_json(self) -> EncodedJson:
        """:meth:`status` as the JSON text ``mesh.status`` sends, with
        ``locked: false`` first; encoded once per built status.

        Raises:
            NoMesh: this device has no mesh yet.
        """
        snapshot = await self._status_snapshot()
        request = encode_json(self._status_request(snapshot))
        return EncodedJson(snapshot.head + request + snapshot.tail)

    async def _status_snapshot(self) -> StatusSnapshot:
        """The built status, built again only when one of the facts it comes
        from was replaced (see :meth:`_status_inputs`).

        Raises:
            NoMesh: this device has no mesh yet.
        """
        if self.device.log is None:
            raise NoMesh()
        inputs = self._status_inputs()
        if self._status is None or not self._status.built_from(inputs):
            fields = await self._build_status()
            # Once the device joined, its request is history, not news.
            joining = self.device.state_name == JOINING
            pending = joining and self.device.my_request() is not None
            self._status = StatusSnapshot.build(inputs, fields, pending)
        return self._status

    def _status_request(self, snapshot: StatusSnapshot) -> dict[str, Any] | None:
        """This device's join request, read on every call while there is one
        (it expires with the clock)."""
        return self.device.my_request() if snapshot.request_pending else None

    def _status_inputs(self) -> tuple[object, ...]:
        """The objects status is built from. The mesh state, the last round's
        report and the keys are replaced, never changed in place; the storage
        URL and this device's join request are only written by the handlers
        that then connect a new backend, and proposals arrive in sync rounds,
        which end by replacing the last round's report or error; problems
        are only appended or dropped."""
        device, engine = self.device, self.engine
        problems = () if engine is None else engine.problems
        return (
            device.log,
            None if device.log is None else device.log.state,
            device.keys,
            self.backend,
            self.last_error,
            self.last_round,
            engine,
            len(problems),
            problems[-1] if problems else None,
            device.request_state(),
        )

    async def _build_status(self) -> dict[str, Any]:
        device = self.device
        state = device.require_log().state
        problems = [] if self.engine is None else list(self.engine.problems)
        return {
            "state": device.state_name,
            "did": state.did,
            "label": state.label,
            "device_id": device.device_id,
            "threshold": state.threshold,
            "devices": await self.devices(),
            "position": state.position,
            "vault_generation": state.vault.number,
            "warnings": self._status_warnings(problems),
            "problems": [{"name": p.name, "reason": p.reason} for p in problems],
            "storage": device.storage_url,
            "request": None,
            "last_sync": self.last_round,
        }

    def _status_warnings(self, problems: list[Problem]) -> list[str]:
        """The mesh's own warnings, then this device's and storage's."""
        device = self.device
        state = device.require_log().state
        warnings = list(state.warnings()) if device.state_name == MEMBER else []
        if device.state_name == JOINING:
            warnings.append(_joining_warning(device.request_state()))
        elif device.state_name != MEMBER:
            warnings.append(_state_warning(device.state_name))
        if self.last_error:
            warnings.append(f"Storage unreachable: {self.last_error}")

        # The newest few problems are enough to act on; --json has them all.
        for problem in problems[-MAX_PROBLEM_WARNINGS:]:
            warnings.append(_problem_warning(problem))
        hidden = len(problems) - MAX_PROBLEM_WARNINGS
        if hidden > 0:
            warnings.append(
                f"... and {hidden} more storage problems: see 'meshctl --json status'"
            )
        return warnings

    async def invite(self) -> dict[str, Any]:
        return {"invite": self.device.invite()}

    async def did_document(self) -> dict[str, Any]:
        return self.device.require_log().state.did_document()

    async def devices(self) -> list[dict[str, Any]]:
        log = self.device.require_log()
        state = log.state
        found = []
        for device_id, device in sorted(state.devices.items()):
            info = device.info()
            found.append(
                {
                    "id": device_id,
                    "name": state.device_name(device_id),
                    "kind": info.kind,
                    "state": "active" if info.active else "revoked",
                    "enrolled_at": info.enrolled_position,
                    "this_device": device_id == self.device.device_id,
                }
            )
        return found

    # -- enrollment.* and recovery.* -------------------------------------------

    async def request_enrollment(
        self, invite: str, device_name: str, device_kind: str
    ) -> dict[str, Any]:
        _check_kind(device_kind)
        check_text(device_name, "device_name", MAX_LABEL_LENGTH)
        return await self._request(invite, device_name, device_kind, [])

    async def request_recovery(
        self, invite: str, replace: list[Any], device_name: str, device_kind: str
    ) -> dict[str, Any]:
        _check_kind(device_kind)
        check_text(device_name, "device_name", MAX_LABEL_LENGTH)
        if not replace or not all(isinstance(item, str) for item in replace):
            raise InvalidInput("Name the lost devices to replace", field="replace")
        return await self._request(invite, device_name, device_kind, replace)

    async def _request(
        self, text: str, name: str, kind: str, replace: list[str]
    ) -> dict[str, Any]:
        # The invite's storage is held to the rules of init: a relative path
        # or storage this device cannot write would leave a request that no
        # member ever sees.
        invite = Invite.from_text(text)
        storage = await check_storage(invite.storage)
        invite = dataclasses.replace(invite, storage=storage)
        backend = StorageBackend.for_mesh(invite.storage, mesh_id_of(invite.did))
        names = [n for n in await backend.list("log") if isinstance(n, LogEntryName)]
        if not names:
            raise StorageUnavailable("The invite's storage holds no mesh log yet")
        entries = joinable_log_entries(
            [(name, await _readable(backend, name)) for name in names]
        )

        # Nothing is kept until the request is made: a refused one leaves
        # this device as it was.
        log = self.device.joining_log(invite, entries)
        lost = self.device.lost_devices(replace, log)
        cutoffs = {
            device: await self._last_sequence(backend, device, log) for device in lost
        }
        result = self.device.request_enrollment(name, kind, cutoffs, (invite, log))
        self._connect()
        result["pushed"] = await self._push_now()
        self.events.publish("enrollment.requested", request_id=result["request_id"])
        return result

    async def _last_sequence(
        self, backend: StorageBackend, device_id: str, log: MeshLog
    ) -> int:
        """The last op a lost device published: its recovery keeps every op up
        to it. The signed head says it; listed segments can only raise it
        (storage may serve an older head, never forge a newer one)."""
        listed = [
            name.last_seq
            for name in await backend.list(f"devices/{device_id}")
            if isinstance(name, SegmentName)
        ]
        last = max(listed, default=0)
        try:
            data = await backend.get(HeadName(device_id), MAX_OBJECT_SIZE)
            head = verify_head(data, log)
        except (NotFound, ProtocolError, NotAMember):
            return last
        return max(last, head.sequence)

    async def request_status(self) -> dict[str, Any]:
        found = self.device.my_request()
        if found is None:
            raise NoMesh("This device has made no join or recovery request")
        found["device_state"] = self.device.state_name
        return found

    # -- proposal.* ------------------------------------------------------------

    async def pending(self) -> list[dict[str, Any]]:
        return self.device.pending()

    async def approve(self, id: str, code: str | None) -> dict[str, Any]:
        try:
            result = self.device.approve(id, code)
        except TooManyAttempts:
            # The lock made a rejection: push it without waiting for a poll.
            self.wake()
            raise
        self.events.publish("proposal.approved", id=result["id"], state=result["state"])
        self.watch.publish_changes()
        result["pushed"] = await self._push_now()
        return result

    async def reject(self, id: str) -> dict[str, Any]:
        result = self.device.reject(id)
        result["pushed"] = await self._push_now()
        return result

    async def revoke(
        self, device_id: str, reason: str, threshold: int = 0
    ) -> dict[str, Any]:
        check_text(reason, "reason", MAX_REASON_LENGTH)

        # The cut-off keeps the device's ops that this device holds: fetch
        # what it wrote last first. The round is bounded like a push, and an
        # outage leaves the cut-off at what is held here (cutoff_fresh false).
        fresh = await self._push_now()
        result = self.device.propose_revoke(device_id, reason, threshold)
        self.watch.publish_changes()
        result["cutoff_fresh"] = fresh
        result["pushed"] = await self._push_now()
        return result

    async def set_threshold(self, threshold: int) -> dict[str, Any]:
        result = self.device.propose_threshold(threshold)
        self.watch.publish_changes()
        result["pushed"] = await self._push_now()
        return result

    # -- passport.* and conflict.* ---------------------------------------------

    async def passport_get(self, path: str | None) -> JSONValue:
        """The whole passport, or the value or section at ``path``.

        Raises:
            AnswerTooLarge: the whole passport no longer fits one answer
                (ops merged from other devices grew it): read it by path.
            InvalidInput: the path is malformed.
            NotFound: nothing is set at the path.
        """
        _, replica = self.device.require_member()
        if path is not None and path != "":
            return replica.get(path)

        # Measured as sent, to say what to do instead of the server's
        # general refusal of an answer over the line limit.
        passport = replica.passport()
        size = len(encode_json(passport))
        if size > MAX_PASSPORT_ANSWER:
            raise AnswerTooLarge(
                f"The passport is {size} bytes, over the {MAX_PASSPORT_ANSWER}"
                " one answer may carry: read it by path, a section at a time"
                " (such as profile)",
                size=size,
                limit=MAX_PASSPORT_ANSWER,
            )
        return passport

    async def passport_set(self, path: str, value: Any) -> dict[str, Any]:
        """Raises:
        InvalidInput: bad path or value.
        PassportFull: the passport would grow past MAX_PASSPORT_SIZE.
        """
        _, replica = self.device.require_member()
        if path == CONFLICT_MODE_PATH and value not in CONFLICT_MODES:
            raise InvalidInput(
                f"{path} is one of: {', '.join(CONFLICT_MODES)}", field="value"
            )
        _check_passport_room(replica.passport(), path, value)
        op_id = replica.local_set(path, value, self.device.clock())
        self.watch.publish_paths([path])
        pushed = await self._push_now()
        return {"path": path, "op_id": op_id, "pushed": pushed}

    async def passport_delete(self, path: str) -> dict[str, Any]:
        _, replica = self.device.require_member()
        op_id = replica.local_delete(path, self.device.clock())
        self.watch.publish_paths([path])
        pushed = await self._push_now()
        return {"path": path, "op_id": op_id, "pushed": pushed}

    async def add_capability(self, name: str, data: Any) -> dict[str, Any]:
        """Raises:
        InvalidInput: bad name or data.
        PassportFull: the passport would grow past MAX_PASSPORT_SIZE.
        """
        _, replica = self.device.require_member()
        value = {"name": name, "data": data}
        path = f"capabilities/{capability_id_of(name)}"
        _check_passport_room(replica.passport(), path, value)
        capability_id, op_id = replica.add_capability(name, data, self.device.clock())
        self.watch.publish_paths([f"capabilities/{capability_id}"])
        pushed = await self._push_now()
        return {"capability_id": capability_id, "op_id": op_id, "pushed": pushed}

    async def conflicts(self) -> list[dict[str, Any]]:
        _, replica = self.device.require_member()
        return [conflict.to_json() for conflict in replica.conflicts()]

    async def resolve(self, id: str, pick: str) -> dict[str, Any]:
        _, replica = self.device.require_member()
        paths = [c.path for c in replica.conflicts() if c.conflict_id == id]
        op_id = replica.resolve(id, pick, self.device.clock())
        self.watch.publish_paths(paths)
        pushed = await self._push_now()
        return {"id": id, "op_id": op_id, "pushed": pushed}

    # -- sync.* ----------------------------------------------------------------

    async def sync_now(self, wait: bool = False) -> dict[str, Any]:
        """Run a round now and answer with what it moved.

        With the sync loop running, the loop runs the round and this waits
        for it at most :data:`SYNC_WAIT_SECONDS`; ``wait`` is accepted for
        clients that ask to wait, and changes nothing.

        Raises:
            NoMesh: this device has no storage yet.
            StorageUnavailable: storage failed, or did not finish the round in
                time (the loop keeps trying in the background).
            MeshError: the round was refused for another reason.
        """
        if self.engine is None:
            raise NoMesh()
        if self._loop_running:
            report = await self._round_of_loop()
        else:
            report = await self.sync_round()
        return {**report, "storage": self.device.storage_url}

    async def _round_of_loop(self) -> dict[str, Any]:
        """The report of a loop round that began after this call.

        Raises:
            StorageUnavailable: the round did not end in time, or failed.
            MeshError: the round failed for another reason.
        """
        wanted = await self._round_from_loop(SYNC_WAIT_SECONDS)
        if self._rounds_ended >= wanted and self._rounds_stored >= wanted:
            return self.last_round

        # Still running: a hung storage holds it, and the loop goes on.
        if self._rounds_ended < wanted or self._last_failure is None:
            raise StorageUnavailable(
                f"Storage has not answered within {SYNC_WAIT_SECONDS:.0f} s: "
                "this device keeps trying in the background, and changes made "
                "here are kept until storage takes them",
                url=self.device.storage_url,
            )
        failure = self._last_failure
        raise type(failure)(failure.message, **failure.details)

    def _round_over(self, number: int, failure: MeshError | None) -> None:
        """Note that round ``number`` ended, and how."""
        self._rounds_ended = number
        if failure is not None:
            self._last_failure = failure

        # Wake every caller waiting for this round, then arm the next wait.
        self._round_ended.set()
        self._round_ended = trio.Event()

    async def _round_from_loop(self, seconds: float) -> int:
        """Ask the sync loop for a round; wait at most ``seconds`` for its end.

        Only the loop runs rounds, so a caller that stops waiting leaves the
        round going on (and, if storage fails, retried) in the background.

        Returns:
            The number of the first round that began after this call.
        """
        wanted = self._rounds_begun + 1
        self.wake()
        with trio.move_on_after(seconds):
            while self._rounds_ended < wanted:
                await self._round_ended.wait()
        return wanted

    async def _push_now(self) -> bool:
        """Push what this device just committed, waiting at most
        :data:`PUSH_WAIT_SECONDS` for storage to take it.

        Without a running loop (a node used without the daemon) the round
        runs here, to its end.

        Returns:
            True when a round that began after the change reached storage.
        """
        if self.engine is None:
            return False
        if not self._loop_running:
            return await self._round_here()

        # The next round to begin is the first one that carries the change.
        wanted = await self._round_from_loop(PUSH_WAIT_SECONDS)
        if self._rounds_stored < wanted:
            logger.info("Sync push still under way: the change is saved here")
        return self._rounds_stored >= wanted

    async def _round_here(self) -> bool:
        """One round in the caller's task; an outage is left to the loop."""
        try:
            await self.sync_round()
        except StorageUnavailable as exc:
            logger.warning("Sync deferred: %s", exc.message)
            return False
        except MeshError as exc:
            logger.debug("Sync round skipped: %s", exc)
            return False
        return True

    # -- device.rotate_key ------------------------------------------------------

    async def rotate_key(self, passphrase: str | None) -> dict[str, Any]:
        """Rotate this device's keys: log entry, keystore, then the new keys.

        The keystore is replaced (keeping the old keys, to open old data)
        before the entry is applied, so a crash never leaves a log naming
        keys this device does not have.

        Raises:
            InvalidInput: a protected keystore and no passphrase.
            WrongPassphrase: the passphrase does not open the keystore.
            NoMesh / DeviceRevoked: this device is not an active member.
        """
        # TODO: if the daemon dies between replacing the keystore and storing
        # the entry, it restarts with keys the log does not know and shows
        # "joining"; the old keys are kept in the keystore, but nothing yet
        # uses them to finish or undo the rotation by itself.
        # TODO: a rotation that loses a fork to a concurrent membership change
        # leaves this device with keys the log does not name; the old keys are
        # in the keystore, but loading does not fall back to them yet.
        # TODO: ops that another device sealed to the old encryption key before
        # it saw the rotation stay held here, because the replica reads with
        # the current key only.
        keystore = Keystore(self.device.home)
        async with self._round_lock:
            try:
                secrets = await trio.to_thread.run_sync(keystore.load, passphrase)
            except Locked:
                raise InvalidInput(
                    "Rotating keys re-seals the keystore: give its passphrase",
                    field="passphrase",
                ) from None
            new_keys = DeviceKeys.generate()
            entry = self.device.prepare_rotation(new_keys)
            await trio.to_thread.run_sync(
                keystore.replace, secrets.rotated(new_keys), passphrase
            )
            self.device.complete_rotation(entry, new_keys)
        rotated_at = self.device.clock()
        self.events.publish("device.key_rotated", device_id=self.device.device_id)
        self.watch.publish_changes()
        pushed = await self._push_now()
        return {
            "device_id": self.device.device_id,
            "rotated_at": rotated_at,
            "pushed": pushed,
        }

    # -- auth.* ----------------------------------------------------------------

    async def prove(
        self, challenge: str, audience: str | None, threshold: bool
    ) -> dict[str, Any]:
        result = self.device.prove(challenge, audience or "", threshold)
        if threshold:
            result["pushed"] = await self._push_now()
        return result

    async def auth_proof(self, id: str) -> dict[str, Any]:
        # A round first, to fetch the approvals made on other devices.
        await self._push_now()
        return self.device.auth_proof(id)

    async def verify(
        self,
        proof: dict[str, Any],
        challenge: str | None = None,
        audience: str | None = None,
    ) -> dict[str, Any]:
        entries = [entry.encode() for entry in self.device.require_log().entries]
        result = verify_proof(
            proof,
            entries,
            self.device.clock(),
            challenge=challenge,
            audience=audience,
        )
        return result.to_json()

    # -- delegation.* ------------------------------------------------------------

    async def delegate(
        self, to: str, capability: str, expires: str | None
    ) -> dict[str, Any]:
        capabilities = [name.strip() for name in capability.split(",") if name.strip()]
        expires_at = parse_expiry(expires, self.device.clock())
        result = self.device.issue_delegation(
            parse_agent_key(to), capabilities, expires_at
        )
        self.watch.publish_paths([f"delegations/{result['id']}"])
        result["pushed"] = await self._push_now()
        return result

    async def delegations(self) -> list[dict[str, Any]]:
        return self.device.delegations()

    # -- The method table rows -------------------------------------------------

    def methods(self) -> list[Method]:
        """The rows this node adds to the daemon's method table."""
        return mesh_methods(lambda: self)


def mesh_methods(node: Callable[[], MeshNode]) -> list[Method]:
    """The mesh rows of the method table, served by whatever ``node`` returns.

    The daemon declares them before its keys are open, so a locked device
    answers each mesh method with "locked" rather than "method not found".
    """

    def handler(attribute: str) -> Handler:
        async def call(**params: Any) -> Any:
            return await getattr(node(), attribute)(**params)

        call.__name__ = attribute
        return call

    name = optional("device_name", "string", default="", description="a name")
    kind = optional("device_kind", "string", default="other", description="phone…")
    return [
        # -- mesh ----------------------------------------------------------
        Method(
            "mesh.create",
            handler("create"),
            params=(
                required("label", "string"),
                required("storage", "string"),
                name,
                kind,
            ),
            summary="Create a mesh with this device as its first member",
            result="{did, device_id, label, pushed}",
        ),
        Method(
            "mesh.invite",
            handler("invite"),
            summary="An invite string",
            result="{invite}",
        ),
        Method(
            "mesh.did_document",
            handler("did_document"),
            summary="The W3C DID document of the active devices",
            result="a DID document",
        ),
        Method(
            "mesh.set_threshold",
            handler("set_threshold"),
            params=(required("threshold", "integer"),),
            summary="Propose a new threshold, approved by this device",
            result="{proposal_id, id, approvals, required, state, pushed}",
        ),
        # -- device --------------------------------------------------------
        Method(
            "device.list",
            handler("devices"),
            summary="The devices of the mesh",
            result="[{id, name, kind, state, enrolled_at}]",
        ),
        Method(
            "device.revoke",
            handler("revoke"),
            params=(
                required("device_id", "string"),
                optional("reason", "string", default=""),
                optional(
                    "threshold",
                    "integer",
                    default=0,
                    description="the threshold after it; 0 keeps it",
                ),
            ),
            summary="Propose revoking a device, approved by this device",
            result=(
                "{proposal_id, id, approvals, required, state, pushed,"
                " device_id, cutoff, cutoff_fresh}"
            ),
        ),
        # -- enrollment and recovery ---------------------------------------
        Method(
            "enrollment.request",
            handler("request_enrollment"),
            params=(required("invite", "string"), name, kind),
            summary="On a new device: ask the mesh to enroll it",
            result="{request_id, code, required_approvals, pushed}",
        ),
        Method(
            "enrollment.status",
            handler("request_status"),
            summary="This device's own join or recovery request",
            result=(
                "{request_id, code, approvals, rejections, required, state,"
                " device_state}"
            ),
        ),
        Method(
            "recovery.request",
            handler("request_recovery"),
            params=(
                required("invite", "string"),
                required("replace", "array"),
                name,
                kind,
            ),
            summary="On a new device: recover the identity, revoking lost devices",
            result="{request_id, code, required_approvals, pushed}",
        ),
        # -- proposals -----------------------------------------------------
        Method(
            "proposal.list",
            handler("pending"),
            summary="Proposals waiting for approvals",
            result=(
                "[{id, kind, summary, reason, approvals, rejections, required,"
                " expires_at, threshold?, cutoffs?}]"
            ),
        ),
        Method(
            "proposal.approve",
            handler("approve"),
            params=(required("id", "string"), optional("code", "string", "null")),
            summary="Approve a proposal (enroll and recover need the code)",
            result="{id, approvals, required, state, pushed}",
        ),
        Method(
            "proposal.reject",
            handler("reject"),
            params=(required("id", "string"),),
            summary="Reject a proposal",
            result="{id, state, pushed}",
        ),
        # -- passport ------------------------------------------------------
        Method(
            "passport.get",
            handler("passport_get"),
            params=(optional("path", "string", "null"),),
            summary="The whole passport or one path",
            result="the JSON value",
        ),
        Method(
            "passport.set",
            handler("passport_set"),
            params=(
                required("path", "string"),
                required(
                    "value",
                    "string",
                    "number",
                    "boolean",
                    "object",
                    "array",
                    "null",
                ),
            ),
            summary="Set a path of the passport",
            result="{path, op_id, pushed}",
        ),
        Method(
            "passport.delete",
            handler("passport_delete"),
            params=(required("path", "string"),),
            summary="Delete a path of the passport",
            result="{path, op_id, pushed}",
        ),
        Method(
            "passport.add_capability",
            handler("add_capability"),
            params=(
                required("name", "string"),
                optional(
                    "data", "object", "array", "string", "number", "boolean", "null"
                ),
            ),
            summary="Add a capability (capabilities/<id>)",
            result="{capability_id, op_id, pushed}",
        ),
        Method(
            "conflict.list",
            handler("conflicts"),
            summary="Unresolved conflicts (manual mode)",
            result="[{id, path, candidates}]",
        ),
        Method(
            "conflict.resolve",
            handler("resolve"),
            params=(required("id", "string"), required("pick", "string")),
            summary="Settle a conflict by picking one op",
            result="{id, op_id, pushed}",
        ),
        # -- sync ----------------------------------------------------------
        Method(
            "sync.now",
            handler("sync_now"),
            params=(optional("wait", "boolean", default=False),),
            summary="Push and pull now",
            result="{pushed, pulled, held, rejected, storage}",
        ),
        # -- key rotation, proofs and delegations --------------------------
        Method(
            "device.rotate_key",
            handler("rotate_key"),
            params=(
                optional(
                    "passphrase",
                    "string",
                    "null",
                    description="needed when the keystore is protected",
                ),
            ),
            summary="Rotate this device's keys (it keeps its device id)",
            result="{device_id, rotated_at, pushed}",
        ),
        Method(
            "auth.prove",
            handler("prove"),
            params=(
                required("challenge", "string"),
                optional("audience", "string", "null"),
                optional("threshold", "boolean", default=False),
            ),
            summary="A proof of this device, or start one of threshold devices",
            result="the proof, or {proposal_id, approvals, required, state, pushed}",
        ),
        Method(
            "auth.proof",
            handler("auth_proof"),
            params=(required("id", "string"),),
            summary="A threshold proof: its approvals, and the proof once complete",
            result="{proposal_id, approvals, required, state, proof?}",
        ),
        Method(
            "auth.verify",
            handler("verify"),
            params=(
                required("proof", "object"),
                optional("challenge", "string", "null"),
                optional("audience", "string", "null"),
            ),
            summary="Check a proof against this device's mesh log",
            result="{valid, signers, reason}",
        ),
        Method(
            "delegation.issue",
            handler("delegate"),
            params=(
                required("to", "string"),
                required("capability", "string"),
                optional("expires", "string", "null"),
            ),
            summary="Delegate capabilities to an agent key",
            result="the delegation, and pushed",
        ),
        Method(
            "delegation.list",
            handler("delegations"),
            summary="The delegations of the passport, each valid or not",
            result="[{id, agent_key, capabilities, expires_at, issuer, valid}]",
        ),
    ]


def check_text(value: str, field: str, limit: int, required: bool = False) -> None:
    """Names and labels are shown on other devices' screens: one line of
    printable text of bounded length.

    Raises:
        InvalidInput: empty when required, too long, or with control characters.
    """
    if required and not value.strip():
        raise InvalidInput(f"The {field} must not be empty", field=field)
    if len(value) > limit:
        raise InvalidInput(
            f"The {field} is longer than {limit} characters", field=field
        )
    if any(not character.isprintable() for character in value):
        raise InvalidInput(
            f"The {field} must be one line of printable text", field=field
        )


async def _readable(backend: StorageBackend, name: LogEntryName) -> bytes | None:
    """A listed mesh-log entry's bytes; None when they are too large to be
    one, which makes the object damaged like one whose bytes break its name.

    Raises:
        NotFound: the object is gone since the listing.
        StorageUnavailable: the storage failed, retries included.
    """
    try:
        return await backend.get(name, MAX_OBJECT_SIZE)
    except TooLarge:
        return None


async def check_storage(url: str) -> str:
    """The storage URL a mesh will use, checked before anything is kept.

    A plain path must be an absolute path to an existing folder (the daemon's
    working folder means nothing to the person typing it); it comes back
    normalized, so ``/a/storage/../storage`` is ``/a/storage``. Any URL must
    be served by an installed fsspec driver and answer a listing. Then a
    small probe object is written, read back and deleted
    (:meth:`~meshd.sync.storage.StorageBackend.probe_writes`): creating,
    joining and recovering all write to the storage at once, and storage
    that only answers reads would leave the device stuck.

    Raises:
        InvalidInput: the URL or path cannot be used.
        StorageUnavailable: the storage does not answer, or refuses writes.
    """
    url = _storage_location(url)

    # Every failure a file system can raise leaves here typed, as one line.
    try:
        backend = StorageBackend(url, retry=RetryPolicy(attempts=2, base_delay=0.2))
        await backend.list()
        await backend.probe_writes()
    except MeshError:
        raise
    except Exception as error:
        raise StorageUnavailable(
            f"The storage cannot be used: {one_line(error)}", field="storage"
        ) from error
    return url


def _check_passport_room(passport: dict[str, Any], path: str, value: Any) -> None:
    """Refuse a local write after which the passport would pass its limit.

    Raises:
        InvalidInput: bad path or value.
        PassportFull: the passport, with ``value`` at ``path``, would be
            larger than :data:`MAX_PASSPORT_SIZE`.
    """
    # The same checks as the write itself, so the tree below can be built.
    validate_path(path)
    encode_value(value)

    set_in_tree(passport, path, value)
    size = len(encode_json(passport))
    if size > MAX_PASSPORT_SIZE:
        raise PassportFull(
            f"The passport would be {size} bytes, over its limit of "
            f"{MAX_PASSPORT_SIZE}: delete or shorten other values first",
            size=size,
            limit=MAX_PASSPORT_SIZE,
            field="value",
        )


def _storage_location(url: str) -> str:
    """The storage as typed, a folder's path normalized.

    Raises:
        InvalidInput: nothing is named, or a folder is relative or missing.
    """
    url = url.strip()
    if not url:
        raise InvalidInput("Name the storage: a folder or a URL", field="storage")
    if "://" in url and not url.startswith("file://"):
        return url

    prefix = "file://" if url.startswith("file://") else ""
    folder = Path(url.removeprefix("file://"))
    if not folder.is_absolute():
        raise InvalidInput(
            f"The storage folder {url[:MAX_LABEL_LENGTH]!r} must be an absolute path",
            field="storage",
        )
    if not folder.is_dir():
        raise InvalidInput(
            f"The storage folder {folder} does not exist: create it first",
            field="storage",
        )
    return prefix + os.path.normpath(folder)


def _check_kind(kind: str) -> None:
    if kind not in DEVICE_KINDS:
        raise InvalidInput(
            f"Unknown device kind {kind[:20]!r}: use one of {', '.join(DEVICE_KINDS)}",
            field="device_kind",
        )


# Problems said plainly; any other reason is a bad object served by storage.
_PROBLEM_TEXTS = {
    "object_missing": "An object is missing from storage: {name} ({reason})",
    "device_cloned": (
        "Another copy of this device is writing: {name} holds ops under this"
        " device's id that it did not write. Both copies share one id, so"
        " revoking either revokes both: run 'meshctl rotate-key' on the copy to"
        " keep (only there), then stop the other; its later ops are refused"
        " ({reason})"
    ),
    "op_equivocation": (
        "Device {device} signed two different ops at one sequence: {name} was"
        " refused, the ops accepted first are kept ({reason})"
    ),
}


def _problem_warning(problem: Problem) -> str:
    """One storage problem as a status warning."""
    text = _PROBLEM_TEXTS.get(
        problem.reason, "Storage served a bad object: {name} ({reason})"
    )
    # Segment names read devices/<device id>/<first>-<last>-<hash>.
    parts = problem.name.split("/")
    device = parts[1] if len(parts) == 3 and parts[0] == "devices" else "-"
    return text.format(name=problem.name, reason=problem.reason, device=device)


def _joining_warning(request: str | None) -> str:
    """What a joining device tells the person, by how its request stands."""
    if request == PENDING:
        return "This device is waiting for approvals: type its code on other devices"
    if request == AWAITING_FINALIZER:
        return (
            "This device's request has all its approvals: a device that stays in"
            " the mesh completes it on its next sync"
        )
    if request == LOCKED:
        closed = "was locked after too many wrong codes"
    elif request == REJECTED:
        closed = "was rejected: too few of the devices that could approve it are left"
    elif request == CANCELLED:
        # Nobody cancelled it: a proposal holds only on the head it was made on.
        closed = (
            "was closed: the mesh changed (a device joined or left) before it was"
            " approved"
        )
    elif request is None:
        closed = "is no longer known"
    else:
        closed = f"is {request}"
    return (
        f"This device's join request {closed}: run 'meshctl join' (or "
        "'meshctl recover') again with an invite to ask anew"
    )


def _state_warning(state: str) -> str:
    if state == "joining":
        return "This device is waiting for approvals: type its code on other devices"
    if state == "revoked":
        return "This device has been revoked from the mesh"
    return "This device is not part of a mesh"
