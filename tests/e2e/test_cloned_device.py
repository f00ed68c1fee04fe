"""A device's home copied and both copies running: status says so everywhere.

The copy signs with the same keys and takes the same op sequences as the
original. The other devices keep the op they accepted first and show the
refused one as ``op_equivocation``; each copy sees ops under its own id that
it did not write and shows ``device_cloned``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.e2e.conftest import E2E_CONFIG, Device, Devices
from tests.e2e.test_stories import approve_join, create_mesh, finish_join, request_join

EMAILS = {"home@example.org", "copy@example.org"}


def problems(device: Device) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = device.ok("status")["problems"]
    return found


def reasons(device: Device) -> set[str]:
    return {problem["reason"] for problem in problems(device)}


def clone(devices: Devices, device: Device) -> Device:
    """Stop ``device``, copy its home as a backup would, start both homes."""
    home = device.daemon.home
    device.daemon.stop()
    copied = home.with_name(f"{home.name}-copy")
    shutil.copytree(home, copied, ignore=shutil.ignore_patterns("*.sock"))
    device.daemon = devices.factory.start(home, config=E2E_CONFIG)
    twin = Device("laptop-copy", devices.factory.start(copied, config=E2E_CONFIG))
    twin.device_id = device.device_id
    return twin


def phone_and_laptop(devices: Devices, tmp_path: Path) -> tuple[Device, Device]:
    """A mesh of a phone and a laptop on a folder of ``tmp_path``."""
    storage = tmp_path / "storage"
    storage.mkdir()
    devices.start("phone", "laptop")
    phone = create_mesh(devices, str(storage))
    laptop = devices["laptop"]
    assert approve_join(phone, request_join(laptop, phone))["state"] == "applied"
    finish_join(laptop)
    return phone, laptop


def test_a_copied_device_home_is_shown_as_cloned_and_its_ops_as_equivocation(
    devices: Devices, tmp_path: Path
) -> None:
    phone, laptop = phone_and_laptop(devices, tmp_path)
    laptop.ok("passport", "set", "profile/name", '"Alice"')
    laptop.sync()
    phone.sync()

    # Both copies write a different value with the same next sequence.
    twin = clone(devices, laptop)
    laptop.ok("passport", "set", "profile/email", '"home@example.org"')
    twin.ok("passport", "set", "profile/email", '"copy@example.org"')
    for device in (laptop, twin, phone, laptop, twin, phone):
        device.sync()

    # The third device kept one side and shows the other as evidence.
    assert phone.ok("passport", "get", "profile/email") in EMAILS
    [evidence] = [p for p in problems(phone) if p["reason"] == "op_equivocation"]
    assert f"devices/{laptop.device_id}/" in evidence["name"]
    _, text, _ = phone.daemon.meshctl("status")
    assert f"Device {laptop.device_id} signed two different ops" in text

    # Each copy sees the other writing under its id, in words too.
    for copy in (laptop, twin):
        assert "device_cloned" in reasons(copy)
    status, text, _ = twin.daemon.meshctl("status")
    assert status == 0
    assert "Another copy of this device is writing" in text

    # The evidence comes back after a restart, from storage itself.
    home = phone.daemon.home
    phone.daemon.stop()
    phone.daemon = devices.factory.start(home, config=E2E_CONFIG)
    phone.sync()
    assert "op_equivocation" in reasons(phone)


def test_rotating_the_key_on_the_copy_to_keep_shuts_the_other_copy_out(
    devices: Devices, tmp_path: Path
) -> None:
    phone, laptop = phone_and_laptop(devices, tmp_path)
    twin = clone(devices, laptop)
    laptop.ok("passport", "set", "profile/email", '"home@example.org"')
    twin.ok("passport", "set", "profile/email", '"copy@example.org"')
    for device in (laptop, twin, laptop):
        device.sync()

    # Status tells the copy to keep what to run, and it works.
    _, text, _ = laptop.daemon.meshctl("status")
    assert "run 'meshctl rotate-key' on the copy to keep" in text
    laptop.ok("rotate-key")
    laptop.sync()
    twin.sync()

    # The other copy's later writes reach nobody; the kept copy's do.
    twin.run("passport", "set", "profile/name", '"Copy"')
    twin.run("sync")
    laptop.ok("passport", "set", "profile/city", '"Lyon"')
    laptop.sync()
    phone.sync()
    assert phone.ok("passport", "get", "profile/city") == "Lyon"
    assert phone.run("passport", "get", "profile/name").status != 0
    assert laptop.run("passport", "get", "profile/name").status != 0
