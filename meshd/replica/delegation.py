"""Capabilities and delegations: first-class passport entries.

A capability lives at ``capabilities/<id>`` as ``{"name", "data"}``. Its id
is derived from its name (BLAKE2b, base32), so adding the same capability on
two devices edits one entry instead of creating two.

A delegation lets an agent key act with some capabilities until it expires.
It lives at ``delegations/<id>``; its value carries the signed delegation
(:attr:`Context.DELEGATION`, by the issuing device, over a
:class:`DelegationBody`) so anyone can check it against the mesh log. The id
is a hash of the signed body. A delegation is valid only while its issuer is
an active member: revoking the device that issued it ends it at once.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from meshd.crypto import suite
from meshd.crypto.encoding import Record, Signature, Signed
from meshd.errors import BadSignature, DecodeError, InvalidInput, NotAMember
from meshd.mesh.view import MembershipView

MAX_DELEGATION_SIZE = 16 * 1024
MAX_CAPABILITIES = 64
_CAPABILITY_PERSON = b"hm1-capability"
_DELEGATION_PERSON = b"hm1-delegation"


def capability_id(name: str) -> str:
    """The id of a capability, derived from its name.

    Raises:
        InvalidInput: the name is empty or longer than 200 characters.
    """
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise InvalidInput("A capability name is 1 to 200 characters", field="name")
    digest = suite.blake2b(name.encode(), person=_CAPABILITY_PERSON)
    return suite.base32_text(digest[:10]).lower()


@dataclass(frozen=True)
class DelegationBody(Record):
    """Wire format (do not reorder fields)."""

    TAG: ClassVar[str] = "delegation"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_DELEGATION_SIZE
    mesh_id: bytes
    agent_key: bytes
    capabilities: tuple[str, ...]
    issued_at: int
    expires_at: int
    issuer: str
    mesh_head: bytes


@dataclass(frozen=True)
class Delegation:
    """A delegation as shown to people and apps."""

    delegation_id: str
    body: DelegationBody
    signed: bytes

    def to_json(self) -> dict[str, Any]:
        """The passport value (and the RPC result) of this delegation."""
        return {
            "id": self.delegation_id,
            "agent_key": self.body.agent_key.hex(),
            "capabilities": list(self.body.capabilities),
            "issued_at": self.body.issued_at,
            "expires_at": self.body.expires_at,
            "issuer": self.body.issuer,
            "signed": base64.b64encode(self.signed).decode("ascii"),
        }


def delegation_id_of(body: bytes) -> str:
    digest = suite.blake2b(body, person=_DELEGATION_PERSON)
    return suite.base32_text(digest[:10]).lower()


def issue_delegation(
    keys: suite.DeviceKeys,
    view: MembershipView,
    agent_key: bytes,
    capabilities: Sequence[str],
    expires_at: int,
    now: int,
) -> Delegation:
    """Sign a delegation for ``agent_key`` (an Ed25519 public key).

    Raises:
        InvalidInput: bad key, no or too many capabilities, or an expiry that
            is not in the future.
    """
    if len(agent_key) != suite.PUBLIC_KEY_SIZE:
        raise InvalidInput("An agent key is a 32-byte public key", field="agent_key")
    if not 0 < len(capabilities) <= MAX_CAPABILITIES:
        raise InvalidInput("A delegation names 1 to 64 capabilities")
    if expires_at <= now:
        raise InvalidInput("A delegation must expire in the future", field="expires")
    body = DelegationBody(
        mesh_id=view.mesh_id,
        agent_key=agent_key,
        capabilities=tuple(capabilities),
        issued_at=now,
        expires_at=expires_at,
        issuer=keys.device_id,
        mesh_head=view.head_hash,
    ).encode()
    signature = Signature(keys.device_id, keys.sign(suite.Context.DELEGATION, body))
    signed = Signed(body, (signature,)).encode()
    return Delegation(delegation_id_of(body), DelegationBody.decode(body), signed)


def verify_delegation(value: Mapping[str, Any], view: MembershipView) -> Delegation:
    """Check a delegation's signature against the mesh log.

    Raises:
        DecodeError: the value is not a delegation of this mesh.
        NotAMember: its issuer was not an active member when it signed.
        BadSignature: the signature does not verify.
    """
    try:
        signed_bytes = base64.b64decode(value["signed"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError("The value is not a signed delegation") from exc
    signed = Signed.decode(signed_bytes, MAX_DELEGATION_SIZE)
    body = DelegationBody.decode(signed.body)
    if body.mesh_id != view.mesh_id or len(signed.signatures) != 1:
        raise DecodeError("The delegation does not belong to this mesh")
    if signed.signatures[0].signer != body.issuer:
        raise DecodeError("A delegation is signed by its issuer")
    issuer = view.member_at(body.issuer, body.mesh_head)
    if issuer is None or not issuer.active:
        raise NotAMember("The delegation's issuer was not an active member")
    suite.verify(
        suite.Context.DELEGATION,
        issuer.keys.signing,
        signed.body,
        signed.signatures[0].signature,
    )
    return Delegation(delegation_id_of(signed.body), body, signed_bytes)


# Why a delegation in the passport holds or not, as ``delegation.list`` says.
VALID = "ok"
EXPIRED = "expired"
ISSUER_REVOKED = "issuer_revoked"
ISSUER_NOT_MEMBER = "issuer_not_member"
BAD_SIGNATURE = "bad_signature"
MALFORMED = "malformed"
MISFILED = "misfiled"


def delegation_standing(
    delegation_id: str, value: Any, view: MembershipView, now: int
) -> str:
    """Whether the delegation filed under ``delegation_id`` holds now, and
    if not, why: one of the reasons above (:data:`VALID` when it holds)."""
    try:
        delegation = verify_delegation(value, view)
    except (DecodeError, AttributeError, TypeError):
        return MALFORMED
    except NotAMember:
        return ISSUER_NOT_MEMBER
    except BadSignature:
        return BAD_SIGNATURE

    if delegation.delegation_id != delegation_id:
        return MISFILED

    # A revoked issuer ends its delegations at once, expired or not.
    issuer = view.member(delegation.body.issuer)
    if issuer is None or not issuer.active:
        return ISSUER_REVOKED
    if delegation.body.expires_at <= now:
        return EXPIRED
    return VALID


def valid_delegations(
    passport: Mapping[str, Any], view: MembershipView, now: int
) -> list[Delegation]:
    """Delegations in the passport that hold now: well signed, filed under
    their own id, not expired, and issued by a device that is still active."""
    entries = passport.get("delegations", {})
    if not isinstance(entries, dict):
        return []
    return [
        verify_delegation(entries[delegation_id], view)
        for delegation_id in sorted(entries)
        if delegation_standing(delegation_id, entries[delegation_id], view, now)
        == VALID
    ]
