"""Snapshots: the whole merged passport in one signed, encrypted object.

Wire format (do not reorder fields)
-----------------------------------
A snapshot is :class:`~meshd.crypto.encoding.Signed` over a
:class:`SnapshotBody`, signed by its author in :attr:`Context.SNAPSHOT`. The
body carries in clear what a receiver needs to decide whether the snapshot
helps it (the version vector it covers, the mesh-log head it was made under)
and the encrypted :class:`SnapshotState`: every path's merged state (its
newest op and its frontier, hence any open conflicts) and the version vector
again, inside the authenticated ciphertext. The payload key is wrapped to the
devices active at its head and to the vault public key, so a new device, or
one that rebuilt the vault, starts from the newest snapshot and the ops after
it instead of the whole history.

The associated data binds mesh id, kind ``"snapshot"``, author and the
number of ops the snapshot covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshd.crypto import suite
from meshd.crypto.encoding import Record, Signature, Signed
from meshd.errors import DecodeError, NotAMember
from meshd.mesh.view import MembershipView
from meshd.replica.ingest import Reader
from meshd.replica.merge import PathState
from meshd.replica.op import VAULT_RECIPIENT, recipients_of

SNAPSHOT_KIND = "snapshot"
# The signed envelope is limited to 8 MiB; a passport of tens of thousands of
# small paths fits well below that.
MAX_SNAPSHOT_SIZE = 8 * 1024 * 1024
_SNAPSHOT_ID_PERSON = b"hm1-snapshot-id"


@dataclass(frozen=True)
class SnapshotState(Record):
    """The secret part: every path's merged state."""

    TAG: ClassVar[str] = "snapshot-state"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_SNAPSHOT_SIZE
    version_vector: dict[str, int]
    paths: tuple[PathState, ...]


@dataclass(frozen=True)
class SnapshotBody(Record):
    TAG: ClassVar[str] = "snapshot"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = MAX_SNAPSHOT_SIZE
    mesh_id: bytes
    author: str
    wall_ms: int
    mesh_head: bytes
    version_vector: dict[str, int]
    ciphertext: bytes
    wrapped_keys: dict[str, bytes]

    def associated_data(self) -> suite.AssociatedData:
        covered = sum(self.version_vector.values())
        return suite.AssociatedData(self.mesh_id, SNAPSHOT_KIND, self.author, covered)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as stored: its bytes, id, body and (once opened) state."""

    data: bytes
    snapshot_id: str
    body: SnapshotBody


def snapshot_id_of(body: bytes) -> str:
    digest = suite.blake2b(body, person=_SNAPSHOT_ID_PERSON)[:20]
    return "snapshot-" + suite.base32_text(digest).lower()


def make_snapshot(
    keys: suite.DeviceKeys,
    view: MembershipView,
    version_vector: Mapping[str, int],
    paths: list[PathState],
    now_ms: int,
) -> Snapshot:
    """Encrypt and sign the merged state for the current members and vault."""
    vector = {device: seq for device, seq in version_vector.items() if seq > 0}
    state = SnapshotState(vector, tuple(paths)).encode()
    aad = suite.AssociatedData(
        view.mesh_id, SNAPSHOT_KIND, keys.device_id, sum(vector.values())
    )
    envelope = suite.encrypt_for(recipients_of(view), state, aad)
    body = SnapshotBody(
        mesh_id=view.mesh_id,
        author=keys.device_id,
        wall_ms=now_ms,
        mesh_head=view.head_hash,
        version_vector=vector,
        ciphertext=envelope.ciphertext,
        wrapped_keys=envelope.wrapped_keys,
    ).encode()
    signature = Signature(keys.device_id, keys.sign(suite.Context.SNAPSHOT, body))
    data = Signed(body, (signature,)).encode()
    return Snapshot(data, snapshot_id_of(body), SnapshotBody.decode(body))


def decode_snapshot(data: bytes) -> tuple[Snapshot, Signed]:
    """Raises:
    DecodeError: not a well-formed snapshot.
    """
    signed = Signed.decode(data, MAX_SNAPSHOT_SIZE)
    body = SnapshotBody.decode(signed.body, MAX_SNAPSHOT_SIZE)
    if len(signed.signatures) != 1 or signed.signatures[0].signer != body.author:
        raise DecodeError("A snapshot carries exactly one signature, by its author")
    return Snapshot(bytes(data), snapshot_id_of(signed.body), body), signed


def verify_snapshot(data: bytes, view: MembershipView) -> Snapshot:
    """Check a snapshot's signature and author against the mesh log.

    The caller first checks that the head is known (``view.position_of``).

    Raises:
        DecodeError: malformed.
        NotAMember: the author was not an active member at the snapshot's head.
        BadSignature: the signature does not verify.
    """
    snapshot, signed = decode_snapshot(data)
    body = snapshot.body
    if body.mesh_id != view.mesh_id:
        raise DecodeError("The snapshot belongs to another mesh")
    author = view.member_at(body.author, body.mesh_head)
    if author is None or not author.active:
        raise NotAMember("The snapshot's author was not active at its head")
    suite.verify(
        suite.Context.SNAPSHOT,
        author.keys.signing,
        signed.body,
        signed.signatures[0].signature,
    )
    return snapshot


def open_snapshot(snapshot: Snapshot, reader: Reader) -> SnapshotState:
    """Decrypt a verified snapshot.

    Raises:
        DecryptionFailed: not readable by this device (or altered).
        DecodeError: the plaintext is not a snapshot state.
    """
    body = snapshot.body
    envelope = suite.Envelope(body.ciphertext, body.wrapped_keys)
    if reader.device_id in body.wrapped_keys or reader.vault_secret is None:
        recipient, secret = reader.device_id, reader.encryption_secret
    else:
        recipient, secret = VAULT_RECIPIENT, reader.vault_secret
    plaintext = suite.decrypt_envelope(
        recipient, secret, envelope, body.associated_data()
    )
    state = SnapshotState.decode(plaintext)
    if state.version_vector != body.version_vector:
        raise DecodeError("The snapshot's clear and sealed version vectors differ")
    return state
