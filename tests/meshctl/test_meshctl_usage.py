"""Bad input to meshctl: one line (or one JSON error), exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meshctl import render
from tests.daemons import MeshdProcess, clean_environment, run_meshctl

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "value", [DEEP, "NaN", "Infinity", "[-Infinity]", "1e400", "{oops"]
)
def test_unusable_json_value_is_a_usage_error(value: str) -> None:
    status, out, err = run_meshctl("passport", "set", "profile/deep", value)

    assert status == 2 and out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 2 and err.startswith("usage:")
    assert "values must be JSON (NaN and Infinity are not)" in err


@pytest.mark.parametrize(
    "args",
    [
        ["passport", "set", "profile/deep", DEEP],
        ["passport", "set", "p", "[1, NaN]"],
        ["no-such-command"],
        ["approve"],
        ["approve", "abc", "--code", "12 456"],
        ["join", "x", "--wait", "nan"],
    ],
)
def test_usage_error_with_json_is_a_json_error_object(args: list[str]) -> None:
    status, out, err = run_meshctl("--json", *args)

    error = json.loads(err)["error"]
    assert status == 2 and out == ""
    assert error["code"] == -32602
    assert error["data"] == {"reason": "usage"}
    assert error["message"]


def test_verify_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    status, out, err = run_meshctl("verify", str(tmp_path / "missing.json"))

    assert status == 2 and out == ""
    assert "cannot read" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content", [b"not json", b"\xff\xfe\x00binary", b"[" * 100000, b"[NaN]"]
)
def test_verify_of_a_file_without_json_is_a_usage_error(
    tmp_path: Path, content: bytes
) -> None:
    proof = tmp_path / "proof.json"
    proof.write_bytes(content)

    status, out, err = run_meshctl("--json", "verify", str(proof))

    assert status == 2 and out == ""
    assert json.loads(err)["error"]["data"]["reason"] == "usage"


def test_unreadable_passphrase_file_is_a_usage_error(
    shared_meshd: MeshdProcess, tmp_path: Path
) -> None:
    binary = tmp_path / "passphrase"
    binary.write_bytes(b"\xff\xfe\xfd\n")

    for source in (binary, tmp_path, tmp_path / "missing"):
        status, out, err = shared_meshd.meshctl(
            "unlock", "--passphrase-file", str(source)
        )
        assert status == 2 and out == ""
        assert err.splitlines()[-1].startswith("meshctl: error: cannot read")


def test_binary_passphrase_on_stdin_is_a_usage_error(
    shared_meshd: MeshdProcess,
) -> None:
    command = [sys.executable, "-m", "meshctl.main", "--home", str(shared_meshd.home)]

    completed = subprocess.run(
        [*command, "--json", "unlock", "--passphrase-file", "-"],
        input=b"\xff\xfe\xfd\n",
        capture_output=True,
        env=clean_environment(),
        timeout=60,
    )

    assert completed.returncode == 2 and completed.stdout == b""
    error = json.loads(completed.stderr)["error"]
    assert error["data"]["reason"] == "usage"


def test_conflicts_table_lists_candidate_counts_and_op_ids() -> None:
    conflicts = [
        {
            "id": "c1",
            "path": "profile/name",
            "provisional": "op-b",
            "candidates": [{"op_id": "op-a"}, {"op_id": "op-b"}],
        }
    ]

    lines = render.conflicts(conflicts).splitlines()

    assert lines[0].split() == ["ID", "PATH", "CANDIDATES"]
    assert lines[1].split() == ["c1", "profile/name", "2:", "op-a,", "op-b"]


def test_long_cells_end_with_an_ellipsis() -> None:
    rows = [{"id": "x" * 500, "name": "phone"}]

    lines = render.table(("id", "name"), "none")(rows).splitlines()

    assert len(lines[1].split()[0]) == render.MAX_CELL
    assert lines[1].split()[0].endswith("…")
    assert lines[1].split()[1] == "phone"


def test_argument_that_is_not_utf8_is_a_usage_error(
    shared_meshd: MeshdProcess,
) -> None:
    command = [sys.executable, "-m", "meshctl.main", "--home", str(shared_meshd.home)]

    completed = subprocess.run(
        [*command, "passport", "delete", b"profile/\xff"],
        capture_output=True,
        env=clean_environment(),
        timeout=60,
    )

    assert completed.returncode == 2 and completed.stdout == b""
    assert completed.stderr.splitlines()[-1].startswith(b"meshctl: error: ")
