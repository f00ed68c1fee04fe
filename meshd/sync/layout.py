"""The object layout of a mesh in storage, as pure functions of names.

Theory of operation
-------------------
Every object of a mesh lives under one folder named after the mesh id
(:func:`mesh_folder`), at a path that says what the object is::

    log/<position>-<hash>                          mesh-log entries
    proposals/<proposal-id>/request                pending proposals
    proposals/<proposal-id>/approvals/<device-id>  their approvals
    devices/<device-id>/<first>-<last>-<hash>      a segment of that device's ops
    devices/<device-id>/head                       that device's signed head
    snapshots/<generation>-<hash>                  snapshots

Numbers are decimal, zero-padded to :data:`NUMBER_WIDTH` digits so that names
sort in numeric order. A segment's name carries the first *and* the last op
sequence it holds, so a device can tell which segment it lacks from a listing
alone, without reading any segment. ``<hash>`` is :func:`content_hash` of the
object's exact bytes (lower-case base32 of BLAKE2b-256, like the DID): a
reader checks it before trusting the object, and since the name follows from
the bytes, two writers of the same name always write the same bytes.

Only ``head`` is ever rewritten, and only by its own device; every other name
is written once (immutable). A listing may say which version of a head it
saw (:attr:`HeadName.version`): an opaque tag from the storage (a folder's
file identity and times, an S3 ETag) that changes whenever the head is
rewritten, so a reader knows when to read it again without reading it.

The parser (:func:`parse_name`) is strict: a name either matches one of the
shapes above exactly, or it is junk and the caller ignores it. That one rule
covers the files that sync clients and operating systems leave in synced
folders (conflict copies, temporary files, placeholders, ``.DS_Store``), our
own temporary names while a write is under way, and hostile names from a
storage provider (``..``, absolute paths, separators inside a component): no
junk name can ever be turned back into a path, so none can escape the mesh
folder. :func:`junk_reason` says what a junk name most likely is, for logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from meshd.crypto.suite import HASH_SIZE, base32_text, blake2b, normalize_device_id
from meshd.errors import InvalidInput

# Twelve digits: a device writing one segment per second for 30 000 years.
NUMBER_WIDTH = 12
MAX_NUMBER = 10**NUMBER_WIDTH - 1

# Unpadded base32 of a 32-byte hash: ceil(256 / 5) characters.
HASH_TEXT_LENGTH = 52

# Longer names are never produced by this layout; refusing them early bounds
# the work spent on a hostile listing.
MAX_NAME_LENGTH = 256

# Proposal ids are chosen by the mesh core: lower-case letters and digits
# (base32 or hex text of a hash), long enough to be unique.
_PROPOSAL_ID = re.compile(r"[a-z0-9]{8,64}")
_HASH = re.compile(rf"[a-z2-7]{{{HASH_TEXT_LENGTH}}}")
_NUMBER = re.compile(rf"[0-9]{{{NUMBER_WIDTH}}}")
# A folder of a listing prefix: the characters of every fixed word, number,
# hash, proposal id and device id above, and nothing else (no dot, no slash).
_FOLDER = re.compile(r"[A-Za-z0-9-]{1,64}")

# Our own in-flight writes on folders: hidden (leading dot) and ending in
# ".tmp", so every sync client and our own parser treat them as temporary.
TEMPORARY_MARK = ".meshd-"
TEMPORARY_SUFFIX = ".tmp"


def content_hash(data: bytes) -> str:
    """The hash text that names an object: lower base32 of BLAKE2b-256."""
    return content_hash_text(blake2b(data))


def mesh_folder(mesh_id: bytes) -> str:
    """The folder name of a mesh: the lower base32 text of its id.

    It is the same text as the end of the mesh's ``did:human:`` DID.

    Raises:
        InvalidInput: ``mesh_id`` is not a 32-byte hash.
    """
    if len(mesh_id) != HASH_SIZE:
        raise InvalidInput("A mesh id is a 32-byte hash", field="mesh_id")
    return content_hash_text(mesh_id)


def content_hash_text(digest: bytes) -> str:
    """The text form of an already computed 32-byte digest."""
    return base32_text(digest).lower()


# -- Validation of the parts of a name -------------------------------------------


def _check_number(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer", field=field)
    if not 0 <= value <= MAX_NUMBER:
        raise InvalidInput(f"{field} is out of range: {value}", field=field)


def _check_hash(value: str) -> None:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise InvalidInput("Not a content hash text", field="hash")


def _check_device_id(value: str) -> None:
    # The canonical form only: one device, one folder, on every file system.
    if not isinstance(value, str) or normalize_device_id(value) != value:
        raise InvalidInput(f"{value!r} is not a canonical device id", field="device_id")


def _check_proposal_id(value: str) -> None:
    if not isinstance(value, str) or not _PROPOSAL_ID.fullmatch(value):
        raise InvalidInput(f"{value!r} is not a proposal id", field="proposal_id")


def _number_text(value: int) -> str:
    return f"{value:0{NUMBER_WIDTH}d}"


# -- The names -------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntryName:
    """``log/<position>-<hash>``: one mesh-log entry."""

    mutable: ClassVar[bool] = False
    position: int
    hash: str

    def __post_init__(self) -> None:
        _check_number(self.position, "position")
        _check_hash(self.hash)

    @property
    def path(self) -> str:
        return f"log/{_number_text(self.position)}-{self.hash}"


@dataclass(frozen=True)
class ProposalRequestName:
    """``proposals/<id>/request``: the request of a pending proposal."""

    mutable: ClassVar[bool] = False
    proposal_id: str

    def __post_init__(self) -> None:
        _check_proposal_id(self.proposal_id)

    @property
    def path(self) -> str:
        return f"proposals/{self.proposal_id}/request"


@dataclass(frozen=True)
class ApprovalName:
    """``proposals/<id>/approvals/<device-id>``: one device's approval."""

    mutable: ClassVar[bool] = False
    proposal_id: str
    device_id: str

    def __post_init__(self) -> None:
        _check_proposal_id(self.proposal_id)
        _check_device_id(self.device_id)

    @property
    def path(self) -> str:
        return f"proposals/{self.proposal_id}/approvals/{self.device_id}"


