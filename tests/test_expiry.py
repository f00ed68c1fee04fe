"""Expiries as people type them, read the same by meshctl and the daemon."""

from __future__ import annotations

import pytest

from meshd.errors import InvalidInput
from meshd.expiry import DEFAULT_LIFETIME_SECONDS, parse_expiry

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
    ],
)
def test_a_daemon_asked_directly_refuses_what_meshctl_refuses(
    text: str, field_message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_expiry(text, NOW)

    assert field_message in refused.value.message
    assert refused.value.to_data()["field"] == "expires"
