"""Reading what a person types for a delegation: the agent key and expiry."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from datetime import datetime

from meshd.crypto.suite import PUBLIC_KEY_SIZE
from meshd.errors import InvalidInput

DEFAULT_LIFETIME_SECONDS = 24 * 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")


def parse_agent_key(text: str) -> bytes:
    """An Ed25519 public key given as 64 hex digits or base64.

    Raises:
        InvalidInput: neither form gives 32 bytes.
    """
    cleaned = text.strip()
    candidates = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(cleaned))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(cleaned, validate=True))
    for key in candidates:
        if len(key) == PUBLIC_KEY_SIZE:
            return key
    raise InvalidInput(
        "The agent key must be a 32-byte Ed25519 public key (hex or base64)",
        field="to",
    )


def parse_expiry(text: str | None, now: float) -> float:
    """When a delegation ends, in seconds since the epoch.

    Accepts a duration (``30m``, ``12h``, ``7d``, ``2w``), an ISO 8601 time
    with its zone, or seconds since the epoch; nothing means one day.

    Raises:
        InvalidInput: the text is none of these.
    """
    if text is None or not text.strip():
        return now + DEFAULT_LIFETIME_SECONDS
    cleaned = text.strip()
    duration = _DURATION.match(cleaned)
    if duration:
        return now + int(duration.group(1)) * _UNITS[duration.group(2)]
    if cleaned.isdigit():
        return float(cleaned)
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            "Give the expiry as a duration (12h, 7d), an ISO time with its zone "
            "or seconds since the epoch",
            field="expires",
        )
    return moment.timestamp()
