"""Apps hear what other devices did: events published after sync rounds.

A subscriber on one device sees join requests, approvals, new and revoked
devices and passport writes of the other devices once its device syncs,
without polling. Real daemons on a shared folder; devices sync only when a
step runs ``meshctl sync``.
"""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import MeshdProcess
from tests.e2e.conftest import Devices
from tests.e2e.test_stories import approve_join, create_mesh, finish_join, request_join

# Only for a failing test: how long to wait for an event that never comes.
PATIENCE_SECONDS = 30.0


class Heard:
    """The events one subscriber receives, read on a thread of its own."""

    def __init__(self, daemon: MeshdProcess) -> None:
        self._stream = daemon.client().subscribe()
        self._arrived: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._checked = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._arrived.put(event)
        except Exception:
            return  # the stream was closed at the end of the test

    def expect(self, type: str, **fields: Any) -> dict[str, Any]:
        """The next event of ``type`` whose data holds ``fields``, after the
        one the last call returned."""
        while True:
            for index in range(self._checked, len(self.events)):
                event = self.events[index]
                data = event["data"]
                if event["type"] == type and all(
                    data.get(key) == value for key, value in fields.items()
                ):
                    self._checked = index + 1
                    return event
            try:
                self.events.append(self._arrived.get(timeout=PATIENCE_SECONDS))
            except queue.Empty:
                raise AssertionError(
                    f"No {type} event with {fields}; heard: {self.types()}"
                ) from None

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


@pytest.fixture
def storage(tmp_path: Path) -> str:
    folder = tmp_path / "storage"
    folder.mkdir()
    return str(folder)


def test_apps_hear_joins_approvals_writes_and_revocations_of_other_devices(
    devices: Devices, storage: str
) -> None:
    devices.start("phone", "laptop", "tablet")
    phone = create_mesh(devices, storage)
    laptop, tablet = devices["laptop"], devices["tablet"]
    on_phone = Heard(phone.daemon)

    # The approver app learns of the laptop's request when the phone syncs.
    request = request_join(laptop, phone)
    phone.sync()
    received = on_phone.expect("proposal.received", id=request["request_id"])
    assert received["data"]["kind"] == "enroll"
    assert "laptop" in received["data"]["summary"]

    # Approving it here adds the laptop; the second device raises the
    # threshold to 2 when the laptop's own first round reaches the phone.
    phone.ok("approve", str(request["request_id"]), "--code", str(request["code"]))
    finish_join(laptop)
    on_phone.expect("mesh.changed", kind="add-device")
    on_phone.expect("device.added", device_id=laptop.device_id)
    phone.sync()
    on_phone.expect("threshold.changed", threshold=2)

    # The tablet needs both: the phone hears the laptop's approval and the
    # entry that the laptop wrote with it.
    request = request_join(tablet, laptop)
    approve_join(phone, request)
    assert approve_join(laptop, request)["state"] == "applied"
    phone.sync()
    answered = on_phone.expect("proposal.answered", id=request["request_id"])
    assert answered["data"] == {
        "id": request["request_id"],
        "device_id": laptop.device_id,
        "approved": True,
    }
    finish_join(tablet)
    on_phone.expect("device.added", device_id=tablet.device_id)

    # A write on the laptop reaches the phone's app as a path, not a value.
    laptop.sync()
    on_laptop = Heard(laptop.daemon)
    laptop.ok("passport", "set", "profile/name", '"Alice Liddell"')
    phone.sync()
    changed = on_phone.expect("passport.changed")
    assert changed["data"]["paths"] == ["profile/name"]

    # The phone revokes the tablet; the laptop's app hears it after a sync.
    proposal = laptop.ok("revoke", tablet.device_id, "--reason", "lost")
    phone.sync()
    assert phone.ok("approve", proposal["proposal_id"])["state"] == "applied"
    laptop.sync()
    on_laptop.expect("passport.changed", paths=["profile/name"])
    on_laptop.expect(
        "proposal.answered",
        id=proposal["proposal_id"],
        device_id=phone.device_id,
        approved=True,
    )
    on_laptop.expect("mesh.changed", kind="revoke-device")
    on_laptop.expect("device.revoked", device_id=tablet.device_id)

    heard = json.dumps(on_phone.events + on_laptop.events)
    assert "Alice Liddell" not in heard
