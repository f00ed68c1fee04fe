"""A hostile storage provider against three devices on a shared folder.

The tests play the provider: they add, rewrite, swap, truncate, replay and
withhold files in the mesh folder between sync rounds. Each attack must show
in status as a problem with its own reason, and the devices must keep
working with what is valid: a later honest change still reaches everyone.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import trio

from meshd.crypto.encoding import Record, Signed
from meshd.crypto.suite import Context, DeviceKeys
from meshd.device import STORE_NAME, Segment
from meshd.events import EventBus
from meshd.mesh.proposals import make_join_request
from meshd.mesh.state import read_entry
from meshd.node import MeshNode
from meshd.replica.store import Store
from meshd.sync.engine import MAX_OBJECT_SIZE
from meshd.sync.layout import (
    content_hash,
    log_entry_name,
    mesh_folder,
)
from tests.sync.meshes import Party, close_all, sync_all, three_device_mesh


@dataclasses.dataclass
class Template:
    """A three-device mesh built once, copied for each test."""

    root: Path
    keys: dict[str, DeviceKeys]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("template")
    (root / "storage").mkdir()

    async def build() -> dict[str, DeviceKeys]:
        parties = await three_device_mesh(root / "homes", str(root / "storage"))
        for party in parties:
            await party.node.passport_set("profile/name", f"set by {party.name}")
        await sync_all(parties)
        keys = {party.name: party.node.device.keys for party in parties}
        close_all(parties)
        return keys

    return Template(root, trio.run(build))


class Mesh:
    """The copied mesh: its parties and the provider's view of the folder."""

    def __init__(self, parties: list[Party], storage: Path) -> None:
        self.phone, self.laptop, self.tablet = parties
        self.parties = parties
        mesh_id = self.phone.node.device.mesh_id
        assert mesh_id is not None
        self.folder = storage / mesh_folder(mesh_id)

    def files(self, under: str) -> list[Path]:
        return sorted(p for p in (self.folder / under).iterdir() if p.is_file())

    def segments(self, party: Party) -> list[Path]:
        return [p for p in self.files(f"devices/{party.device_id}") if "-" in p.name]

    def plant(self, under: str, leaf_for: str, data: bytes) -> Path:
        """Write ``data`` under a name whose hash matches it, as a provider can."""
        parts = leaf_for.split("-")
        path = self.folder / under / "-".join([*parts[:-1], content_hash(data)])
        path.write_bytes(data)
        return path

    async def honest_change_still_syncs(self, writer: Party, readers: list[Party]):
        await writer.node.passport_set("settings/after", writer.name)
        await writer.sync()
        for reader in readers:
            await reader.sync()
            assert (await reader.node.passport_get("settings/after")) == writer.name


@pytest.fixture
def mesh(template: Template, tmp_path: Path) -> Iterator[Mesh]:
    shutil.copytree(template.root, tmp_path, dirs_exist_ok=True)
    parties = []
    for name, keys in template.keys.items():
        home = tmp_path / "homes" / name
        store = Store.open(home / STORE_NAME)
        store.set_setting("storage", str(tmp_path / "storage"))
        store.close()
        parties.append(Party(name, MeshNode(home, keys, EventBus(), 60.0)))
    yield Mesh(parties, tmp_path / "storage")
    close_all(parties)


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


async def test_a_device_added_without_threshold_approvals_is_refused(
    mesh: Mesh,
) -> None:
    # The provider makes its own device, a join request for it, and an entry
    # that adds it, signed by that device alone: no member approved it.
    log = mesh.phone.node.device.require_log()
    intruder = DeviceKeys.generate()
    request = make_join_request(log.state, intruder, "intruder", "laptop", 1)
    last = read_entry(log.entries[-1])
    body = dataclasses.replace(
        last,
        position=log.position + 1,
        previous=log.head,
        proposal=request.encode(),
        approvals=(),
    ).encode()
    signature = intruder.sign(Context.MEMBERSHIP, body)
    forged = Signed(
        body,
        (
            (
                dataclasses.replace(
                    log.entries[-1].signatures[0],
                    signer=intruder.device_id,
                    signature=signature,
                )
            ),
        ),
    ).encode()
    name = log_entry_name(log.position + 1, forged)
    (mesh.folder / name.path).write_bytes(forged)

    await mesh.phone.sync()

    assert dict(await mesh.phone.problems()).get(name.path) == "invalid_entry"
    devices = mesh.phone.node.device.require_log().state.devices
    assert intruder.device_id not in devices
    await mesh.honest_change_still_syncs(mesh.laptop, [mesh.phone])


