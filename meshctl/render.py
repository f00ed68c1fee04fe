"""Readable text for meshctl results (``--json`` prints them unchanged).

Everything shown here may hold text other people chose (device names, labels,
reasons, passport values), so every cell passes through :func:`clean`: a
name must never move the cursor, rewrite a line or forge a table row.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

Renderer = Callable[[Any], str]
CellRenderer = Callable[[Any], str]

# Longest table cell shown; longer ones end with an ellipsis.
MAX_CELL = 80
ELLIPSIS = "…"

# C0 controls, DEL, C1 controls and the bidirectional overrides and isolates
# (which can make a line read in a different order than it is stored).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """The text with every control or direction character shown as an escape."""
    return _UNSAFE.sub(_escape, text)


def shorten(text: str, limit: int = MAX_CELL) -> str:
    """The text cut to ``limit`` characters, the cut marked by an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def value_text(value: Any) -> str:
    """One value as a single safe line."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return clean(str(value))
    return clean(json.dumps(value, ensure_ascii=False))


def json_text(value: Any) -> str:
    """Indented JSON, safe to print: string contents are escaped, not obeyed."""
    # json.dumps escapes C0 inside strings; DEL, C1 and bidi marks it keeps
    # raw, so each line (the newlines left are the indentation's) is cleaned.
    dumped = json.dumps(value, indent=2, ensure_ascii=False)
    return "\n".join(clean(line) for line in dumped.split("\n"))


# A write answered before storage took it: it is saved, and not lost.
NOT_PUSHED = (
    "saved on this device; storage not reached yet, "
    "it will be pushed when storage answers"
)


def fields(result: Any) -> str:
    """``key: value`` lines for an object, the value itself otherwise.

    A write that storage has not taken yet (``pushed: false``) says so in
    words on a last line.
    """
    if not isinstance(result, dict):
        return json_text(result)
    keys = [clean(str(key)) for key in result]
    width = max((len(key) for key in keys), default=0)
    lines = [
        f"{key.ljust(width)}  {value_text(value)}"
        for key, value in zip(keys, result.values(), strict=True)
    ]
    if result.get("pushed") is False:
        lines.append(NOT_PUSHED)
    return "\n".join(lines)


def time_text(value: Any, now: float | None = None) -> str:
    """A moment (epoch milliseconds or seconds) as local ISO time and distance."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value_text(value)

    # Milliseconds since 1970 are above 1e11 for any date after 1973; seconds
    # stay below it until the year 5138.
    return moment_text(value, 1000 if value > 1e11 else 1, now)


def seconds_time_text(value: Any, now: float | None = None) -> str:
    """A moment in seconds since the epoch, however far, as :func:`time_text`
    shows it: for values that are never milliseconds, such as an expiry."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value_text(value)
    return moment_text(value, 1, now)


def moment_text(value: float, per_second: int, now: float | None) -> str:
    """``value`` (``per_second`` units a second since the epoch) as local ISO
    time and distance; as it came when no calendar holds it."""
    try:
        moment = value / per_second
        local = datetime.fromtimestamp(moment).astimezone()
    except (OverflowError, OSError, ValueError):
        return value_text(value)
    stamp = local.isoformat(timespec="seconds")
    return f"{stamp} ({distance_text(moment - (time.time() if now is None else now))})"


def distance_text(delta: float) -> str:
    """``in 4 min`` or ``3 h ago`` for a distance in seconds."""
    size = abs(delta)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= length:
            amount = f"{int(size // length)} {unit}"
            break
    else:
        amount = f"{int(size)} s"
    return f"in {amount}" if delta >= 0 else f"{amount} ago"


def table(
    columns: Sequence[str],
    empty: str,
    cells: dict[str, CellRenderer] | None = None,
    whole: Sequence[str] = (),
) -> Renderer:
    """A renderer drawing a list of objects as aligned columns.

    Args:
        columns: the keys shown, in order; headers are their upper case.
        empty: the text for an empty list.
        cells: how to show a column's values, when not with :func:`value_text`.
        whole: columns never cut short (what a person must read in full to
            decide, such as what approving a proposal changes).
    """
    shown = {column: (cells or {}).get(column, value_text) for column in columns}
    limits = {column: 10**9 if column in whole else MAX_CELL for column in columns}

    def render(rows: Any) -> str:
        if not isinstance(rows, list):
            return fields(rows)
        if not rows:
            return empty
        lines = [[column.upper() for column in columns]]
        lines += [
            [
                shorten(clean(shown[column](row.get(column))), limits[column])
                if isinstance(row, dict)
                else ""
                for column in columns
            ]
            for row in rows
        ]
        return aligned(lines)

    return render


def aligned(lines: list[list[str]]) -> str:
    """Rows of cells padded into columns two spaces apart."""
    widths = [max(len(line[index]) for line in lines) for index in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def candidates_text(candidates: Any) -> str:
    """A conflict's candidates: how many, and their op ids."""
    if not isinstance(candidates, list):
        return value_text(candidates)
    ids = [
        value_text(candidate.get("op_id")) if isinstance(candidate, dict) else "?"
        for candidate in candidates
    ]
    return f"{len(candidates)}: {', '.join(ids)}"