@dataclass(frozen=True)
class SegmentName:
    """``devices/<device-id>/<first>-<last>-<hash>``: a batch of one device's ops.

    ``first_seq`` and ``last_seq`` are the sequences of its first and last op
    (equal for a one-op segment).
    """

    mutable: ClassVar[bool] = False
    device_id: str
    first_seq: int
    last_seq: int
    hash: str

    def __post_init__(self) -> None:
        _check_device_id(self.device_id)
        _check_number(self.first_seq, "first_seq")
        _check_number(self.last_seq, "last_seq")
        if self.last_seq < self.first_seq:
            raise InvalidInput("A segment ends before it starts", field="last_seq")
        _check_hash(self.hash)

    @property
    def path(self) -> str:
        first, last = _number_text(self.first_seq), _number_text(self.last_seq)
        return f"devices/{self.device_id}/{first}-{last}-{self.hash}"


@dataclass(frozen=True)
class HeadName:
    """``devices/<device-id>/head``: the device's signed head, rewritten by it.

    ``version`` is what the listing that found the head tagged it with, or
    ``None`` when the storage offers no tag (or the name was not listed). It
    is no part of the name: two names of one head are equal whatever their
    versions.
    """

    mutable: ClassVar[bool] = True
    device_id: str
    version: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_device_id(self.device_id)

    @property
    def path(self) -> str:
        return f"devices/{self.device_id}/head"


@dataclass(frozen=True)
class SnapshotName:
    """``snapshots/<generation>-<hash>``: a snapshot of the passport."""

    mutable: ClassVar[bool] = False
    generation: int
    hash: str

    def __post_init__(self) -> None:
        _check_number(self.generation, "generation")
        _check_hash(self.hash)

    @property
    def path(self) -> str:
        return f"snapshots/{_number_text(self.generation)}-{self.hash}"


ObjectName = (
    LogEntryName
    | ProposalRequestName
    | ApprovalName
    | SegmentName
    | HeadName
    | SnapshotName
)


# -- Builders from content -------------------------------------------------------


def log_entry_name(position: int, data: bytes) -> LogEntryName:
    """The name of the mesh-log entry ``data`` at ``position``."""
    return LogEntryName(position, content_hash(data))


def segment_name(
    device_id: str, first_seq: int, last_seq: int, data: bytes
) -> SegmentName:
    """The name of a segment holding ops ``first_seq..last_seq`` of a device."""
    return SegmentName(device_id, first_seq, last_seq, content_hash(data))


def snapshot_name(generation: int, data: bytes) -> SnapshotName:
    """The name of the snapshot ``data`` of a vault generation."""
    return SnapshotName(generation, content_hash(data))


# -- The parser ------------------------------------------------------------------