async def test_an_encryption_key_substituted_in_an_entry_is_refused(
    mesh: Mesh,
) -> None:
    # The provider rewrites the entry that enrolled the tablet with its own
    # encryption key in the proposal, hoping new ops get sealed to it.
    log = mesh.phone.node.device.require_log()
    entry = log.entries[-1]
    body = read_entry(entry)
    proposal = body.proposal
    start = proposal.find(bytes(mesh.tablet.node.device.keys.public.encryption))
    assert start > 0
    planted = DeviceKeys.generate().public.encryption
    swapped = proposal[:start] + bytes(planted) + proposal[start + len(planted) :]
    forged_body = dataclasses.replace(body, proposal=swapped).encode()
    forged = Signed(forged_body, entry.signatures).encode()
    name = log_entry_name(log.position, forged)
    (mesh.folder / name.path).write_bytes(forged)

    await mesh.phone.sync()

    reasons = dict(await mesh.phone.problems())
    assert reasons.get(name.path) == "bad_signature"
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone])


async def test_a_replayed_older_head_of_a_peer_is_refused(mesh: Mesh) -> None:
    head = mesh.folder / f"devices/{mesh.laptop.device_id}/head"
    old_head = head.read_bytes()
    await mesh.laptop.node.passport_set("settings/newer", 1)
    await mesh.phone.sync()

    # The provider serves the laptop's old head again.
    head.write_bytes(old_head)
    await mesh.laptop.node.passport_set("settings/newest", 2)
    head_path = head.relative_to(mesh.folder).as_posix()
    mesh.laptop.node.device._published_head = b""
    head.write_bytes(old_head)
    for path in mesh.segments(mesh.laptop)[-1:]:
        path.unlink()
    mesh.phone.node.device._checked_heads.discard(mesh.laptop.device_id)

    await mesh.phone.sync()

    assert dict(await mesh.phone.problems()).get(head_path) == "head_went_backwards"


async def test_a_rewritten_log_folder_is_noticed_and_repaired(mesh: Mesh) -> None:
    # TODO: what a device saw listed is kept in memory only, so a rollback
    # made while the daemon is stopped shows no problem after a restart; the
    # device still keeps and republishes its newer log.
    await mesh.phone.sync()

    # The provider rolls the mesh log back to the genesis entry alone.
    for path in mesh.files("log")[1:]:
        path.unlink()

    await mesh.phone.sync()

    reasons = [reason for _, reason in await mesh.phone.problems()]
    assert reasons.count("object_missing") == 2
    assert mesh.phone.node.device.require_log().position == 2
    assert len(mesh.files("log")) == 3  # pushed again by the phone
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.laptop])


async def test_a_withheld_revocation_is_noticed_and_late_ops_are_dropped(
    mesh: Mesh,
) -> None:
    """The provider hides the entry that revoked the tablet from the phone and
    serves the tablet's later ops. The phone cannot know the ops are past the
    cutoff, but the laptop's head names a mesh-log head the phone lacks, so
    it says the log is withheld; once the entry arrives the ops are dropped.

    Showing two devices two forks is the same attack: only threshold-signed
    entries exist, so the provider can only hide one of two honest entries
    from each side, and each side sees the other's head name an unknown
    mesh-log head (``mesh_log_withheld``).
    """
    proposal = await mesh.laptop.node.revoke(mesh.tablet.device_id, "stolen")
    await mesh.tablet.sync()
    await mesh.phone.sync()
    log_before = {p.name for p in mesh.files("log")}
    await mesh.phone.node.approve(proposal["id"], None)
    await mesh.phone.node.passport_set("settings/after_revocation", True)
    withheld = [p for p in mesh.files("log") if p.name not in log_before]
    assert len(withheld) == 1
    hidden = withheld[0].read_bytes()
    withheld[0].unlink()

    # Only the laptop is fooled: it never saw the entry, and the phone
    # writes it again on every round, so the provider deletes it each time.
    await mesh.tablet.node.passport_set("profile/name", "written after revocation")
    await mesh.tablet.sync()
    withheld[0].unlink(missing_ok=True)
    await mesh.laptop.sync()
    withheld[0].unlink(missing_ok=True)
    await mesh.phone.sync()
    withheld[0].unlink(missing_ok=True)
    await mesh.laptop.sync()

    assert "mesh_log_withheld" in await mesh.laptop.reasons()

    withheld[0].write_bytes(hidden)
    await mesh.laptop.sync()
    assert mesh.laptop.node.device.state_name == "member"
    name = await mesh.laptop.node.passport_get("profile/name")
    assert name != "written after revocation"
    await mesh.honest_change_still_syncs(mesh.phone, [mesh.laptop])


