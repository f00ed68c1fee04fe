"""Invite strings: how a new device learns which mesh to join and where.

An invite holds the mesh DID, its storage URL and the mesh label. It is not a
secret and grants nothing: joining still needs approvals from the threshold of
devices, each typing the code the new device shows. The DID binds the invite
to the genesis entry, so storage that serves another mesh is detected.

Text form: ``meshd-invite:`` followed by unpadded base64url of a canonical
record, so it survives copy and paste, chat apps and QR codes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import ClassVar

from meshd.crypto.encoding import Record
from meshd.errors import DecodeError, InvalidInput

INVITE_PREFIX = "meshd-invite:"
MAX_INVITE_SIZE = 4096


@dataclass(frozen=True)
class Invite(Record):
    TAG: ClassVar[str] = "invite"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_INVITE_SIZE
    did: str
    storage: str
    label: str

    def to_text(self) -> str:
        encoded = base64.urlsafe_b64encode(self.encode()).decode("ascii")
        return INVITE_PREFIX + encoded.rstrip("=")

    @classmethod
    def from_text(cls, text: str) -> Invite:
        """Parse an invite string.

        Raises:
            InvalidInput: the text is not an invite made by ``meshctl invite``.
        """
        text = text.strip()
        if not text.startswith(INVITE_PREFIX) or len(text) > 2 * MAX_INVITE_SIZE:
            raise InvalidInput("Not an invite: it must start with 'meshd-invite:'")
        body = text[len(INVITE_PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            invite = cls.decode(data)
        except (binascii.Error, ValueError, DecodeError) as exc:
            raise InvalidInput("The invite is damaged: copy it again") from exc
        if not invite.did.startswith("did:human:"):
            raise InvalidInput("The invite does not name a did:human identity")
        return invite
