"""The mesh log: accepted entries, fork choice and rollback refusal.

Theory of operation
-------------------
A :class:`MeshLog` holds the chain of entries this device has accepted and
the :class:`~meshd.mesh.state.MeshState` after each. An entry that extends
the head is checked against the head state and appended. An entry at a
position already taken is a *fork*: it is checked against the state before
that position and the fork rules of :func:`fork_choice` decide which side the
log keeps (every device computes the same). Anything else that does not
extend the accepted head (a shorter chain, a diverging one, a fork deeper
than :data:`MAX_FORK_DEPTH`) is refused with
:class:`~meshd.errors.RollbackRefused`.

:meth:`MeshLog.apply` is strict; :meth:`MeshLog.receive` holds entries that
arrive before their predecessor (storage lists them in any order) and
applies them once it can, so devices that see the same entries in any order
reach the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

from meshd.crypto.encoding import Signed
from meshd.crypto.suite import DeviceKeys, short_id
from meshd.errors import RollbackRefused
from meshd.mesh.changes import Founder, make_genesis
from meshd.mesh.records import EntryBody
from meshd.mesh.state import (
    MeshState,
    entry_hash,
    entry_signers,
    genesis_state,
    invalid,
    is_revocation,
    next_state,
    read_entry,
)
from meshd.mesh.view import MemberInfo
from meshd.mesh.wire import decode_signed

logger = logging.getLogger(__name__)

# Concurrent finalizations and a thief racing the owner produce forks a few
# entries deep; 64 is far beyond any such race and bounds the work a hostile
# store can force (each fork check replays one entry, not the chain).
MAX_FORK_DEPTH = 64
# Entries waiting for their predecessor. Storage lists a whole log at once,
# so a few hundred covers a long catch-up; beyond that, later polls refill it.
MAX_HELD = 512
# Loading a log walks it once; a person's mesh changes a few times a year,
# so a million entries means a hostile store, not a real history.
MAX_ENTRIES = 1_000_000


def fork_choice(incumbent: Signed, challenger: Signed) -> tuple[Signed, int]:
    """The one place where forks are resolved: which of two valid entries at
    the same position the mesh keeps, and the number of the deciding rule.

    Rules, in order; the first that tells the entries apart decides:

    1. A revocation beats a concurrent change that is not one: a thief
       holding one device must not out-race the owner revoking it.
    2. More distinct signers (endorsers and finalizer) beat fewer.
    3. The lower entry hash wins: arbitrary, but the same on every device.
    """
    incumbent_revokes = is_revocation(incumbent)
    if incumbent_revokes != is_revocation(challenger):
        return (incumbent, 1) if incumbent_revokes else (challenger, 1)

    incumbent_signers = len(entry_signers(incumbent))
    challenger_signers = len(entry_signers(challenger))
    if incumbent_signers != challenger_signers:
        winner = incumbent if incumbent_signers > challenger_signers else challenger
        return winner, 2

    return min(incumbent, challenger, key=entry_hash), 3


@dataclass(frozen=True)
class Fork:
    """A fork this device saw: where, who won, by which rule, who equivocated."""

    position: int
    kept: bytes
    dropped: bytes
    rule: int
    equivocators: frozenset[str]


class MeshLog:
    """The accepted chain of mesh-log entries (a MembershipView of its head).

    Args:
        genesis: the Signed genesis entry.
        reader: this device's keys, to read the label and device names.
    """

    def __init__(self, genesis: Signed, reader: DeviceKeys | None = None) -> None:
        self._reader = reader
        self._entries: list[Signed] = [genesis]
        self._states: list[MeshState] = [genesis_state(genesis, reader)]
        self._held: dict[bytes, tuple[Signed, EntryBody]] = {}
        self._forks: list[Fork] = []

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[bytes | Signed],
        reader: DeviceKeys | None = None,
        accepted_head: bytes | None = None,
    ) -> MeshLog:
        """Rebuild a log from stored entries (genesis first, any order after).

        Args:
            entries: Signed entries or their bytes, genesis first (the rest
                in any order).
            reader: this device's keys.
            accepted_head: the newest head this device accepted before; the
                rebuilt log must contain it.

        Raises:
            RollbackRefused: the entries do not reach ``accepted_head``.
            DecodeError / InvalidEntry / BadSignature: the genesis is invalid.
        """
        signed = [e if isinstance(e, Signed) else decode_signed(e) for e in entries]
        if not signed:
            raise invalid("no_genesis", "A mesh log starts with its genesis")
        log = cls(signed[0], reader)
        for entry in signed[1:MAX_ENTRIES]:
            try:
                log.receive(entry)
            except RollbackRefused as exc:
                # Storage keeps the losing side of every fork: not an error.
                logger.debug("Stored mesh entry left aside: %s", exc)
        if accepted_head is not None and log.position_of(accepted_head) is None:
            raise RollbackRefused(
                "The stored log does not reach the head this device accepted"
            )
        return log

    def use_reader(self, keys: DeviceKeys) -> None:
        """Read later entries with new keys (after this device rotated)."""
        self._reader = keys
        self._states[-1] = self.state.read_directory(keys)

    # -- Reading -------------------------------------------------------------------

    @property
    def state(self) -> MeshState:
        return self._states[-1]

    @property
    def head(self) -> bytes:
        return self.state.head_hash

    @property
    def entries(self) -> list[Signed]:
        return list(self._entries)

    @property
    def forks(self) -> list[Fork]:
        return list(self._forks)

    @property
    def held(self) -> int:
        """How many entries wait for their predecessor."""
        return len(self._held)

    def state_at(self, entry_hash: bytes) -> MeshState | None:
        position = self.state.position_of(entry_hash)
        return None if position is None else self._states[position]

    def __contains__(self, entry_hash: object) -> bool:
        return (
            isinstance(entry_hash, bytes) and self.position_of(entry_hash) is not None
        )

    # -- MembershipView, answered by the head state --------------------------------

    @property
    def mesh_id(self) -> bytes:
        return self.state.mesh_id

    @property
    def head_hash(self) -> bytes:
        return self.state.head_hash

    @property
    def position(self) -> int:
        return self.state.position

    @property
    def threshold(self) -> int:
        return self.state.threshold

    @property
    def vault_public_key(self) -> bytes:
        return self.state.vault_public_key

    def member(self, device_id: str) -> MemberInfo | None:
        return self.state.member(device_id)

    def active_members(self) -> list[MemberInfo]:
        return self.state.active_members()

    def position_of(self, entry_hash: bytes) -> int | None:
        return self.state.position_of(entry_hash)

    def member_at(self, device_id: str, entry_hash: bytes) -> MemberInfo | None:
        return self.state.member_at(device_id, entry_hash)

    # -- Accepting entries -----------------------------------------------------------

    def apply(self, signed: Signed) -> MeshState:
        """Accept one entry that extends the head, or that wins a fork.

        An entry already accepted is ignored (storage re-lists old entries).

        Raises:
            RollbackRefused: the entry does not extend the accepted head and
                does not win a fork against it.
            InvalidEntry: problem ``out_of_order`` when its predecessor is
                missing (:meth:`receive` holds such entries instead).
            InvalidEntry / BadSignature / LockoutRefused / DecodeError: the
                entry breaks a rule of the log.
        """
        return self._apply(signed, read_entry(signed))

    def _apply(self, signed: Signed, body: EntryBody) -> MeshState:
        head = entry_hash(signed)
        if head in self:
            return self.state
        if body.position == self.position + 1 and body.previous == self.head:
            after = next_state(self.state, signed, self._reader, body, head)
            return self._append(after, signed)
        if body.position > self.position + 1:
            raise invalid(
                "out_of_order",
                f"Entry at {body.position} arrived before its predecessor",
                position=body.position,
            )
        if body.position < 1 or body.position > self.position:
            raise RollbackRefused(
                f"Entry at {body.position} does not extend head {self.position}",
                position=body.position,
            )
        return self._contest(signed, body.position, body.previous)

    def receive(self, signed: Signed) -> MeshState:
        """Like :meth:`apply`, but hold an entry whose predecessor is not here
        yet, and apply held entries once they fit.

        Raises: as :meth:`apply`, for entries that can be judged now.
        """
        body = read_entry(signed)
        if self.position_of(body.previous) is None and body.position > 0:
            self._hold(signed, body)
            return self.state
        state = self._apply(signed, body)
        if self._held:
            self._release_held()
        return state

    def _hold(self, signed: Signed, body: EntryBody) -> None:
        if len(self._held) >= MAX_HELD:
            logger.debug("Mesh entry dropped: %s entries already held", MAX_HELD)
            return
        self._held[entry_hash(signed)] = (signed, body)

    def _release_held(self) -> None:
        # Each pass applies at least one entry or stops: bounded by MAX_HELD.
        for _ in range(MAX_HELD + 1):
            ready = [
                (key, entry, body)
                for key, (entry, body) in self._held.items()
                if self.position_of(body.previous) is not None
            ]
            if not ready:
                return
            for key, entry, body in ready:
                del self._held[key]
                try:
                    self._apply(entry, body)
                except Exception as exc:
                    logger.debug("Held mesh entry refused: %s", exc)

    def _append(self, state: MeshState, signed: Signed) -> MeshState:
        self._entries.append(signed)
        self._states.append(state)
        logger.info("Mesh entry %s accepted: %s", state.position, state.last_kind)
        return state

    def _contest(self, challenger: Signed, position: int, previous: bytes) -> MeshState:
        """A second valid entry at ``position``: apply the fork rules."""
        if self.position - position >= MAX_FORK_DEPTH:
            raise RollbackRefused(f"A fork {self.position - position} entries deep")
        parent = self._states[position - 1]
        if previous != parent.head_hash:
            raise RollbackRefused(
                f"Entry at {position} belongs to a chain that diverged earlier",
                position=position,
            )
        candidate = next_state(parent, challenger, self._reader)
        incumbent = self._entries[position]
        winner, rule = fork_choice(incumbent, challenger)

        # Devices that wrote both sides equivocated; status shows them. Only
        # the entry's own signers count: an honest device may approve two
        # concurrent proposals, but after writing one entry its head moves on,
        # so it never writes a second at the same position.
        both = frozenset(incumbent.signers()) & frozenset(challenger.signers())
        loser = challenger if winner is incumbent else incumbent
        self._forks.append(
            Fork(position, entry_hash(winner), entry_hash(loser), rule, both)
        )
        equivocators = self.state.equivocators | both
        logger.warning(
            "Mesh fork at %s resolved by rule %s; equivocators: %s",
            position,
            rule,
            ", ".join(short_id(device) for device in sorted(both)) or "none",
        )
        if winner is incumbent:
            self._states[-1] = replace(self.state, equivocators=equivocators)
            raise RollbackRefused(
                f"Entry at {position} lost a fork to the accepted one (rule {rule})",
                position=position,
                rule=rule,
            )

        del self._entries[position:]
        del self._states[position:]
        return self._append(replace(candidate, equivocators=equivocators), challenger)


def create_mesh(
    label: str, keys: DeviceKeys, name: str, kind: str, now: int
) -> tuple[MeshLog, Signed]:
    """A new one-device mesh (threshold 1, loudly warned about in status).

    Args:
        now: milliseconds since the epoch.
    """
    genesis = make_genesis(label, [Founder(keys, name, kind)], 1, now)
    log = MeshLog(genesis, keys)
    logger.info("Mesh %s created by %s", log.state.did[:20], short_id(keys.device_id))
    return log, genesis