async def test_devices_shown_different_forks_agree_once_storage_shows_both(
    mesh: Mesh,
) -> None:
    # The phone and the laptop each finalize a change at the same position.
    ours = await mesh.phone.node.set_threshold(3)
    theirs = await mesh.laptop.node.set_threshold(3)
    await mesh.phone.sync()
    log_before = {p.name for p in mesh.files("log")}
    await mesh.phone.node.approve(theirs["id"], None)
    (by_phone,) = [p for p in mesh.files("log") if p.name not in log_before]
    hidden = mesh.folder / "hidden"
    hidden.mkdir()
    by_phone.rename(hidden / by_phone.name)

    # Storage hides each side from the other device for a while.
    await mesh.laptop.node.approve(ours["id"], None)
    (by_laptop,) = [p for p in mesh.files("log") if p.name not in log_before]
    await mesh.tablet.sync()
    by_laptop.rename(hidden / by_laptop.name)
    (hidden / by_phone.name).rename(by_phone)
    await mesh.phone.sync()

    def head(party: Party) -> bytes:
        return party.node.device.require_log().head

    assert head(mesh.phone) != head(mesh.tablet)

    # Both shown: every device keeps the same side, by the fork rules.
    (hidden / by_laptop.name).rename(by_laptop)
    await sync_all(mesh.parties, rounds=2)
    heads = {head(party) for party in mesh.parties}
    assert len(heads) == 1
    for party in mesh.parties:
        assert "rollback_refused" not in await party.reasons()
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone, mesh.laptop])


async def _laptop_writes_one_segment(mesh: Mesh) -> Path:
    before = set(mesh.segments(mesh.laptop))
    await mesh.laptop.node.passport_set("settings/fresh", "from laptop")
    (fresh,) = set(mesh.segments(mesh.laptop)) - before
    return fresh


async def test_swapped_segments_are_refused(mesh: Mesh) -> None:
    fresh = await _laptop_writes_one_segment(mesh)
    tablet_segment = mesh.segments(mesh.tablet)[0]

    # Same bytes under the other name: the hash no longer matches.
    fresh_bytes = fresh.read_bytes()
    fresh.write_bytes(tablet_segment.read_bytes())
    # The tablet's ops renamed (with a matching hash) as the laptop's.
    moved = mesh.plant(
        f"devices/{mesh.laptop.device_id}",
        fresh.name.replace("000000000002", "000000000009"),
        tablet_segment.read_bytes(),
    )
    await mesh.phone.sync()

    problems = dict(await mesh.phone.problems())
    assert problems[fresh.relative_to(mesh.folder).as_posix()] == "hash_mismatch"
    assert problems[moved.relative_to(mesh.folder).as_posix()] == "misplaced_segment"
    fresh.write_bytes(fresh_bytes)
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone])


async def test_a_truncated_segment_is_refused(mesh: Mesh) -> None:
    fresh = await _laptop_writes_one_segment(mesh)
    cut = fresh.read_bytes()[:-40]
    fresh.unlink()
    planted = mesh.plant(f"devices/{mesh.laptop.device_id}", fresh.name, cut)

    await mesh.phone.sync()

    problems = dict(await mesh.phone.problems())
    assert problems[planted.relative_to(mesh.folder).as_posix()] == "malformed"
    assert "fresh" not in (await mesh.phone.passport()).get("settings", {})
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone])


