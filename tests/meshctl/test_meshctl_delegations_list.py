"""``meshctl delegations`` lists every entry filed under ``delegations/``,
those that are not delegations at all included."""

from __future__ import annotations

import pytest

from meshd.crypto.suite import DeviceKeys
from tests.daemons import MeshdProcess
from tests.daemons import meshctl_ok as ok

AGENT = DeviceKeys.generate().public.signing.hex()


@pytest.mark.parametrize(
    ("name", "value"),
    [("abc", '"fake"'), ("numbered", "7"), ("odd", '{"capabilities": "all"}')],
)
def test_an_entry_that_is_no_delegation_is_listed_as_malformed(
    founded_meshd: MeshdProcess, name: str, value: str
) -> None:
    issued = ok(founded_meshd, "delegate", "--to", AGENT, "--capability", "mail")
    ok(founded_meshd, "passport", "set", f"delegations/{name}", value)

    listed = {entry["id"]: entry for entry in ok(founded_meshd, "delegations")}
    status, out, err = founded_meshd.meshctl("delegations")

    assert listed[name] == {"id": name, "valid": False, "reason": "malformed"}
    assert listed[issued["id"]]["valid"] is True
    assert status == 0, err
    (row,) = [line for line in out.splitlines() if line.startswith(name)]
    assert "malformed" in row
