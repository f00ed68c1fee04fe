"""Reading when something typed by a person ends: ``7d``, an ISO time, or
seconds since the epoch.

Pure and free of cryptography, so meshctl can check an expiry before it
sends anything and the daemon reads it the same way.
"""

from __future__ import annotations

import re
from datetime import datetime

from meshd.errors import InvalidInput

DEFAULT_LIFETIME_SECONDS = 24 * 3600.0
# The furthest an expiry may lie ahead: ten years of 365.25 days. A grant
# meant to outlive that is better issued again; the bound also keeps every
# expiry a small number wherever it is stored or shown.
MAX_LIFETIME_SECONDS = 10 * 365.25 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# ASCII digits only, matched whole: "\d" also takes other scripts' digits
# and "$" a final newline, and neither is what a person means by "7d".
_DURATION = re.compile(r"(-?[0-9]{1,6})([smhdw])", re.ASCII)
_FORMS = "a duration (12h, 7d), an ISO time with its zone or seconds since the epoch"


def parse_expiry(text: str | None, now: float) -> float:
    """When something ends, in seconds since the epoch.

    Accepts a duration (``30m``, ``12h``, ``7d``, ``2w``), an ISO 8601 time
    with its zone, or seconds since the epoch, with spaces around it
    ignored; no text at all means one day. Only ASCII is read: a line
    break, a tab or another script's digits are refused.

    Raises:
        InvalidInput: the text is blank or none of these, a duration is zero
            or negative, a time has no zone, or the moment is more than
            :data:`MAX_LIFETIME_SECONDS` ahead of ``now``.
    """
    if text is None:
        return now + DEFAULT_LIFETIME_SECONDS
    cleaned = text.strip(" ")
    if not cleaned or not cleaned.isascii():
        raise InvalidInput(f"Give the expiry as {_FORMS}", field="expires")

    # Each form is bounded before it becomes a float: seconds since the
    # epoch may have any number of digits.
    duration = _DURATION.fullmatch(cleaned)
    if duration:
        seconds = _positive(int(duration.group(1))) * _UNITS[duration.group(2)]
        return _within_reach(now + seconds, now)
    if cleaned.isdigit():
        return _within_reach(int(cleaned), now)
    return _within_reach(_zoned_time(cleaned), now)


def _within_reach(moment: float, now: float) -> float:
    """``moment`` as a float, once it is known to lie within reach of ``now``."""
    if moment > now + MAX_LIFETIME_SECONDS:
        raise InvalidInput(
            "An expiry may lie at most 10 years ahead: issue it again later "
            "if it must last longer",
            field="expires",
        )
    return float(moment)


def _positive(amount: int) -> int:
    if amount <= 0:
        raise InvalidInput(
            "A duration must be more than zero, such as 30m or 7d", field="expires"
        )
    return amount


def _zoned_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"Give the expiry as {_FORMS}", field="expires") from None

    # A time without its zone would mean a different moment on each device.
    if moment.tzinfo is None:
        raise InvalidInput(
            "The expiry time needs its zone, such as Z or +02:00 at its end",
            field="expires",
        )
    return moment.timestamp()