async def test_flipped_bits_in_an_op_and_in_an_approval_are_refused(
    mesh: Mesh,
) -> None:
    # An approval carrying a share, with one bit flipped.
    proposal = await mesh.laptop.node.set_threshold(3)
    folder = mesh.folder / "proposals" / proposal["id"] / "approvals"
    (approval,) = folder.iterdir()
    data = approval.read_bytes()
    approval.write_bytes(flip(data, len(data) - 100))

    # Planted last: the laptop's next push would restore the honest segment.
    fresh = await _laptop_writes_one_segment(mesh)
    segment = Segment.decode(fresh.read_bytes())
    op = segment.ops[0]
    # A bit deep in the op: inside its sealed payload and wrapped keys.
    damaged = Segment((flip(op, len(op) - 80),)).encode()
    fresh.unlink()
    planted = mesh.plant(f"devices/{mesh.laptop.device_id}", fresh.name, damaged)

    await mesh.phone.sync()

    problems = dict(await mesh.phone.problems())
    assert problems[planted.relative_to(mesh.folder).as_posix()] in (
        "bad_signature",
        "malformed",
    )
    approval_path = approval.relative_to(mesh.folder).as_posix()
    assert problems[approval_path] in (
        "bad_signature",
        "malformed",
        "misplaced_approval",
    )
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone])


@dataclasses.dataclass(frozen=True)
class FutureSegment(Record):
    TAG: ClassVar[str] = "segment"
    VERSION: ClassVar[int] = 2
    ops: tuple[bytes, ...]


async def test_an_object_of_an_unknown_format_version_is_refused(
    mesh: Mesh,
) -> None:
    fresh = await _laptop_writes_one_segment(mesh)
    ops = Segment.decode(fresh.read_bytes()).ops
    fresh.unlink()
    planted = mesh.plant(
        f"devices/{mesh.laptop.device_id}", fresh.name, FutureSegment(ops).encode()
    )

    await mesh.phone.sync()

    problems = dict(await mesh.phone.problems())
    assert problems[planted.relative_to(mesh.folder).as_posix()] == "unknown_version"
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone])


async def test_a_huge_object_is_refused_unread(mesh: Mesh) -> None:
    leaf = f"000000000050-000000000050-{'a' * 52}"
    huge = mesh.folder / f"devices/{mesh.laptop.device_id}/{leaf}"
    with huge.open("wb") as handle:
        handle.truncate(MAX_OBJECT_SIZE + 1)  # sparse: nothing to read

    await mesh.phone.sync()

    problems = dict(await mesh.phone.problems())
    assert problems[huge.relative_to(mesh.folder).as_posix()] == "too_large"
    await mesh.honest_change_still_syncs(mesh.tablet, [mesh.phone])


async def test_sync_client_junk_is_ignored(mesh: Mesh) -> None:
    segment = mesh.segments(mesh.laptop)[0]
    junk = [
        segment.with_name(f"{segment.name} (conflicted copy).seg"),
        segment.with_name(f"{segment.name}.tmp"),
        segment.with_name(f".{segment.name}.icloud"),
    ]
    for path in junk:
        path.write_bytes(b"junk")
    await mesh.phone.sync()
    await mesh.phone.sync()
    mesh.phone.backend.requests.reset()

    await mesh.phone.sync()

    assert await mesh.phone.problems() == []
    assert mesh.phone.backend.requests.snapshot()["GET"] == 0


async def test_an_idle_poll_is_one_listing_and_a_one_op_push_three_requests(
    mesh: Mesh,
) -> None:
    await sync_all(mesh.parties, rounds=3)
    await mesh.phone.sync()
    mesh.phone.backend.requests.reset()
    await mesh.phone.sync()
    idle = mesh.phone.backend.requests.snapshot()

    mesh.phone.backend.requests.reset()
    await mesh.phone.node.passport_set("settings/one", 1)
    push = mesh.phone.backend.requests.snapshot()

    assert (idle["LIST"], idle["GET"], idle["PUT"]) == (1, 0, 0)
    assert sum(push.values()) <= 3
    assert push["PUT"] == 2
