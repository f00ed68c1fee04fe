"""What changed on this device, told to apps as events (see docs/events.md).

Theory of operation
-------------------
A :class:`DeviceWatch` remembers what it last told: the mesh state, the
version vector of the passport replica and the paths in conflict. After
every sync round and every local change, the node calls
:meth:`DeviceWatch.publish_changes`, which compares the device with what it
remembers, publishes one event per difference and remembers the new facts.

Staying cheap: mesh states are replaced, never changed in place, so an
unchanged mesh is the very object remembered; the version vector is one
small dict per device; conflicts are looked at only when ops came in. Only
the ops a round brought are opened to learn their paths, and at most
:data:`MAX_OPENED_OPS` of them. Proposals and answers come from the device,
which notes each one as sync brings it in.

Events carry ids, kinds and passport paths: never passport values or keys.
"""

from __future__ import annotations

import logging

from meshd.crypto.encoding import Signed
from meshd.device import Device, ReceivedProposal
from meshd.errors import MeshError, UnknownProposal
from meshd.events import EventBus
from meshd.mesh.records import EntryBody
from meshd.mesh.state import MeshState, read_entry
from meshd.mesh.vaults import proposal_id
from meshd.replica.op import decode_op
from meshd.replica.replica import Replica, open_stored_payload

logger = logging.getLogger(__name__)

# Paths one passport.changed event lists; the rest are counted in ``more``.
MAX_LISTED_PATHS = 20
# Ops opened per look to learn their paths: opening one costs about as much
# as checking it did, so a round that brought a whole passport (a device that
# just joined) is not paid twice.
MAX_OPENED_OPS = 100


class DeviceWatch:
    """Publishes what changed on ``device`` since it last looked."""

    def __init__(self, device: Device, events: EventBus) -> None:
        self.device = device
        self.events = events
        log = device.log
        self._state: MeshState | None = None if log is None else log.state
        replica = device.replica
        self._vector: dict[str, int] = (
            {} if replica is None else replica.version_vector()
        )
        self._conflicts = _conflict_paths(replica)

    def publish_changes(self) -> None:
        """Publish an event for each change since the last call.

        Answers come before the mesh changes they may have completed, and
        those before the passport ops they may have let in.
        """
        self._publish_received()
        self._publish_mesh_changes()
        self._publish_passport_changes()

    # -- Proposals and answers ---------------------------------------------------

    def _publish_received(self) -> None:
        for item in self.device.take_received():
            if isinstance(item, ReceivedProposal):
                self.events.publish(
                    "proposal.received",
                    id=item.id,
                    kind=item.kind,
                    summary=item.summary,
                )
            elif item.device_id != self.device.device_id:
                # This device's own answers, read back from storage, are old news.
                self.events.publish(
                    "proposal.answered",
                    id=item.proposal_id,
                    device_id=item.device_id,
                    approved=item.approved,
                )

    # -- The mesh log --------------------------------------------------------------

    def _publish_mesh_changes(self) -> None:
        log = self.device.log
        before = self._state
        if log is None or log.state is before:
            return
        after = self._state = log.state

        # A mesh just created or asked to join is told by its own event.
        if before is None or before.mesh_id != after.mesh_id:
            return
        entries = log.entries
        for position in range(_common_position(before, after) + 1, len(entries)):
            body = read_entry(entries[position])
            self._publish_endorsements(body)
            self.events.publish("mesh.changed", position=position, kind=body.kind)
        self._publish_membership(before, after)

    def _publish_endorsements(self, body: EntryBody) -> None:
        """Answers that arrived only inside the entry they completed.

        A device that approves last writes the entry at once and never
        publishes that approval on its own; answers received earlier were
        told when they came.
        """
        if not body.proposal:
            return
        identifier = proposal_id(Signed.decode(body.proposal).body)
        try:
            known = set(self.device.book.get(identifier).approvals)
        except UnknownProposal:
            known = set()
        for endorsement in body.approvals:
            if endorsement.signer in known | {self.device.device_id}:
                continue
            self.events.publish(
                "proposal.answered",
                id=identifier.hex(),
                device_id=endorsement.signer,
                approved=True,
            )

    def _publish_membership(self, before: MeshState, after: MeshState) -> None:
        active_before, active_after = set(before.active_ids()), set(after.active_ids())
        for device_id in sorted(active_after - active_before):
            self.events.publish("device.added", device_id=device_id)
        for device_id in sorted(active_before - active_after):
            self.events.publish("device.revoked", device_id=device_id)
        if after.threshold != before.threshold:
            self.events.publish("threshold.changed", threshold=after.threshold)

    # -- The passport --------------------------------------------------------------

    def _publish_passport_changes(self) -> None:
        replica = self.device.replica
        if replica is None:
            return
        vector = replica.version_vector()
        if vector == self._vector:
            return
        before, self._vector = self._vector, vector
        self._publish_conflicts(replica)

        # This device's own writes are told by the handler that made them.
        ranges = {
            author: (before.get(author, 0) + 1, last)
            for author, last in sorted(vector.items())
            if author != self.device.device_id and last > before.get(author, 0)
        }
        if not ranges:
            return
        paths, unread = self._changed_paths(replica, ranges)
        self.publish_paths(paths, unread)

    def publish_paths(self, paths: list[str], unread: int = 0) -> None:
        """Publish ``passport.changed``: at most :data:`MAX_LISTED_PATHS`
        paths, and in ``more`` how many changes it does not list."""
        more = max(len(paths) - MAX_LISTED_PATHS, 0) + unread
        data: dict[str, object] = {"paths": paths[:MAX_LISTED_PATHS]}
        if more:
            data["more"] = more
        self.events.publish("passport.changed", **data)

    def _changed_paths(
        self, replica: Replica, ranges: dict[str, tuple[int, int]]
    ) -> tuple[list[str], int]:
        """The distinct paths of the ops in ``ranges``, and how many ops were
        not read: past the budget, taken with a snapshot, or unreadable."""
        paths: dict[str, None] = {}
        unread = 0
        budget = MAX_OPENED_OPS
        for author, (first, last) in ranges.items():
            wanted = last - first + 1
            read = min(wanted, budget)
            stored = []
            if read:
                stored = self.device.store.ops_between(author, first, first + read - 1)
            for data in stored:
                try:
                    path = open_stored_payload(decode_op(data), replica.reader).path
                except MeshError as exc:
                    logger.debug("Passport op not read for its path: %s", exc)
                    unread += 1
                    continue
                paths[path] = None
            budget -= read
            unread += wanted - len(stored)
        return list(paths), unread

    def _publish_conflicts(self, replica: Replica) -> None:
        """Tell each path that came into conflict (manual mode only)."""
        now = _conflict_paths(replica)
        for path in sorted(now - self._conflicts):
            self.events.publish("conflict.opened", path=path)
        self._conflicts = now


def _conflict_paths(replica: Replica | None) -> frozenset[str]:
    if replica is None:
        return frozenset()
    return frozenset(conflict.path for conflict in replica.conflicts())


def _common_position(before: MeshState, after: MeshState) -> int:
    """The last position where both states hold the same entry: the head of
    ``before`` when the log only grew, lower when a fork replaced entries."""
    position = after.position_of(before.head_hash)
    if position is not None:
        return position
    for position in range(min(before.position, after.position), -1, -1):
        if before.hash_at(position) == after.hash_at(position):
            return position
    return -1
