"""The SQLite store: schema, opaque objects, errors."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshd.errors import StoreError
from meshd.replica.store import MIGRATIONS, Store


def test_a_new_store_is_created_at_the_latest_schema_in_wal_mode(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "store.sqlite3")
    assert store.schema_version() == len(MIGRATIONS)
    store.close()
    connection = sqlite3.connect(tmp_path / "store.sqlite3")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_mesh_log_entries_and_proposals_come_back_as_stored(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store.sqlite3")
    with store.transaction():
        store.put_mesh_entry(1, b"h1", b"entry-1")
        store.put_mesh_entry(0, b"h0", b"entry-0")
        store.put_proposal("p1", b"request")
        store.put_approval("a1", "p1", b"approval")
        store.put_head("dev", b"head")
        store.set_cursor("storage", "42")
        store.set_setting("theme", "dark")
    store.close()

    store = Store.open(tmp_path / "store.sqlite3")
    assert store.mesh_entries() == [(0, b"h0", b"entry-0"), (1, b"h1", b"entry-1")]
    assert store.proposals() == [("p1", b"request")]
    assert store.approvals("p1") == [("a1", b"approval")]
    assert store.heads() == {"dev": b"head"}
    assert (store.cursor("storage"), store.setting("theme")) == ("42", "dark")
    store.delete_proposal("p1")
    assert store.proposals() == [] and store.approvals("p1") == []


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store.sqlite3")
    with pytest.raises(StoreError), store.transaction():
        store.add_op("op-1", "dev", 1, b"data")
        store.add_op("op-2", "dev", 1, b"same sequence")  # violates uniqueness
    assert store.op_ids() == []


def test_a_store_from_a_newer_program_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / "store.sqlite3").close()
    connection = sqlite3.connect(tmp_path / "store.sqlite3")
    connection.execute("INSERT INTO schema_version VALUES (99)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError):
        Store.open(tmp_path / "store.sqlite3")


def test_a_file_that_is_not_a_store_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        Store.open(path)


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The umask most shells start with: new files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(path: Path) -> dict[str, int]:
    """The mode of the store and of each SQLite file beside it."""
    return {
        found.name: stat.S_IMODE(found.stat().st_mode)
        for found in path.parent.glob(f"{path.name}*")
    }


@pytest.mark.usefixtures("shell_umask")
def test_the_store_and_its_write_ahead_files_are_private_under_a_shell_umask(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    store = Store.open(path)
    with store.transaction():
        store.put_mesh_entry(0, b"h0", b"entry-0")

    modes = _modes(path)
    store.close()

    assert {"store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}


def test_a_store_left_readable_by_others_is_made_private_when_opened(
    tmp_path: Path, shell_umask: None
) -> None:
    # An older version let SQLite create the files under the shell's umask.
    path = tmp_path / "store.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE kept (value TEXT)")
    assert 0o644 in _modes(path).values()

    store = Store.open(path)
    modes = _modes(path)
    store.close()
    connection.close()

    assert set(modes.values()) == {0o600}
