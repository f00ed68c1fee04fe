"""The object layout: names built from content, and a parser that accepts
nothing but those names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.crypto.suite import DeviceKeys, blake2b
from meshd.errors import InvalidInput
from meshd.sync import layout
from meshd.sync.layout import (
    ApprovalName,
    HeadName,
    LogEntryName,
    ProposalRequestName,
    SegmentName,
    SnapshotName,
    check_prefix,
    content_hash,
    junk_reason,
    parse_name,
)

DEVICE = DeviceKeys.generate().device_id
PROPOSAL = "abcdefgh12345678"
HASH = content_hash(b"some object")


def every_kind_of_name() -> list[layout.ObjectName]:
    return [
        layout.log_entry_name(0, b"genesis"),
        ProposalRequestName(PROPOSAL),
        ApprovalName(PROPOSAL, DEVICE),
        layout.segment_name(DEVICE, 1, 42, b"ops"),
        HeadName(DEVICE),
        layout.snapshot_name(3, b"snapshot"),
    ]


@pytest.mark.parametrize("name", every_kind_of_name(), ids=lambda n: type(n).__name__)
def test_every_built_name_parses_back_to_itself(name: layout.ObjectName) -> None:
    assert parse_name(name.path) == name


def test_content_hash_is_the_blake2b_of_the_bytes_in_lower_base32() -> None:
    data = b"segment bytes"
    name = layout.segment_name(DEVICE, 7, 7, data)

    assert name.hash == layout.content_hash_text(blake2b(data))
    assert name.hash == name.hash.lower()
    assert len(name.hash) == layout.HASH_TEXT_LENGTH
    assert content_hash(data + b"!") != name.hash


def test_padded_numbers_make_names_sort_in_numeric_order() -> None:
    positions = [0, 1, 9, 10, 99, 100, 12345, 10**11]
    paths = [LogEntryName(p, HASH).path for p in positions]

    assert sorted(paths) == paths


def test_segment_name_carries_its_first_and_last_sequence() -> None:
    name = SegmentName(DEVICE, 5, 9, HASH)

    assert name.path == f"devices/{DEVICE}/000000000005-000000000009-{HASH}"
    assert parse_name(name.path) == name


def test_only_the_head_is_mutable() -> None:
    mutable = [type(name).__name__ for name in every_kind_of_name() if name.mutable]

    assert mutable == ["HeadName"]


def test_mesh_folder_is_the_did_text_of_the_mesh_id() -> None:
    mesh_id = blake2b(b"genesis entry")

    assert layout.mesh_folder(mesh_id) == content_hash(b"genesis entry")
    with pytest.raises(InvalidInput):
        layout.mesh_folder(b"short")


@pytest.mark.parametrize(
    "build",
    [
        lambda: LogEntryName(-1, HASH),
        lambda: LogEntryName(10**12, HASH),
        lambda: LogEntryName(1, HASH.upper()),
        lambda: SegmentName(DEVICE, 9, 5, HASH),
        lambda: HeadName(DEVICE.lower()),
        lambda: HeadName("../../etc"),
        lambda: ProposalRequestName("../x"),
        lambda: ApprovalName(PROPOSAL, DEVICE + "/x"),
        lambda: SnapshotName(True, HASH),
    ],
)
def test_builders_refuse_parts_that_are_not_canonical(build: object) -> None:
    with pytest.raises(InvalidInput):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "path",
    [
        f"../log/000000000001-{HASH}",
        f"/log/000000000001-{HASH}",
        f"log/../log/000000000001-{HASH}",
        f"log//000000000001-{HASH}",
        f"log/000000000001-{HASH}/",
        f"log\\000000000001-{HASH}",
        f"devices/{DEVICE}/../../head",
        f"devices/../{DEVICE}/head",
        f"devices/{DEVICE}/head/..",
        "proposals/../../../etc/passwd",
        f"proposals/{PROPOSAL}/approvals/../request",
        f"./log/000000000001-{HASH}",
        f"log/000000000001-{HASH}\n",
        f"log/1-{HASH}",
        f"log/+00000000001-{HASH}",
        f"log/000000000001-{HASH}-{HASH}",
        f"snapshots/000000000001-{HASH}.seg",
        "",
        "/",
        "log" + "/x" * 200,
    ],
)
def test_hostile_and_malformed_names_are_not_objects(path: str) -> None:
    assert parse_name(path) is None
    with pytest.raises(InvalidInput):
        layout.check_name(path)


@pytest.mark.parametrize(
    ("leaf", "reason"),
    [
        (f"000000000001-{HASH} (conflicted copy 2024-01-01)", "sync conflict copy"),
        (f"000000000001-{HASH} (1)", "sync conflict copy"),
        (f"000000000001-{HASH} 2", "sync conflict copy"),
        (f".000000000001-{HASH}.icloud", "cloud placeholder"),
        (".DS_Store", "operating system file"),
        ("desktop.ini", "operating system file"),
        ("segment.tmp", "temporary file"),
        ("~$segment", "temporary file"),
        (".~lock.segment#", "temporary file"),
        (layout.temporary_name(f"000000000001-{HASH}", "ab12"), "write in progress"),
    ],
)
def test_files_left_by_sync_clients_are_junk_with_a_reason(
    leaf: str, reason: str
) -> None:
    path = f"log/{leaf}"

    assert parse_name(path) is None
    assert junk_reason(path) == reason


def test_hostile_names_are_reported_as_such() -> None:
    assert junk_reason("../../etc/passwd") == "hostile path"
    assert junk_reason("/etc/passwd") == "hostile path"


@pytest.mark.parametrize(
    "prefix", ["", "log", "log/", f"devices/{DEVICE}", "proposals"]
)
def test_listing_prefixes_inside_the_mesh_folder_are_accepted(prefix: str) -> None:
    assert check_prefix(prefix) == prefix.rstrip("/")


@pytest.mark.parametrize(
    "prefix", ["..", "../x", "/log", "log/../..", "a/b/c/d", "log/.x"]
)
def test_listing_prefixes_that_could_escape_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        check_prefix(prefix)


# Pieces of real names mixed with hostile ones, so that generated paths are
# often valid and often only one step away from valid.
_PIECES = [
    "log",
    "devices",
    "proposals",
    "approvals",
    "request",
    "snapshots",
    "head",
    DEVICE,
    PROPOSAL,
    f"000000000001-{HASH}",
    f"000000000001-000000000002-{HASH}",
    "..",
    ".",
    "",
    "\\",
    "~",
    " (1)",
    "\0",
    "/",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6), st.booleans())
def test_any_name_the_parser_accepts_stays_inside_the_mesh_folder(
    pieces: list[str], joined: bool
) -> None:
    path = ("/" if joined else "").join(pieces)
    parsed = parse_name(path)

    if parsed is not None:
        parts = path.split("/")
        assert parsed.path == path
        assert not path.startswith("/")
        assert all(part not in ("", ".", "..") for part in parts)
        assert "\\" not in path and "\0" not in path


@settings(max_examples=100, deadline=None)
@given(
    position=st.integers(0, layout.MAX_NUMBER),
    first=st.integers(0, 1000),
    length=st.integers(0, 1000),
    data=st.binary(max_size=64),
)
def test_names_from_any_valid_parts_round_trip(
    position: int, first: int, length: int, data: bytes
) -> None:
    names: list[layout.ObjectName] = [
        layout.log_entry_name(position, data),
        layout.segment_name(DEVICE, first, first + length, data),
        layout.snapshot_name(position, data),
    ]

    for name in names:
        assert parse_name(name.path) == name