def parse_name(path: str) -> ObjectName | None:
    """The object a path names, or ``None`` if it is junk.

    ``path`` is relative to the mesh folder, with ``/`` separators. Anything
    that is not exactly one of the layout's shapes is junk, including every
    hostile form (absolute, ``..``, empty or dotted components, backslashes).
    """
    if not isinstance(path, str) or len(path) > MAX_NAME_LENGTH:
        return None
    parts = path.split("/")
    try:
        return _parse_parts(parts)
    except InvalidInput:
        return None


def _parse_parts(parts: list[str]) -> ObjectName | None:
    # Each branch fixes the component count, so no extra component slips in;
    # the dataclass checks then validate every variable component.
    match parts:
        case ["log", leaf]:
            position, digest = _split_numbered(leaf, 1)
            return LogEntryName(position[0], digest)
        case ["proposals", proposal_id, "request"]:
            return ProposalRequestName(proposal_id)
        case ["proposals", proposal_id, "approvals", device_id]:
            return ApprovalName(proposal_id, device_id)
        case ["devices", device_id, "head"]:
            return HeadName(device_id)
        case ["devices", device_id, leaf]:
            (first, last), digest = _split_numbered(leaf, 2)
            return SegmentName(device_id, first, last, digest)
        case ["snapshots", leaf]:
            generation, digest = _split_numbered(leaf, 1)
            return SnapshotName(generation[0], digest)
    return None


def _split_numbered(leaf: str, count: int) -> tuple[list[int], str]:
    """Split ``<n>-...-<hash>`` with exactly ``count`` padded numbers.

    Raises:
        InvalidInput: the leaf has another shape.
    """
    fields = leaf.split("-")
    if len(fields) != count + 1:
        raise InvalidInput("Not a numbered name", field="name")
    numbers = fields[:count]
    if not all(_NUMBER.fullmatch(number) for number in numbers):
        raise InvalidInput("Not a padded number", field="name")
    return [int(number) for number in numbers], fields[count]


def check_name(path: str) -> ObjectName:
    """Parse a name that must be valid.

    Raises:
        InvalidInput: the name is not one of the layout's shapes.
    """
    parsed = parse_name(path)
    if parsed is None:
        raise InvalidInput(f"{path[:80]!r} is not a mesh object name", field="name")
    return parsed


def check_prefix(prefix: str) -> str:
    """Validate a listing prefix: ``""`` or folders such as ``devices/<id>``.

    Returns the prefix without a trailing ``/``.

    Raises:
        InvalidInput: the prefix could leave the mesh folder or is malformed.
    """
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    if trimmed == "":
        return ""
    folders = trimmed.split("/")
    if len(folders) > 3 or not all(_FOLDER.fullmatch(part) for part in folders):
        raise InvalidInput(f"{prefix[:80]!r} is not a listing prefix", field="prefix")
    return trimmed


# -- Junk, for logs --------------------------------------------------------------

_CONFLICT_COPY = re.compile(
    r".*(conflicted copy|conflict|\(\d+\)|[ _-]\d+$|[ _-]\d+\.[^.]*$).*", re.IGNORECASE
)
_SYSTEM_FILES = frozenset({".ds_store", "desktop.ini", "thumbs.db", ".dropbox"})


def is_temporary_name(leaf: str) -> bool:
    """Whether a file name is one of our own in-flight writes."""
    return (
        leaf.startswith(".")
        and TEMPORARY_MARK in leaf
        and leaf.endswith(TEMPORARY_SUFFIX)
    )


def temporary_name(leaf: str, token: str) -> str:
    """A hidden temporary name beside ``leaf`` for a write under way."""
    return f".{leaf}{TEMPORARY_MARK}{token}{TEMPORARY_SUFFIX}"


def junk_reason(path: str) -> str:
    """What a name that :func:`parse_name` rejected most likely is.

    Only for logs: the answer never changes what is done with the name.
    """
    leaf = path.rsplit("/", 1)[-1]
    lowered = leaf.lower()
    if path.startswith("/") or "\\" in path or ".." in path.split("/"):
        return "hostile path"
    if is_temporary_name(leaf):
        return "write in progress"
    if lowered in _SYSTEM_FILES:
        return "operating system file"
    if lowered.endswith(".icloud") and leaf.startswith("."):
        return "cloud placeholder"
    if lowered.endswith((".tmp", ".temp", ".part", ".partial", ".swp")) or (
        leaf.startswith(("~$", ".~lock", "~"))
    ):
        return "temporary file"
    if _CONFLICT_COPY.fullmatch(leaf):
        return "sync conflict copy"
    return "unknown name"
