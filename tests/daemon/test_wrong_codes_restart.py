"""Wrong confirmation codes still count after the approver's daemon restarts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemons import MANUAL_SYNC_CONFIG as CONFIG
from tests.daemons import MeshdFactory, MeshdProcess
from tests.daemons import meshctl_ok as ok


def approve_reason(daemon: MeshdProcess, request_id: str, code: str) -> str:
    """The reason meshctl reports for a refused approval."""
    status, _, err = daemon.meshctl("--json", "approve", request_id, "--code", code)
    assert status == 1, f"the approval with {code} was not refused: {err}"
    return str(json.loads(err.splitlines()[-1])["error"]["data"]["reason"])


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_restart_of_the_approver_gives_no_new_guesses_at_the_code(
    meshd_factory: MeshdFactory, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    phone = meshd_factory.start(config=CONFIG)
    tablet = meshd_factory.start(config=CONFIG)
    ok(phone, "init", "--label", "alice", "--storage", str(storage))
    request = ok(tablet, "join", ok(phone, "invite")["invite"])
    ok(phone, "sync")
    wrong = other_code(request["code"])

    # Two wrong guesses, then the phone's daemon restarts.
    first = approve_reason(phone, request["request_id"], wrong)
    second = approve_reason(phone, request["request_id"], wrong)
    assert phone.stop() == 0
    phone = meshd_factory.start(phone.home, config=CONFIG)

    # The third guess locks the request; the right code no longer helps.
    third = approve_reason(phone, request["request_id"], wrong)
    right = approve_reason(phone, request["request_id"], request["code"])

    assert (first, second) == ("wrong_code", "wrong_code")
    assert (third, right) == ("too_many_attempts", "too_many_attempts")
    assert len(ok(phone, "devices")) == 1
