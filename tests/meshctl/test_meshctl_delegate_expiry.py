"""``meshctl delegate --expires``: unusable expiries are bad usage, sent never."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from meshd.crypto.suite import DeviceKeys
from meshd.errors import InvalidInput
from tests.daemons import MeshdProcess
from tests.daemons import meshctl_ok as ok

AGENT = DeviceKeys.generate().public.signing.hex()


def delegate(daemon: MeshdProcess, *expiry: str) -> tuple[int, str, str]:
    return daemon.meshctl("delegate", "--to", AGENT, "--capability", "mail", *expiry)


def issue(daemon: MeshdProcess, capability: str, *expiry: str) -> Any:
    """Issue a delegation that must be accepted; the daemon's answer."""
    return ok(daemon, "delegate", "--to", AGENT, "--capability", capability, *expiry)


@pytest.mark.parametrize(
    ("expiry", "message"),
    [
        (["--expires", "2030-01-01T10:00"], "needs its zone"),
        (["--expires", "-5s"], "more than zero"),
        (["--expires=-5s"], "more than zero"),
        (["--expires", "-2d"], "more than zero"),
        (["--expires", "0s"], "more than zero"),
        (["--expires", "1000"], "'1000' is not in the future"),
        (["--expires", "2020-01-01T00:00Z"], "is not in the future"),
        (["--expires", "next week"], "Give the expiry as a duration"),
        (["--expires", ""], "Give the expiry as a duration"),
        (["--expires", "   "], "Give the expiry as a duration"),
        (["--expires", "99999999999999999999999"], "at most 10 years ahead"),
        (["--expires", "18446744073709551616"], "at most 10 years ahead"),
        (["--expires", "99999999999999"], "at most 10 years ahead"),
    ],
)
def test_an_unusable_expiry_is_bad_usage_and_issues_nothing(
    founded_meshd: MeshdProcess, expiry: list[str], message: str
) -> None:
    before = ok(founded_meshd, "delegations")

    status, out, err = delegate(founded_meshd, *expiry)

    assert (status, out) == (2, "")
    assert err.startswith("usage:") and err.count("\n") == 2
    assert message in err.splitlines()[1]
    assert ok(founded_meshd, "delegations") == before


def test_an_unusable_expiry_with_json_is_a_json_usage_error(
    founded_meshd: MeshdProcess,
) -> None:
    status, _, err = founded_meshd.meshctl(
        "--json", "delegate", "--to", AGENT, "--capability", "x", "--expires", "-5s"
    )

    error = json.loads(err)["error"]
    assert status == 2
    assert error["data"] == {"reason": "usage"}
    assert "more than zero" in error["message"]


def test_a_zoned_time_and_a_duration_still_issue_delegations(
    founded_meshd: MeshdProcess,
) -> None:
    zoned = f"{datetime.now().year + 2}-01-01T00:00+02:00"
    issued = [
        issue(founded_meshd, "a", "--expires", " 2h "),
        issue(founded_meshd, "b", f"--expires={zoned}"),
    ]

    listed = {
        delegation["id"]: delegation for delegation in ok(founded_meshd, "delegations")
    }
    assert all(listed[delegation["id"]]["valid"] for delegation in issued)
    assert issued[1]["expires_at"] == datetime.fromisoformat(zoned).timestamp()


@pytest.mark.parametrize(
    "expires", ["99999999999999999999999", "18446744073709551616", "  "]
)
def test_a_daemon_asked_directly_refuses_an_unusable_expiry_as_invalid_input(
    founded_meshd: MeshdProcess, expires: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        founded_meshd.call(
            "delegation.issue", to=AGENT, capability="mail", expires=expires
        )

    assert refused.value.to_data()["field"] == "expires"
    assert "Traceback" not in founded_meshd.log_text()


def test_a_delegation_years_ahead_is_listed_as_ahead(
    founded_meshd: MeshdProcess,
) -> None:
    issued = issue(founded_meshd, "far", "--expires=500w")

    status, out, err = founded_meshd.meshctl("delegations")

    assert status == 0, err
    (row,) = [line for line in out.splitlines() if line.startswith(issued["id"])]
    assert f"(in {500 * 7 - 1} d)" in row or f"(in {500 * 7} d)" in row
