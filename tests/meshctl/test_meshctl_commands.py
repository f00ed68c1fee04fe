"""meshctl as a user runs it: output, errors and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshctl.main import COMMANDS
from tests.daemons import MeshdProcess, run_meshctl


def test_status_json_has_the_interface_fields(shared_meshd: MeshdProcess) -> None:
    status, out, err = shared_meshd.meshctl("--json", "status")

    result = json.loads(out)
    assert status == 0 and err == ""
    for name in ("did", "label", "device_id", "threshold", "devices", "warnings"):
        assert name in result
    assert result["state"] == "no mesh"
    assert "meshctl init" in result["warnings"][0]


def test_status_text_names_the_device_and_the_warning(
    shared_meshd: MeshdProcess,
) -> None:
    device_id = shared_meshd.call("device.info")["device_id"]

    status, out, _ = shared_meshd.meshctl("status")

    assert status == 0
    assert device_id in out
    assert "meshctl join" in out


def test_events_json_prints_one_object_per_line(shared_meshd: MeshdProcess) -> None:
    status, out, _ = shared_meshd.meshctl(
        "--json", "events", "--since", "0", "--no-follow"
    )

    events = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert events[0]["type"] == "daemon.started"
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)


def test_unlock_on_an_open_keystore_reports_it_unlocked(
    shared_meshd: MeshdProcess,
) -> None:
    status, out, _ = shared_meshd.meshctl("--json", "unlock", input="anything\n")

    assert status == 0
    assert json.loads(out)["locked"] is False


def test_command_the_daemon_cannot_serve_yet_is_one_line_and_exit_1(
    shared_meshd: MeshdProcess,
) -> None:
    # Without a mesh, "conflicts" fails: either its method is not served
    # (-32601) or the daemon says there is no mesh. Either way: one line.
    status, out, err = shared_meshd.meshctl("conflicts")

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("meshctl: ")


def test_daemon_error_with_json_goes_to_stderr_as_an_error_object(
    shared_meshd: MeshdProcess,
) -> None:
    status, out, err = shared_meshd.meshctl("--json", "passport", "get", "profile/name")

    error = json.loads(err)["error"]
    assert status == 1 and out == ""
    assert error["code"] == -32076
    assert error["data"]["reason"] == "no_mesh"


def test_no_daemon_exits_3_with_a_hint_to_start_one(tmp_path: Path) -> None:
    status, out, err = run_meshctl("status", home=tmp_path / "nothing")

    assert status == 3 and out == ""
    assert err.count("\n") == 1
    assert f"meshd run --home {tmp_path / 'nothing'}" in err


def test_no_daemon_with_json_is_an_error_object(tmp_path: Path) -> None:
    status, _, err = run_meshctl("--json", "devices", home=tmp_path / "nothing")

    assert status == 3
    assert json.loads(err)["error"]["data"]["reason"] == "no_daemon"


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["threshold", "zero"],
        ["passport", "set", "path", "{not json"],
        ["approve"],
        ["events", "--since=-1"],
        ["threshold", "-1"],
        ["--home", "a", "--socket", "b", "status"],
        [],
    ],
)
def test_bad_usage_exits_2(args: list[str], tmp_path: Path) -> None:
    status, out, err = run_meshctl(*args)

    assert status == 2
    assert out == ""
    assert "usage:" in err and "Traceback" not in err


def test_every_interface_command_has_its_rpc_method() -> None:
    methods = {command.name: command.method for command in COMMANDS}

    assert methods["init"] == "mesh.create"
    assert methods["join"] == "enrollment.request"
    assert methods["recover"] == "recovery.request"
    assert methods["passport set"] == "passport.set"
    assert methods["capability add"] == "passport.add_capability"
    assert methods["did-document"] == "mesh.did_document"
    assert len(methods) == 27
