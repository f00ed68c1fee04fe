"""The store keeps wrong confirmation codes across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshd.replica import store as store_module
from meshd.replica.store import MIGRATIONS, Store


def test_wrong_codes_survive_closing_and_opening_the_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store.sqlite3")
    store.set_wrong_codes("request-1", 1)
    store.set_wrong_codes("request-1", 2)
    store.set_wrong_codes("request-2", 3)
    store.close()

    reopened = Store.open(tmp_path / "store.sqlite3")

    assert reopened.wrong_codes() == {"request-1": 2, "request-2": 3}


def test_a_store_of_the_first_schema_gains_the_wrong_code_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    old = Store.open(path)
    old.put_proposal("request-1", b"request")
    old.close()
    monkeypatch.undo()

    upgraded = Store.open(path)
    upgraded.set_wrong_codes("request-1", 1)

    assert upgraded.schema_version() == len(MIGRATIONS)
    assert upgraded.proposals() == [("request-1", b"request")]
    assert upgraded.wrong_codes() == {"request-1": 1}
    upgraded.close()
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    assert "wrong_codes" in {row[0] for row in tables}
