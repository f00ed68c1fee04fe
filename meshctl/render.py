"""Readable text for meshctl results (``--json`` prints them unchanged)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

Renderer = Callable[[Any], str]


def value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def fields(result: Any) -> str:
    """``key: value`` lines for an object, the value itself otherwise."""
    if not isinstance(result, dict):
        return json.dumps(result, indent=2, ensure_ascii=False)
    width = max((len(key) for key in result), default=0)
    return "\n".join(
        f"{key.ljust(width)}  {value_text(value)}" for key, value in result.items()
    )


def table(columns: Sequence[str], empty: str) -> Renderer:
    """A renderer drawing a list of objects as aligned columns."""

    def render(rows: Any) -> str:
        if not isinstance(rows, list):
            return fields(rows)
        if not rows:
            return empty
        cells = [
            [
                value_text(row.get(column)) if isinstance(row, dict) else ""
                for column in columns
            ]
            for row in rows
        ]
        widths = [
            max(len(column), *(len(line[index]) for line in cells))
            for index, column in enumerate(columns)
        ]
        lines = [
            "  ".join(
                column.upper().ljust(width)
                for column, width in zip(columns, widths, strict=True)
            )
        ]
        lines += [
            "  ".join(
                cell.ljust(width) for cell, width in zip(line, widths, strict=True)
            )
            for line in cells
        ]
        return "\n".join(line.rstrip() for line in lines)

    return render


def pretty_json(result: Any) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)


def status(result: Any) -> str:
    """The status as a person reads it: who, which mesh, what needs attention."""
    if not isinstance(result, dict):
        return fields(result)
    lines = [
        f"device     {value_text(result.get('device_id'))}",
        f"state      {value_text(result.get('state'))}",
    ]
    if result.get("did"):
        devices = result.get("devices") or []
        lines += [
            f"identity   {result['did']}  ({value_text(result.get('label'))})",
            f"threshold  {value_text(result.get('threshold'))} of {len(devices)}",
            f"storage    {value_text(result.get('storage'))}",
        ]
    lines += [f"warning    {warning}" for warning in result.get("warnings") or []]
    return "\n".join(lines)


def event_line(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    details = " ".join(f"{key}={value_text(value)}" for key, value in data.items())
    return f"#{event.get('id')} {event.get('type')} {details}".rstrip()
