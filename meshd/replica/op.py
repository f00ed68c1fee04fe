"""Ops: signed, encrypted changes to one passport path.

Wire format (do not reorder fields)
-----------------------------------
An op travels as :class:`~meshd.crypto.encoding.Signed` whose body is an
:class:`OpBody` and whose one signature is the author's, in
:attr:`Context.OP`, over the body bytes exactly as stored. The body holds
what every replica must see to order and check the op without reading it
(author, sequence, hybrid timestamp, version vector, mesh-log head) and the
encrypted :class:`OpPayload` (path, value). The payload key is wrapped to
every device active at the op's head and to the vault public key (recipient
``"vault"``), so a device that rebuilds the vault can read the whole history.

The associated data binds mesh id, kind ``"op"``, author and sequence, so a
ciphertext moved to another op, sequence or mesh fails to decrypt even if
someone holding the author's key re-signs it.

Version vector: ``version_vector[d]`` is the highest sequence of device
``d`` this op was made on. The author's own entry is always ``sequence - 1``;
zero entries are left out so that the same knowledge encodes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshd.crypto import suite
from meshd.crypto.encoding import Record, Signature, Signed
from meshd.errors import DecodeError
from meshd.mesh.view import MembershipView
from meshd.replica import wire
from meshd.replica.clock import Timestamp

VAULT_RECIPIENT = "vault"
OP_KIND = "op"
# Body: a 64 KiB value padded to 128 KiB, plus wrapped keys and vectors.
MAX_OP_SIZE = 256 * 1024
MAX_VECTOR_ENTRIES = 1024
_OP_ID_PERSON = b"hm1-op-id"
_OP_ID_BYTES = 20


@dataclass(frozen=True)
class OpPayload(Record):
    """The secret part of an op. ``value`` is canonical JSON text, empty for a
    delete; ``picked`` names the op a conflict resolution chose."""

    TAG: ClassVar[str] = "op-payload"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_OP_SIZE
    path: str
    deleted: bool
    value: str
    picked: str


@dataclass(frozen=True)
class OpBody(Record):
    """The signed body of an op."""

    TAG: ClassVar[str] = "op"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_OP_SIZE
    mesh_id: bytes
    author: str
    sequence: int
    wall_ms: int
    counter: int
    version_vector: dict[str, int]
    mesh_head: bytes
    ciphertext: bytes
    wrapped_keys: dict[str, bytes]

    @property
    def timestamp(self) -> Timestamp:
        return Timestamp(self.wall_ms, self.counter)

    def associated_data(self) -> suite.AssociatedData:
        return suite.AssociatedData(self.mesh_id, OP_KIND, self.author, self.sequence)


@dataclass(frozen=True)
class SignedOp:
    """An op as received: the stored bytes, their parts and the op id."""

    data: bytes
    signed: Signed
    body: OpBody
    op_id: str


def op_id_of(body_bytes: bytes) -> str:
    """The op id: a hash of the exact body bytes, in grouped base32."""
    digest = suite.blake2b(body_bytes, person=_OP_ID_PERSON)[:_OP_ID_BYTES]
    return suite.group_text(suite.base32_text(digest))


def recipients_of(view: MembershipView) -> dict[str, bytes]:
    """Who can read an op made now: every active device, and the vault."""
    recipients = {
        member.device_id: member.keys.encryption for member in view.active_members()
    }
    recipients[VAULT_RECIPIENT] = view.vault_public_key
    return recipients


def make_op(
    keys: suite.DeviceKeys,
    view: MembershipView,
    *,
    sequence: int,
    timestamp: Timestamp,
    version_vector: Mapping[str, int],
    payload: OpPayload,
) -> SignedOp:
    """Encrypt and sign a new op of this device (pure apart from randomness)."""
    author = keys.device_id
    aad = suite.AssociatedData(view.mesh_id, OP_KIND, author, sequence)
    envelope = suite.encrypt_for(recipients_of(view), payload.encode(), aad)

    # Zero entries are dropped so equal knowledge gives equal bytes.
    vector = {device: seq for device, seq in version_vector.items() if seq > 0}
    body = OpBody(
        mesh_id=view.mesh_id,
        author=author,
        sequence=sequence,
        wall_ms=timestamp.wall_ms,
        counter=timestamp.counter,
        version_vector=vector,
        mesh_head=view.head_hash,
        ciphertext=envelope.ciphertext,
        wrapped_keys=envelope.wrapped_keys,
    ).encode()
    signature = Signature(author, keys.sign(suite.Context.OP, body))
    signed = Signed(body, (signature,))
    return SignedOp(signed.encode(), signed, OpBody.decode(body), op_id_of(body))


def decode_op(data: bytes) -> SignedOp:
    """Decode an op's outer form without checking its signature.

    Raises:
        DecodeError: the bytes are not a well-formed op (typed subclasses for
            size and version).
    """
    outer = wire.fields(wire.unpack(data, MAX_OP_SIZE, "op"), "signed", 1, 2)
    body_bytes = wire.binary(outer[0])
    signatures = tuple(
        Signature(wire.text(signer), wire.binary(signature))
        for signer, signature in (
            wire.fields(item, "sig", 1, 2) for item in wire.items(outer[1])
        )
    )
    signed = Signed(body_bytes, signatures)
    body = _body_from_wire(wire.unpack(body_bytes, MAX_OP_SIZE, "op body"))
    _check_shape(signed, body)
    return SignedOp(bytes(data), signed, body, op_id_of(body_bytes))


def _body_from_wire(value: object) -> OpBody:
    (mesh_id, author, sequence, wall_ms, counter, vector, head, ciphertext, wrapped) = (
        wire.fields(value, OpBody.TAG, OpBody.VERSION, 9)
    )
    return OpBody(
        mesh_id=wire.binary(mesh_id),
        author=wire.text(author),
        sequence=wire.integer(sequence),
        wall_ms=wire.integer(wall_ms),
        counter=wire.integer(counter),
        version_vector=wire.integer_map(vector),
        mesh_head=wire.binary(head),
        ciphertext=wire.binary(ciphertext),
        wrapped_keys=wire.binary_map(wrapped),
    )


def decode_payload(data: bytes) -> OpPayload:
    """Raises:
    DecodeError: not an op payload.
    """
    path, deleted, value, picked = wire.fields(
        wire.unpack(data, MAX_OP_SIZE, "op payload"), OpPayload.TAG, 1, 4
    )
    return OpPayload(
        wire.text(path), wire.boolean(deleted), wire.text(value), wire.text(picked)
    )


def _check_shape(signed: Signed, body: OpBody) -> None:
    # An op has exactly its author's signature; anything else is not an op.
    if len(signed.signatures) != 1 or signed.signatures[0].signer != body.author:
        raise DecodeError("An op carries exactly one signature, by its author")
    if body.sequence < 1 or body.wall_ms < 0 or body.counter < 0:
        raise DecodeError("An op's sequence and timestamp must be positive")
    vector = body.version_vector
    if len(vector) > MAX_VECTOR_ENTRIES or any(seq < 1 for seq in vector.values()):
        raise DecodeError("An op's version vector is malformed")
    if vector.get(body.author, 0) != body.sequence - 1:
        raise DecodeError("An op must follow its author's previous op")


def verify_op(op: SignedOp, signing_public_key: bytes) -> None:
    """Raises:
    BadSignature: the author's signature does not verify over the body.
    """
    signature = op.signed.signatures[0].signature
    suite.verify(suite.Context.OP, signing_public_key, op.signed.body, signature)


def open_op(op: SignedOp, recipient: str, secret: bytes) -> OpPayload:
    """Decrypt an op's payload as ``recipient`` (a device id or ``"vault"``).

    Raises:
        DecryptionFailed: whatever went wrong, the same error.
        DecodeError: the plaintext is not a payload.
    """
    envelope = suite.Envelope(op.body.ciphertext, op.body.wrapped_keys)
    plaintext = suite.decrypt_envelope(
        recipient, secret, envelope, op.body.associated_data()
    )
    return decode_payload(plaintext)
