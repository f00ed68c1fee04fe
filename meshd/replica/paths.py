"""Passport paths and values: what an op may name and carry.

A path is a ``/``-separated list of segments, each made of ``[a-z0-9_.-]``,
under one of the known top-level sections. A value is any JSON value; it
travels as compact JSON text with sorted keys so that the same value is the
same text on every device.
"""

from __future__ import annotations

import json
import re
from typing import Any

from meshd.errors import InvalidInput

SECTIONS = ("profile", "capabilities", "delegations", "settings")
MAX_DEPTH = 8
MAX_SEGMENT_LENGTH = 64
MAX_PATH_LENGTH = 256
# One value stays well below the op decoder's limit (256 KiB with envelope).
MAX_VALUE_SIZE = 64 * 1024

CONFLICT_MODE_PATH = "settings/conflict_resolution"
MODE_NEWEST = "newest-signature"
MODE_MANUAL = "manual"

# Matched whole with fullmatch: "$" would also match before a final newline.
_SEGMENT = re.compile(r"[a-z0-9_.-]+", re.ASCII)

JSONValue = Any


def validate_path(path: str) -> str:
    """Check a passport path and return it unchanged.

    Raises:
        InvalidInput: the path is empty, too long or deep, has a bad segment,
            or is outside the known sections.
    """
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
        raise InvalidInput("A passport path must be 1 to 256 characters", field="path")
    segments = path.split("/")
    if len(segments) > MAX_DEPTH:
        raise InvalidInput("A passport path is at most 8 segments deep", field="path")
    for segment in segments:
        if segment in ("", ".", "..") or len(segment) > MAX_SEGMENT_LENGTH:
            raise InvalidInput(f"Bad path segment {segment!r}", field="path")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidInput(
                f"Path segment {segment!r} may only use a-z 0-9 _ . -", field="path"
            )
    if segments[0] not in SECTIONS:
        raise InvalidInput(
            f"A passport path starts with one of {', '.join(SECTIONS)}", field="path"
        )
    return path


def encode_value(value: JSONValue) -> str:
    """Canonical JSON text of a value.

    Raises:
        InvalidInput: the value is not JSON or is larger than 64 KiB.
    """
    try:
        text = json.dumps(
            value,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        size = len(text.encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput("The value is not a JSON value", field="value") from exc
    if size > MAX_VALUE_SIZE:
        raise InvalidInput("The value is larger than 64 KiB", field="value")
    return text


def decode_value(text: str) -> JSONValue:
    """The JSON value of canonical text made by :func:`encode_value`."""
    return json.loads(text)


def set_in_tree(tree: dict[str, Any], path: str, value: JSONValue) -> None:
    """Place ``value`` at ``path`` in a nested dict.

    Paths are applied in sorted order, so a value at ``a`` is always seen
    before one at ``a/b``; the deeper path then replaces the shorter one with
    an object. Every device builds the same tree from the same paths.
    """
    *parents, leaf = path.split("/")
    node = tree
    for segment in parents:
        child = node.get(segment)
        if not isinstance(child, dict):
            child = {}
            node[segment] = child
        node = child
    if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
        return  # a deeper path already holds an object here
    node[leaf] = value
