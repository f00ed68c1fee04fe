"""Expiries as people type them, read the same by meshctl and the daemon."""

from __future__ import annotations

import pytest

from meshd.errors import InvalidInput
from meshd.expiry import DEFAULT_LIFETIME_SECONDS, MAX_LIFETIME_SECONDS, parse_expiry

NOW = 1_700_000_000.0


def test_durations_times_and_epoch_seconds_name_one_moment() -> None:
    assert parse_expiry("90m", NOW) == NOW + 90 * 60
    assert parse_expiry("2w", NOW) == NOW + 14 * 86400
    assert parse_expiry("2023-11-14T22:13:20Z", NOW) == NOW
    assert parse_expiry("2023-11-15T00:13:20+02:00", NOW) == NOW
    assert parse_expiry(str(int(NOW)), NOW) == NOW
    assert parse_expiry(None, NOW) == NOW + DEFAULT_LIFETIME_SECONDS


@pytest.mark.parametrize(
    ("text", "field_message"),
    [
        ("-5s", "more than zero"),
        ("0d", "more than zero"),
        ("2023-11-14T22:13:20", "needs its zone"),
        ("soon", "Give the expiry as"),
        ("", "Give the expiry as"),
        ("  \t ", "Give the expiry as"),
        ("99999999999999999999999", "at most 10 years ahead"),
        ("18446744073709551616", "at most 10 years ahead"),
        ("99999999999999", "at most 10 years ahead"),
        ("999999w", "at most 10 years ahead"),
        ("9999-12-31T23:59:59Z", "at most 10 years ahead"),
        ("5d\n", "Give the expiry as"),
        ("\u0663d", "Give the expiry as"),
        ("\u0663\u0663", "Give the expiry as"),
        ("\uff15d", "Give the expiry as"),
    ],
)
def test_a_daemon_asked_directly_refuses_what_meshctl_refuses(
    text: str, field_message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_expiry(text, NOW)

    assert field_message in refused.value.message
    assert refused.value.to_data()["field"] == "expires"


def test_spaces_around_an_expiry_are_ignored_and_ten_years_is_the_limit() -> None:
    assert parse_expiry("  7d ", NOW) == NOW + 7 * 86400
    assert parse_expiry("520w", NOW) == NOW + 520 * 7 * 86400
    assert parse_expiry(str(int(NOW + MAX_LIFETIME_SECONDS)), NOW) == int(
        NOW + MAX_LIFETIME_SECONDS
    )
