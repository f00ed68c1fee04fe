"""The error tree: every error a caller can see has a stable reason and code."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import meshd
from meshd import errors
from meshd.errors import (
    ClientError,
    LocalError,
    MeshError,
    ProtocolError,
    all_error_classes,
)

# JSON-RPC 2.0 keeps -32000..-32099 for implementation-defined server errors;
# each branch of the tree owns a slice of it.
BRANCH_RANGES = {
    ClientError: range(-32039, -32000 + 1),
    ProtocolError: range(-32069, -32040 + 1),
    LocalError: range(-32098, -32070 + 1),
}


def every_error_class() -> list[type[MeshError]]:
    """All error classes, including any defined in modules beyond errors.py."""
    for module in pkgutil.walk_packages(meshd.__path__, prefix="meshd."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
    return all_error_classes()


def test_every_error_class_has_its_own_reason() -> None:
    classes = every_error_class()
    reasons = [cls.reason for cls in classes]

    duplicates = {r for r in reasons if reasons.count(r) > 1}
    assert not duplicates, duplicates


def test_every_error_class_has_its_own_code_in_the_server_error_range() -> None:
    classes = every_error_class()
    codes = [cls.code for cls in classes]

    duplicates = {c for c in codes if codes.count(c) > 1}
    assert not duplicates, duplicates
    assert all(-32099 <= code <= -32000 for code in codes), codes


@pytest.mark.parametrize("branch", list(BRANCH_RANGES))
def test_each_branch_uses_only_its_own_codes(branch: type[MeshError]) -> None:
    members = [cls for cls in every_error_class() if issubclass(cls, branch)]

    outside = [cls.__name__ for cls in members if cls.code not in BRANCH_RANGES[branch]]
    assert not outside


def test_every_error_is_in_exactly_one_branch_below_the_root() -> None:
    for cls in every_error_class():
        if cls is MeshError:
            continue
        branches = [b for b in BRANCH_RANGES if issubclass(cls, b)]
        assert len(branches) == 1, cls


def test_every_reason_is_a_stable_snake_case_word() -> None:
    for cls in every_error_class():
        assert cls.reason.replace("_", "").isalpha(), cls
        assert cls.reason == cls.reason.lower(), cls


def test_every_error_carries_its_reason_and_details_as_json_data() -> None:
    for cls in every_error_class():
        error = cls("Something happened", device="ABCD-EFGH", count=2)

        data = error.to_data()

        assert data["reason"] == cls.reason
        assert data["device"] == "ABCD-EFGH"
        assert json.loads(json.dumps(data)) == data
        assert str(error) == "Something happened"


def test_every_error_has_a_message_a_person_can_read_by_default() -> None:
    for cls in every_error_class():
        error = cls()

        assert str(error) == cls.default_message
        assert str(error).strip()


def test_a_detail_named_reason_cannot_hide_the_real_reason() -> None:
    error = errors.InvalidInput("bad field", reason="spoofed")

    assert error.to_data()["reason"] == "invalid_input"


def test_all_error_classes_starts_at_the_root_and_finds_the_leaves() -> None:
    classes = all_error_classes()

    assert classes[0] is MeshError
    assert {errors.DecryptionFailed, errors.KeystoreCorrupt, errors.Locked} <= set(
        classes
    )