conflicts = table(
    ("id", "path", "candidates"),
    "No conflicts.",
    {"candidates": candidates_text},
)

pending = table(
    ("id", "kind", "summary", "approvals", "rejections", "required", "expires_at"),
    "Nothing pending.",
    {"expires_at": time_text},
    whole=("summary",),
)


def standing_text(reason: Any) -> str:
    """Why a delegation does not hold, in words; a dash when it holds."""
    if reason == "ok":
        return "-"
    return value_text(reason.replace("_", " ") if isinstance(reason, str) else reason)


delegations = table(
    ("id", "capabilities", "expires_at", "issuer", "valid", "reason"),
    "No delegations.",
    {"expires_at": seconds_time_text, "reason": standing_text},
)


def pretty_json(result: Any) -> str:
    return json_text(result)


def invite(result: Any) -> str:
    """Only the invite string, on its own line, ready to copy."""
    if isinstance(result, dict) and isinstance(result.get("invite"), str):
        return clean(result["invite"])
    return fields(result)


def status(result: Any) -> str:
    """The status as a person reads it: who, which mesh, what needs attention."""
    if not isinstance(result, dict):
        return fields(result)
    lines = [
        f"device     {value_text(result.get('device_id'))}",
        f"state      {value_text(result.get('state'))}",
    ]
    if result.get("did"):
        lines += [
            f"identity   {value_text(result['did'])}  "
            f"({value_text(result.get('label'))})",
            f"threshold  {value_text(result.get('threshold'))} of "
            f"{active_count(result.get('devices'))} active devices",
            f"storage    {value_text(result.get('storage'))}",
        ]
    if isinstance(result.get("request"), dict):
        lines.append(f"request    {request_text(result['request'])}")
    lines += [
        f"warning    {value_text(warning)}" for warning in result.get("warnings") or []
    ]
    return "\n".join(lines)


# Storage problems that say more than "a bad object", in the person's words.
def active_count(devices: Any) -> int:
    """How many of the listed devices are active (revoked ones cannot approve)."""
    if not isinstance(devices, list):
        return 0
    return sum(
        1
        for device in devices
        if isinstance(device, dict) and device.get("state") == "active"
    )


def request_text(request: dict[str, Any]) -> str:
    """This device's own join or recovery request, with the code to type."""
    return (
        f"{value_text(request.get('request_id'))}  "
        f"code {value_text(request.get('code'))}  "
        f"approvals {value_text(request.get('approvals'))} of "
        f"{value_text(request.get('required'))}  "
        f"rejections {value_text(request.get('rejections', 0))}  "
        f"({request_state_text(request.get('state'))})"
    )


# Request states whose name alone would mislead (a ``cancelled`` request was
# closed by a change of the mesh, not by anybody), in the person's words.
_REQUEST_STATE_TEXTS = {
    "cancelled": "closed: the mesh changed before it was approved",
}


def request_state_text(state: Any) -> str:
    """A join or recovery request's state as a person reads it."""
    if isinstance(state, str) and state in _REQUEST_STATE_TEXTS:
        return _REQUEST_STATE_TEXTS[state]
    return value_text(state)


def event_line(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if not isinstance(data, dict):
        data = {"data": data}
    details = " ".join(
        f"{clean(str(key))}={value_text(value)}" for key, value in data.items()
    )
    return (
        f"#{value_text(event.get('id'))} {value_text(event.get('type'))} {details}"
    ).rstrip()
