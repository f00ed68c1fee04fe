"""A device's signed head: how far its own ops go and what it has seen.

Peers and storage compare heads to learn what to send, and a head that goes
backwards is a sign of a stale or rolled-back view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from meshd.crypto import suite
from meshd.crypto.encoding import Record, Signature, Signed
from meshd.errors import DecodeError, NotAMember
from meshd.mesh.view import MembershipView

MAX_HEAD_SIZE = 64 * 1024


@dataclass(frozen=True)
class HeadBody(Record):
    TAG: ClassVar[str] = "head"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_HEAD_SIZE
    mesh_id: bytes
    device: str
    sequence: int
    version_vector: dict[str, int]
    wall_ms: int
    mesh_head: bytes


def make_head(keys: suite.DeviceKeys, body: HeadBody) -> bytes:
    data = body.encode()
    signature = Signature(keys.device_id, keys.sign(suite.Context.HEAD, data))
    return Signed(data, (signature,)).encode()


def verify_head(data: bytes, view: MembershipView) -> HeadBody:
    """Check a peer's head against the mesh log and return it.

    Raises:
        DecodeError: malformed, or for another mesh.
        NotAMember: the device is not known to the mesh log.
        BadSignature: the signature does not verify.
    """
    signed = Signed.decode(data, MAX_HEAD_SIZE)
    body = HeadBody.decode(signed.body)
    if len(signed.signatures) != 1 or signed.signatures[0].signer != body.device:
        raise DecodeError("A head carries exactly one signature, by its device")
    if body.mesh_id != view.mesh_id:
        raise DecodeError("The head belongs to another mesh")
    member = view.member(body.device)
    if member is None:
        raise NotAMember("The head's device is not in the mesh log")
    suite.verify(
        suite.Context.HEAD,
        member.keys.signing,
        signed.body,
        signed.signatures[0].signature,
    )
    return body
