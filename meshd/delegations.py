"""Reading what a person types for a delegation: the agent key and expiry
(see :mod:`meshd.expiry`)."""

from __future__ import annotations

import base64
import binascii
import contextlib

from meshd.crypto.suite import PUBLIC_KEY_SIZE
from meshd.errors import InvalidInput
from meshd.expiry import DEFAULT_LIFETIME_SECONDS, parse_expiry

__all__ = ["DEFAULT_LIFETIME_SECONDS", "parse_agent_key", "parse_expiry"]


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
