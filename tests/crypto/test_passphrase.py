"""Passphrase protection of secrets at rest (Argon2id at its minimum cost)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshd.crypto import passphrase
from meshd.crypto.passphrase import KdfParameters
from meshd.errors import InvalidInput, WrongPassphrase

FAST = KdfParameters.fresh(passphrase.MIN_OPSLIMIT, passphrase.MIN_MEMLIMIT)


def test_a_locked_secret_opens_with_its_passphrase_only() -> None:
    locked = passphrase.lock("correct horse", FAST, b"device keys")

    assert passphrase.unlock("correct horse", FAST, locked) == b"device keys"
    assert b"device keys" not in locked
    with pytest.raises(WrongPassphrase):
        passphrase.unlock("correct horsE", FAST, locked)


def test_a_different_salt_does_not_open_the_secret() -> None:
    locked = passphrase.lock("correct horse", FAST, b"device keys")
    other_salt = replace(FAST, salt=bytes(passphrase.SALT_SIZE))

    with pytest.raises(WrongPassphrase):
        passphrase.unlock("correct horse", other_salt, locked)


@pytest.mark.parametrize("locked", [b"", b"short", bytes(100)])
def test_a_damaged_secret_looks_like_a_wrong_passphrase(locked: bytes) -> None:
    with pytest.raises(WrongPassphrase):
        passphrase.unlock("correct horse", FAST, locked)


@pytest.mark.parametrize(
    "params",
    [
        replace(FAST, salt=b"short"),
        replace(FAST, opslimit=passphrase.MIN_OPSLIMIT - 1),
        replace(FAST, memlimit=passphrase.MIN_MEMLIMIT - 1),
        replace(FAST, opslimit=passphrase.MAX_OPSLIMIT + 1),
        replace(FAST, memlimit=passphrase.MAX_MEMLIMIT + 1),
    ],
)
def test_parameters_out_of_range_are_refused_before_any_work(
    params: KdfParameters,
) -> None:
    with pytest.raises(InvalidInput):
        passphrase.lock("correct horse", params, b"x")


def test_an_empty_passphrase_is_refused() -> None:
    with pytest.raises(InvalidInput):
        passphrase.lock("", FAST, b"x")


def test_the_default_costs_are_within_the_accepted_range() -> None:
    passphrase.check_parameters(KdfParameters.fresh())
