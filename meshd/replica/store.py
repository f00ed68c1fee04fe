"""The local store: one SQLite file per device home.

The store keeps every object this device accepted (mesh-log entries,
proposals and approvals as opaque signed bytes; ops; snapshots), the held
objects waiting to be retried, the merged state derived from them, sync
cursors and local settings. The replica changes an accepted object and the
state derived from it in one transaction, so a crash leaves either both or
neither.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode ``NORMAL``
survives a crash of the process but may lose the last commits on power loss;
an op acknowledged to the person or a peer must survive both, so every
commit waits for the disk.

Schema changes are numbered migrations; ``schema_version`` records the last
applied one and opening a store applies the rest in one transaction each.
Every sqlite3 error leaves this module as :class:`~meshd.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from meshd.errors import StoreError

logger = logging.getLogger(__name__)

STORE_FILE = "store.sqlite3"
# Only this user reads or writes the store and SQLite's files beside it.
_PRIVATE_MODE = 0o600

_MIGRATION_1 = """
CREATE TABLE mesh_entries (
    position INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE proposals (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE approvals (
    id TEXT PRIMARY KEY, proposal_id TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX approvals_by_proposal ON approvals (proposal_id);
CREATE TABLE ops (
    op_id TEXT PRIMARY KEY, author TEXT NOT NULL, sequence INTEGER NOT NULL,
    data BLOB NOT NULL, UNIQUE (author, sequence));
CREATE TABLE heads (device_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE path_states (path TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE conflicts (
    id TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE held (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, reason TEXT NOT NULL,
    received_ms INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE replica_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

# Wrong confirmation codes typed on this device, per join or recovery
# request: kept on disk so that restarting the daemon gives no new guesses.
_MIGRATION_2 = """
CREATE TABLE wrong_codes (
    proposal_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL);
"""

# Append only: migration n+1 turns schema n into n+1. Never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (_MIGRATION_1, _MIGRATION_2)

P = ParamSpec("P")
T = TypeVar("T")


def _translated(function: Callable[P, T]) -> Callable[P, T]:
    """Turn sqlite3 errors into StoreError at the module boundary."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"The local store failed: {exc}") from exc

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


# SQLite's companion files of a store: its write-ahead log, the log's index
# and the rollback journal it uses while changing the journal mode.
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def _make_private(path: Path) -> None:
    """Make the store file 0600, creating it empty if it is missing.

    The store holds the passport in clear: the home folder is private, but a
    copy or a backup keeps each file's own mode. SQLite gives the files it
    adds beside the store the mode of the store file, so a new store is
    created 0600 before SQLite opens it; a store made by an older version is
    narrowed, with any companion files already there.

    Raises:
        StoreError: the file cannot be created or its mode changed.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _PRIVATE_MODE)
        try:
            os.fchmod(descriptor, _PRIVATE_MODE)
        finally:
            os.close(descriptor)
        for suffix in _COMPANION_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{path}{suffix}", _PRIVATE_MODE)
    except OSError as exc:
        raise StoreError(
            f"The local store {path} cannot be made private: {exc}"
        ) from exc


class Store:
    """One device's SQLite store. Not thread-safe: one owner at a time."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._depth = 0
        self.path = path

    @classmethod
    @_translated
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the store file and bring its schema up to date.

        Raises:
            StoreError: the file cannot be opened, is not a store, or is newer
                than this program.
        """
        _make_private(path)
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        store = cls(connection, path)
        store._migrate()
        return store

    @_translated
    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > len(MIGRATIONS):
            raise StoreError(
                f"The store has schema {current}; this program knows {len(MIGRATIONS)}"
            )
        for number in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction():
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO schema_version VALUES (?)", (number,))
            logger.info("Store schema migrated to version %s", number)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit; nested uses join the outer transaction.

        Raises:
            StoreError: the transaction could not be committed (nothing of it
                was applied).
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"The local store failed: {exc}") from exc
        self._depth = 1
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"The local store failed: {exc}") from exc
            raise
        finally:
            self._depth = 0

    @_translated
    def _run(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, parameters)

    def _one(self, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
        row = self._run(sql, parameters).fetchone()
        return None if row is None else row[0]

    # -- Ops --------------------------------------------------------------------

    def add_op(self, op_id: str, author: str, sequence: int, data: bytes) -> None:
        self._run(
            "INSERT INTO ops (op_id, author, sequence, data) VALUES (?, ?, ?, ?)",
            (op_id, author, sequence, data),
        )

    def has_op(self, op_id: str) -> bool:
        return self._one("SELECT 1 FROM ops WHERE op_id = ?", (op_id,)) is not None

    def op_at(self, author: str, sequence: int) -> str | None:
        found: str | None = self._one(
            "SELECT op_id FROM ops WHERE author = ? AND sequence = ?",
            (author, sequence),
        )
        return found

    def ops_between(self, author: str, first: int, last: int) -> list[bytes]:
        """The stored ops of ``author`` at sequences ``first..last``, in order
        (one range read of the author-and-sequence index)."""
        rows = self._run(
            "SELECT data FROM ops WHERE author = ? AND sequence BETWEEN ? AND ?"
            " ORDER BY sequence",
            (author, first, last),
        )
        return [bytes(row[0]) for row in rows]

    def op_ids(self) -> list[str]:
        return [row[0] for row in self._run("SELECT op_id FROM ops ORDER BY rowid")]

    def ops_in_order(self) -> list[bytes]:
        """Every stored op, in the (causal) order it was accepted."""
        return [
            bytes(row[0]) for row in self._run("SELECT data FROM ops ORDER BY rowid")
        ]

    def ops_after(self, version_vector: Mapping[str, int]) -> list[bytes]:
        """Ops that a peer with ``version_vector`` lacks, in causal order."""
        rows = self._run("SELECT author, sequence, data FROM ops ORDER BY rowid")
        return [
            bytes(data)
            for author, sequence, data in rows
            if sequence > version_vector.get(author, 0)
        ]

    def delete_ops_after(self, author: str, cutoff: int) -> int:
        cursor = self._run(
            "DELETE FROM ops WHERE author = ? AND sequence > ?", (author, cutoff)
        )
        return cursor.rowcount

    def op_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM ops"))

    # -- Merged state ---------------------------------------------------------------

    def put_path_state(self, path: str, data: bytes) -> None:
        self._run(
            "INSERT OR REPLACE INTO path_states (path, data) VALUES (?, ?)",
            (path, data),
        )

    def path_states(self) -> list[bytes]:
        return [bytes(row[0]) for row in self._run("SELECT data FROM path_states")]

    def put_conflict(self, path: str, conflict_id: str | None, data: str) -> None:
        """Record the open conflict of a path, or clear it (``conflict_id`` None)."""
        self._run("DELETE FROM conflicts WHERE path = ?", (path,))
        if conflict_id is not None:
            self._run(
                "INSERT INTO conflicts (id, path, data) VALUES (?, ?, ?)",
                (conflict_id, path, data),
            )

    def conflict_rows(self) -> list[tuple[str, str, str]]:
        return [tuple(row) for row in self._run("SELECT id, path, data FROM conflicts")]

    def clear_merged_state(self) -> None:
        self._run("DELETE FROM path_states")
        self._run("DELETE FROM conflicts")

    def meta(self, key: str) -> bytes | None:
        value = self._one("SELECT value FROM replica_meta WHERE key = ?", (key,))
        return None if value is None else bytes(value)

    def put_meta(self, key: str, value: bytes) -> None:
        self._run(
            "INSERT OR REPLACE INTO replica_meta (key, value) VALUES (?, ?)",
            (key, value),
        )

    # -- Held objects -------------------------------------------------------------

    def hold(
        self, object_id: str, kind: str, reason: str, now_ms: int, data: bytes
    ) -> None:
        self._run(
            "INSERT INTO held (id, kind, reason, received_ms, data)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET reason = excluded.reason",
            (object_id, kind, reason, now_ms, data),
        )

    def held(self, kind: str) -> list[tuple[str, str, bytes]]:
        rows = self._run(
            "SELECT id, reason, data FROM held WHERE kind = ? ORDER BY received_ms, id",
            (kind,),
        )
        return [(row[0], row[1], bytes(row[2])) for row in rows]

    def release(self, object_id: str) -> None:
        self._run("DELETE FROM held WHERE id = ?", (object_id,))

    def held_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM held"))

    def held_totals(self, kind: str) -> tuple[int, int]:
        """How many objects of ``kind`` are held, and their size in bytes."""
        row = self._run(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM held WHERE kind = ?",
            (kind,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def is_held(self, object_id: str) -> bool:
        found = self._one("SELECT 1 FROM held WHERE id = ?", (object_id,))
        return found is not None

    # -- Snapshots ----------------------------------------------------------------

    def add_snapshot(self, snapshot_id: str, created_ms: int, data: bytes) -> None:
        self._run(
            "INSERT OR IGNORE INTO snapshots (id, created_ms, data) VALUES (?, ?, ?)",
            (snapshot_id, created_ms, data),
        )

    def prune_snapshots(self, keep: int) -> None:
        """Drop all but the ``keep`` newest snapshots."""
        self._run(
            "DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots"
            " ORDER BY created_ms DESC, rowid DESC LIMIT ?)",
            (keep,),
        )

    def snapshot_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM snapshots"))

    def newest_snapshot(self) -> bytes | None:
        value = self._one(
            "SELECT data FROM snapshots ORDER BY created_ms DESC, rowid DESC LIMIT 1"
        )
        return None if value is None else bytes(value)

    # -- Mesh log, proposals, approvals, heads (opaque to the replica) --------------

    def put_mesh_entry(self, position: int, entry_hash: bytes, data: bytes) -> None:
        self._run(
            "INSERT OR REPLACE INTO mesh_entries (position, hash, data)"
            " VALUES (?, ?, ?)",
            (position, entry_hash, data),
        )

    def mesh_entries(self) -> list[tuple[int, bytes, bytes]]:
        rows = self._run(
            "SELECT position, hash, data FROM mesh_entries ORDER BY position"
        )
        return [(row[0], bytes(row[1]), bytes(row[2])) for row in rows]

    def put_proposal(self, proposal_id: str, data: bytes) -> None:
        self._run(
            "INSERT OR REPLACE INTO proposals (id, data) VALUES (?, ?)",
            (proposal_id, data),
        )

    def proposals(self) -> list[tuple[str, bytes]]:
        rows = self._run("SELECT id, data FROM proposals ORDER BY id")
        return [(row[0], bytes(row[1])) for row in rows]

    def delete_proposal(self, proposal_id: str) -> None:
        with self.transaction():
            self._run("DELETE FROM approvals WHERE proposal_id = ?", (proposal_id,))
            self._run("DELETE FROM proposals WHERE id = ?", (proposal_id,))

    def put_approval(self, approval_id: str, proposal_id: str, data: bytes) -> None:
        self._run(
            "INSERT OR REPLACE INTO approvals (id, proposal_id, data) VALUES (?, ?, ?)",
            (approval_id, proposal_id, data),
        )

    def approvals(self, proposal_id: str) -> list[tuple[str, bytes]]:
        rows = self._run(
            "SELECT id, data FROM approvals WHERE proposal_id = ? ORDER BY id",
            (proposal_id,),
        )
        return [(row[0], bytes(row[1])) for row in rows]

    def set_wrong_codes(self, proposal_id: str, attempts: int) -> None:
        """Record how many wrong codes were typed here for a request."""
        self._run(
            "INSERT OR REPLACE INTO wrong_codes (proposal_id, attempts) VALUES (?, ?)",
            (proposal_id, attempts),
        )

    def wrong_codes(self) -> dict[str, int]:
        """The wrong codes typed here so far, by request id."""
        rows = self._run("SELECT proposal_id, attempts FROM wrong_codes")
        return {row[0]: int(row[1]) for row in rows}

    def put_head(self, device_id: str, data: bytes) -> None:
        self._run(
            "INSERT OR REPLACE INTO heads (device_id, data) VALUES (?, ?)",
            (device_id, data),
        )

    def heads(self) -> dict[str, bytes]:
        rows = self._run("SELECT device_id, data FROM heads")
        return {row[0]: bytes(row[1]) for row in rows}

    # -- Cursors and local settings ------------------------------------------------

    def set_cursor(self, name: str, value: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO cursors (name, value) VALUES (?, ?)", (name, value)
        )

    def cursor(self, name: str) -> str | None:
        found: str | None = self._one(
            "SELECT value FROM cursors WHERE name = ?", (name,)
        )
        return found

    def set_setting(self, key: str, value: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value)
        )

    def setting(self, key: str) -> str | None:
        found: str | None = self._one(
            "SELECT value FROM settings WHERE key = ?", (key,)
        )
        return found

    def schema_version(self) -> int:
        return int(self._one("SELECT MAX(version) FROM schema_version"))
