"""``make demo``: four devices of one person walk the mesh story end to end.

    python -m meshd.demo [--storage URL] [--keep]

Four daemons (phone, laptop, tablet, new-phone) run side by side, each in
its own home under a temporary folder, and share one storage URL: a local
folder by default, or any fsspec URL (``s3://bucket/path`` takes its endpoint
and credentials from the usual AWS environment variables). The daemons poll
storage rarely, so each step is driven by an explicit ``meshctl sync``, and
every step is a real ``meshctl`` call, as a person would type it.

Each check prints a ✓ when it held and a ✗ with what happened when it did
not. Exit status: 0 when every check held, 1 otherwise (or when the demo
could not run at all, with a one-line error).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEVICES = ("phone", "laptop", "tablet", "new-phone")
DEVICE_KINDS = {
    "phone": "phone",
    "laptop": "laptop",
    "tablet": "tablet",
    "new-phone": "phone",
}
# The daemons poll storage rarely so that the story moves only on `sync`.
DAEMON_CONFIG = '[sync]\ninterval = 30\n\n[keystore]\nkdf = "minimum"\n'
START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Variables that would point meshctl or meshd at a person's real device.
PRIVATE_VARIABLES = ("MESHD_HOME", "MESHD_PASSPHRASE")


class DemoAborted(Exception):
    """A step the rest of the story depends on did not work."""


@dataclass(frozen=True)
class Outcome:
    """What one meshctl call did: its exit status, result and error."""

    status: int
    result: Any
    error: dict[str, Any]
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def reason(self) -> str:
        data = self.error.get("data")
        return str(data.get("reason", "")) if isinstance(data, dict) else ""

    def describe(self) -> str:
        """One line saying what went wrong, for a ✗ line."""
        if self.ok:
            return f"succeeded with {json.dumps(self.result)[:120]}"
        message = self.error.get("message") or self.stderr.strip()[:200]
        return f"exit {self.status}: {message}"


@dataclass
class Daemon:
    """One running ``meshd run --home`` process."""

    name: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Demo:
    """The daemons, the shared storage and the tally of checks."""

    base: Path
    storage: str
    daemons: dict[str, Daemon] = field(default_factory=dict)
    held: int = 0
    failed: list[str] = field(default_factory=list)

    # -- Output ----------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def check(self, held: bool, text: str, otherwise: str = "") -> bool:
        """Print and count one check; ``otherwise`` says what happened instead."""
        if held:
            self.held += 1
            print(f"  ✓ {text}", flush=True)
        else:
            self.failed.append(text)
            detail = f" ({otherwise})" if otherwise else ""
            print(f"  ✗ {text}{detail}", flush=True)
        return held

    # -- Daemons ---------------------------------------------------------------

    def start(self, name: str) -> None:
        """Start one device's daemon and wait until its socket answers.

        Raises:
            DemoAborted: the daemon exited or did not answer in time.
        """
        home = self.base / name
        home.mkdir(mode=0o700)
        config = self.base / f"{name}.toml"
        config.write_text(DAEMON_CONFIG, encoding="utf-8")
        log = self.base / f"{name}.log"
        command = [sys.executable, "-m", "meshd.cli", "run", "--home", str(home)]
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [*command, "--config", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_environment(),
            )
        self.daemons[name] = Daemon(name, home, process, log)
        self._wait_until_answering(self.daemons[name])

    def _wait_until_answering(self, daemon: Daemon) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if daemon.process.poll() is not None:
                raise DemoAborted(
                    f"meshd for {daemon.name} exited at start: {last_line(daemon.log)}"
                )
            if (daemon.home / "meshd.sock").exists() and self.ctl(
                daemon.name, "status"
            ).status in (0, 1):
                return
            time.sleep(0.1)
        raise DemoAborted(f"meshd for {daemon.name} did not answer in time")

    def stop_all(self) -> None:
        """SIGTERM every daemon this demo started, then wait for each."""
        for daemon in self.daemons.values():
            if daemon.process.poll() is None:
                daemon.process.send_signal(signal.SIGTERM)
        for daemon in self.daemons.values():
            try:
                daemon.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                daemon.process.kill()
                daemon.process.wait()

    # -- meshctl ---------------------------------------------------------------

    def ctl(self, device: str, *arguments: str) -> Outcome:
        """Run ``meshctl --home <device> --json ARGUMENTS`` and parse its output."""
        command = [sys.executable, "-m", "meshctl.main"]
        command += ["--home", str(self.base / device), "--json", *arguments]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
        )
        result = parse_json(completed.stdout) if completed.returncode == 0 else None
        error = parse_json(completed.stderr) if completed.returncode != 0 else None
        error = error.get("error", {}) if isinstance(error, dict) else {}
        return Outcome(completed.returncode, result, error, completed.stderr)

    def must(self, device: str, *arguments: str) -> Any:
        """The result of a call the rest of the story needs.

        Raises:
            DemoAborted: the call failed.
        """
        outcome = self.ctl(device, *arguments)
        if not outcome.ok:
            raise DemoAborted(
                f"'meshctl {' '.join(arguments[:2])}' on {device} failed: "
                + outcome.describe()
            )
        return outcome.result

    def sync(self, *devices: str) -> None:
        """One sync round on each device, in order, narrated."""
        for device in devices:
            outcome = self.ctl(device, "sync")
            if outcome.ok and isinstance(outcome.result, dict):
                report = outcome.result
                self.say(
                    f"{device} syncs: pushed {report.get('pushed', 0)}, "
                    f"pulled {report.get('pulled', 0)}, "
                    f"rejected {report.get('rejected', 0)}"
                )
            else:
                self.say(f"{device} sync failed: {outcome.describe()}")

    def status(self, device: str) -> dict[str, Any]:
        outcome = self.ctl(device, "status")
        return outcome.result if outcome.ok and isinstance(outcome.result, dict) else {}

    def find_pending(self, device: str, identifier: str) -> dict[str, Any] | None:
        """The pending proposal ``identifier`` as ``device`` sees it."""
        outcome = self.ctl(device, "pending")
        listed = (
            outcome.result if outcome.ok and isinstance(outcome.result, list) else []
        )
        for proposal in listed:
            if isinstance(proposal, dict) and proposal.get("id") == identifier:
                return proposal
        return None


# -- The stories -------------------------------------------------------------------


@dataclass
class Story:
    """What the stories learn and pass on: the identity and the device ids."""

    did: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    name: str = "Alice Example"
    # The device the person carries as a phone: the new one once recovered.
    phone: str = "phone"


def enroll(demo: Demo, story: Story, device: str, approvers: Sequence[str]) -> bool:
    """``device`` joins with an invite; ``approvers`` approve with its code."""
    invite = demo.must(approvers[0], "invite")["invite"]
    request = demo.must(
        device,
        "join",
        invite,
        "--device-name",
        device,
        "--device-kind",
        DEVICE_KINDS[device],
    )
    code = request["code"]
    demo.say(
        f"{device} asks to join and shows the code {code} "
        f"({request['required_approvals']} approval(s) needed)"
    )

    # Each approver first pulls the request from storage, then approves.
    state = ""
    for approver in approvers:
        demo.sync(approver)
        outcome = demo.ctl(approver, "approve", request["request_id"], "--code", code)
        if not outcome.ok:
            demo.check(False, f"{approver} approves {device}", outcome.describe())
            return False
        state = outcome.result["state"]
        demo.say(
            f"{approver} approves with the code: "
            f"{outcome.result['approvals']} of {outcome.result['required']} ({state})"
        )
    demo.sync(device)
    status = demo.status(device)
    story.ids[device] = status.get("device_id", "")
    return demo.check(
        status.get("state") == "member",
        f"{device} is a member after {len(approvers)} approval(s)",
        f"its state is {status.get('state')!r}, the request is {state!r}",
    )


def story_enrollment(demo: Demo, story: Story) -> None:
    demo.section("1. Create the mesh on the phone, enroll the laptop and the tablet")
    created = demo.must(
        "phone",
        "init",
        "--label",
        "alice",
        "--storage",
        demo.storage,
        "--device-name",
        "phone",
        "--device-kind",
        "phone",
    )
    story.did, story.ids["phone"] = created["did"], created["device_id"]
    demo.say(f"phone creates the identity {story.did}")
    demo.check(story.did.startswith("did:"), "the phone holds a new DID")

    # The laptop's request, first with a mistyped code.
    invite = demo.must("phone", "invite")["invite"]
    demo.say(f"phone makes an invite ({len(invite)} characters)")
    request = demo.must(
        "laptop", "join", invite, "--device-name", "laptop", "--device-kind", "laptop"
    )
    code = request["code"]
    demo.say(f"laptop asks to join and shows the code {code}")
    demo.sync("phone")
    wrong = "000000" if code != "000000" else "111111"
    refused = demo.ctl("phone", "approve", request["request_id"], "--code", wrong)
    demo.check(
        not refused.ok and refused.reason == "wrong_code",
        f"phone refuses the wrong code {wrong}",
        refused.describe(),
    )
    approved = demo.ctl("phone", "approve", request["request_id"], "--code", code)
    demo.check(
        approved.ok,
        f"phone approves the laptop with the code {code}",
        approved.describe(),
    )
    demo.sync("laptop")
    laptop = demo.status("laptop")
    story.ids["laptop"] = laptop.get("device_id", "")
    demo.check(
        laptop.get("state") == "member",
        "laptop is a member",
        f"state {laptop.get('state')!r}",
    )

    # Two devices: the mesh raised its threshold by itself, so from now on
    # any change needs both of them.
    demo.sync("phone")
    threshold = demo.status("laptop").get("threshold")
    demo.check(
        threshold == 2 and demo.status("phone").get("threshold") == 2,
        "the threshold rose to 2 with the second device",
        f"it is {threshold}",
    )

    enroll(demo, story, "tablet", ("phone", "laptop"))
    demo.sync("phone", "laptop")
    status = demo.status("phone")
    active = [d for d in status.get("devices", []) if d.get("state") == "active"]
    demo.check(
        len(active) == 3 and status.get("threshold") == 2,
        "the mesh is 2-of-3: phone, laptop, tablet",
        f"{len(active)} active devices, threshold {status.get('threshold')}",
    )


def story_passport(demo: Demo, story: Story) -> None:
    demo.section("2. A passport change on one device reaches the others")
    demo.must("laptop", "passport", "set", "profile/name", json.dumps(story.name))
    demo.say(f"laptop sets profile/name to {story.name!r}")
    added = demo.must(
        "tablet", "capability", "add", "email", "--data", '{"verified": true}'
    )
    demo.say(f"tablet adds the capability 'email' ({added['capability_id']})")
    demo.sync("laptop", "tablet", "phone", "laptop")

    for device in ("phone", "tablet"):
        name = demo.ctl(device, "passport", "get", "profile/name")
        demo.check(
            name.ok and name.result == story.name,
            f"{device} reads profile/name = {story.name!r}",
            name.describe(),
        )
    for device in ("phone", "laptop"):
        passport = demo.ctl(device, "passport", "get")
        capabilities = passport.result.get("capabilities") if passport.ok else None
        demo.check(
            isinstance(capabilities, dict) and added["capability_id"] in capabilities,
            f"{device} sees the tablet's capability",
            passport.describe(),
        )


def story_recovery(demo: Demo, story: Story) -> None:
    demo.section("3. The phone is lost: a new phone recovers the identity")
    invite = demo.must("laptop", "invite")["invite"]
    request = demo.ctl(
        "new-phone",
        "recover",
        invite,
        "--replace",
        story.ids["phone"],
        "--device-name",
        "new-phone",
    )
    if not demo.check(
        request.ok, "new-phone asks to recover, replacing the phone", request.describe()
    ):
        return
    code = request.result["code"]
    demo.say(f"new-phone shows the code {code}")
    for approver in ("laptop", "tablet"):
        demo.sync(approver)
        outcome = demo.ctl(
            approver, "approve", request.result["request_id"], "--code", code
        )
        if not demo.check(
            outcome.ok, f"{approver} approves the recovery", outcome.describe()
        ):
            return
        demo.say(
            f"{approver}: {outcome.result['approvals']} of "
            f"{outcome.result['required']} ({outcome.result['state']})"
        )
    demo.sync("new-phone", "laptop", "tablet", "new-phone")
    status = demo.status("new-phone")
    story.ids["new-phone"] = status.get("device_id", "")
    demo.check(
        status.get("state") == "member",
        "new-phone is a member",
        f"state {status.get('state')!r}, warnings {status.get('warnings')}",
    )
    name = demo.ctl("new-phone", "passport", "get", "profile/name")
    if demo.check(
        name.ok and name.result == story.name,
        f"new-phone reads the passport: profile/name = {story.name!r}",
        name.describe(),
    ):
        story.phone = "new-phone"

    # The lost phone, should it turn up again, is out of the mesh.
    demo.sync("phone")
    lost = demo.status("phone")
    demo.check(
        lost.get("state") == "revoked",
        "the lost phone's status says revoked",
        f"state {lost.get('state')!r}",
    )


def story_stolen_phone(demo: Demo, story: Story) -> None:
    phone = story.phone
    demo.section(f"4. The {phone} is stolen: laptop and tablet revoke it")
    revoke = demo.must("laptop", "revoke", story.ids[phone], "--reason", "stolen")
    demo.check(
        revoke["state"] == "pending",
        f"laptop alone cannot revoke the {phone}: the proposal waits at "
        f"{revoke['approvals']} of {revoke['required']}",
        f"its state is {revoke['state']!r}",
    )
    demo.sync("tablet")
    approved = demo.ctl("tablet", "approve", revoke["proposal_id"])
    demo.check(
        approved.ok and approved.result.get("state") == "applied",
        "tablet's approval completes the revocation",
        approved.describe(),
    )
    demo.sync("laptop")

    # The thief edits the passport before the phone hears of its revocation.
    forged = demo.ctl(phone, "passport", "set", "profile/name", '"Mallory"')
    demo.say(f"the thief sets profile/name on the {phone}: exit {forged.status}")
    demo.sync(phone, "laptop", "tablet")
    for device in ("laptop", "tablet"):
        name = demo.ctl(device, "passport", "get", "profile/name")
        demo.check(
            name.ok and name.result == story.name,
            f"{device} still reads {story.name!r}: the thief's edit is refused",
            name.describe(),
        )

    status = demo.status(phone)
    demo.check(
        status.get("state") == "revoked",
        f"the {phone}'s status says revoked",
        f"state {status.get('state')!r}",
    )
    again = demo.ctl(phone, "passport", "set", "profile/name", '"Mallory"')
    demo.check(
        not again.ok, f"the {phone} can no longer edit the passport", again.describe()
    )
    reading = demo.ctl(phone, "passport", "get")
    demo.check(
        not reading.ok,
        f"the {phone} can no longer read the passport",
        reading.describe(),
    )

    # Two devices remain; threshold 1 would let either act without the other.
    alone = demo.ctl("laptop", "threshold", "1")
    demo.check(
        not alone.ok and alone.reason == "lockout_refused",
        "laptop alone cannot lower the threshold: 1 is refused with two devices",
        alone.describe(),
    )


def story_did_document(demo: Demo, story: Story) -> None:
    demo.section("5. The DID document")
    document = demo.must("laptop", "did-document")
    methods = document.get("verificationMethod", [])
    demo.say(f"id: {document.get('id')}")
    demo.say(f"verification methods: {len(methods)}")
    devices = demo.must("laptop", "devices")
    active = [d for d in devices if d.get("state") == "active"]
    demo.check(document.get("id") == story.did, "the document's id is the mesh's DID")
    demo.check(
        len(methods) == len(active),
        f"one verification method per active device ({len(active)})",
        f"{len(methods)} methods",
    )
    revoked = [d["id"] for d in devices if d.get("state") == "revoked"]
    keys = json.dumps(methods)
    demo.check(
        bool(revoked) and not any(device in keys for device in revoked),
        f"no key of the {len(revoked)} revoked device(s) is in the document",
    )


STORIES = (
    story_enrollment,
    story_passport,
    story_recovery,
    story_stolen_phone,
    story_did_document,
)


# -- Running -----------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_VARIABLES}


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def run_demo(demo: Demo) -> None:
    """Start the daemons and walk every story; a broken step ends the walk."""
    print(f"Storage: {demo.storage}")
    for name in DEVICES:
        demo.start(name)
    print(f"Started {len(DEVICES)} daemons: {', '.join(DEVICES)}")

    story = Story()
    for walk in STORIES:
        try:
            walk(demo, story)
        except DemoAborted as exc:
            demo.check(False, f"{walk.__name__.replace('_', ' ')} ran", str(exc))
            if walk is story_enrollment:
                return


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m meshd.demo",
        description="Several meshd daemons walk the multi-device story.",
    )
    parser.add_argument(
        "--storage", help="shared storage URL (default: a folder in the temp dir)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder afterwards"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="meshd-demo-"))
    if arguments.storage is None:
        # Storage is a folder the person already has (a synced folder, say).
        (base / "storage").mkdir()
    storage = arguments.storage or (base / "storage").as_uri()
    demo = Demo(base, storage)
    started = time.monotonic()
    try:
        run_demo(demo)
    except KeyboardInterrupt:
        demo.check(False, "the demo ran to its end", "interrupted")
    except Exception as exc:  # the promise: one line, never a traceback
        demo.check(False, "the demo ran to its end", f"{type(exc).__name__}: {exc}")
    finally:
        demo.stop_all()
        if arguments.keep:
            print(f"\nKept {base} (daemon logs: {base}/<device>.log)")
        else:
            shutil.rmtree(base, ignore_errors=True)

    elapsed = time.monotonic() - started
    print(f"\n{demo.held} checks held, {len(demo.failed)} failed ({elapsed:.0f} s)")
    return 0 if not demo.failed else 1


if __name__ == "__main__":
    sys.exit(main())
