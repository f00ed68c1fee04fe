"""A small language that builds real, signed mesh logs for tests.

Statements are separated by ``;`` or new lines; devices are named by words
(``A``, ``phone``), each with deterministic keys derived from its name::

    genesis A B C t=2
    add D by A,B                  # enroll D, approved by A and B
    add E by A,B fin E t=3        # E finalizes its own enrollment; threshold 3
    revoke C by A,D cutoff=7      # revoke C, accepting its ops up to 7
    revoke B by A,B t=1           # down to one device: threshold 1
    recover F replacing C,D by A,B
    threshold 3 by A,B
    rotate A                      # A rotates its keys (old and new sign)
    vault by A                    # a periodic vault rotation by A

The finalizer is the first approver still active after the change unless
``fin X`` names one. Every entry goes through the real proposal, approval
and finalize functions and through :meth:`MeshLog.apply`, so a statement that
breaks a rule raises the same error the daemon would see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from meshd.crypto.encoding import Signed
from meshd.crypto.suite import DeviceKeys, blake2b
from meshd.errors import InvalidInput
from meshd.mesh.changes import Founder, make_genesis, rotate_device_key, rotate_vault
from meshd.mesh.log import MeshLog
from meshd.mesh.proposals import (
    approval_for,
    finalize,
    make_join_request,
    propose,
    short_code,
)
from meshd.mesh.records import REVOKE, THRESHOLD, Revocation
from meshd.mesh.state import MeshState

START_MS = 1_700_000_000_000
STEP_MS = 1_000


def scenario_keys(name: str, generation: int = 0) -> DeviceKeys:
    """Deterministic keys for a device named in a scenario (tests only)."""
    tag = f"{name}/{generation}".encode()
    return DeviceKeys(
        blake2b(tag, person=b"hm1-test-sign"), blake2b(tag, person=b"hm1-test-enc")
    )


@dataclass
class Request:
    """The last proposal a statement made, and its approvals."""

    proposal: Signed
    approvals: list[Signed]
    state: MeshState


@dataclass
class Scenario:
    """A mesh built statement by statement; ``log`` is read by the founders."""

    label: str = "test-mesh"
    now: int = START_MS
    keys: dict[str, DeviceKeys] = field(default_factory=dict)
    rotations: dict[str, int] = field(default_factory=dict)
    log: MeshLog | None = None
    last: Request | None = None
    reader: str = ""

    # -- Running ------------------------------------------------------------------

    def run(self, text: str) -> Scenario:
        for line in text.replace(";", "\n").splitlines():
            words = line.split("#")[0].split()
            if words:
                self.step(words)
        return self

    def step(self, words: Sequence[str]) -> Signed:
        """Run one statement; returns the entry it wrote."""
        self.now += STEP_MS
        verb, rest = words[0], list(words[1:])
        handlers = {
            "genesis": self._genesis,
            "add": self._add,
            "recover": self._recover,
            "revoke": self._revoke,
            "threshold": self._threshold,
            "rotate": self._rotate,
            "vault": self._vault,
        }
        handler = handlers.get(verb)
        if handler is None:
            raise InvalidInput(f"Unknown scenario statement {verb!r}")
        return handler(rest)

    # -- Facts --------------------------------------------------------------------

    def key(self, name: str) -> DeviceKeys:
        if name not in self.keys:
            self.keys[name] = scenario_keys(name)
        return self.keys[name]

    def id(self, name: str) -> str:
        """The device's enrollment id (it stays the same across rotations)."""
        return scenario_keys(name).device_id

    @property
    def mesh(self) -> MeshLog:
        if self.log is None:
            raise InvalidInput("The scenario has no genesis yet")
        return self.log

    @property
    def state(self) -> MeshState:
        return self.mesh.state

    def entries(self) -> list[Signed]:
        return self.mesh.entries

    def active_names(self) -> list[str]:
        active = set(self.state.active_ids())
        return sorted(name for name in self.keys if self.id(name) in active)

    def branch(self) -> Scenario:
        """A copy of this mesh that can go its own way (to build forks)."""
        log = MeshLog.from_entries(self.entries(), self.key(self.reader))
        return Scenario(
            self.label,
            self.now,
            dict(self.keys),
            dict(self.rotations),
            log,
            None,
            self.reader,
        )

    # -- Statements ---------------------------------------------------------------

    def _genesis(self, words: list[str]) -> Signed:
        options, names = _options(words)
        founders = [Founder(self.key(n), n, "laptop") for n in names]
        threshold = int(options.get("t", "1"))
        genesis = make_genesis(self.label, founders, threshold, self.now)
        self.reader = names[0]
        self.log = MeshLog(genesis, self.key(names[0]))
        return genesis

    def _add(self, words: list[str]) -> Signed:
        options, names = _options(words)
        new = names[0]
        return self._join(new, [], options)

    def _recover(self, words: list[str]) -> Signed:
        options, names = _options(words)
        new, lost = names[0], options["replacing"].split(",")
        return self._join(new, lost, options)

    def _join(self, new: str, lost: list[str], options: dict[str, str]) -> Signed:
        state = self.state
        replace = [
            Revocation(self.id(name), int(options.get("cutoff", "0"))) for name in lost
        ]
        request = make_join_request(
            state,
            self.key(new),
            new,
            "phone",
            self.now,
            replace=replace,
            threshold=int(options.get("t", "0")),
        )
        code = short_code(request.body)
        approvers = options["by"].split(",")
        approvals = [
            approval_for(state, request, self.key(a), self.now, code) for a in approvers
        ]
        return self._finish(state, request, approvals, options, exclude=lost)

    def _revoke(self, words: list[str]) -> Signed:
        options, names = _options(words)
        lost = names[0].split(",")
        cutoff = int(options.get("cutoff", "0"))
        revocations = [Revocation(self.id(name), cutoff) for name in lost]
        return self._member_change(
            REVOKE,
            options,
            revocations=revocations,
            threshold=int(options.get("t", "0")),
            exclude=lost,
        )

    def _threshold(self, words: list[str]) -> Signed:
        options, names = _options(words)
        return self._member_change(THRESHOLD, options, threshold=int(names[0]))

    def _member_change(
        self,
        kind: str,
        options: dict[str, str],
        *,
        revocations: Sequence[Revocation] = (),
        threshold: int = 0,
        exclude: Sequence[str] = (),
    ) -> Signed:
        state = self.state
        approvers = options["by"].split(",")
        proposal = propose(
            state,
            self.key(approvers[0]),
            kind,
            self.now,
            revocations=revocations,
            threshold=threshold,
        )
        approvals = [
            approval_for(state, proposal, self.key(a), self.now) for a in approvers
        ]
        return self._finish(state, proposal, approvals, options, exclude=exclude)

    def _finish(
        self,
        state: MeshState,
        proposal: Signed,
        approvals: list[Signed],
        options: dict[str, str],
        exclude: Sequence[str],
    ) -> Signed:
        self.last = Request(proposal, approvals, state)
        approvers = options["by"].split(",")
        finalizer = options.get("fin") or next(
            (a for a in approvers if a not in exclude), approvers[0]
        )
        keys = self.key(finalizer)
        entry = finalize(state.read_directory(keys), proposal, approvals, keys)
        self.mesh.apply(entry)
        return entry

    def _rotate(self, words: list[str]) -> Signed:
        name = words[0]
        generation = self.rotations.get(name, 0) + 1
        new_keys = scenario_keys(name, generation)
        entry = rotate_device_key(self.state, self.key(name), new_keys, self.now)
        self.mesh.apply(entry)
        self.rotations[name] = generation
        self.keys[name] = new_keys
        if name == self.reader:
            self.mesh.use_reader(new_keys)
        return entry

    def _vault(self, words: list[str]) -> Signed:
        options, _ = _options(words)
        keys = self.key(options["by"])
        entry = rotate_vault(self.state.read_directory(keys), keys, self.now)
        self.mesh.apply(entry)
        return entry


def _options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``by A,B fin C t=2`` style options from plain names."""
    options: dict[str, str] = {}
    names: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if "=" in word:
            key, value = word.split("=", 1)
            options[key] = value
        elif word in ("by", "fin", "replacing") and index + 1 < len(words):
            options[word] = words[index + 1]
            index += 1
        else:
            names.append(word)
        index += 1
    return options, names


def build(text: str, label: str = "test-mesh") -> Scenario:
    """Run a scenario text and return the built mesh."""
    return Scenario(label=label).run(text)
