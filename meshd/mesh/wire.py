"""Fast, strict decoding of the mesh log's hot records.

Validating a log decodes every entry, the proposal inside every membership
change and the signed wrapper around both, so these records skip the
generic schema walk of :mod:`meshd.crypto.encoding` and are checked field by
field here instead. The bytes are the same canonical msgpack, and what is
accepted is exactly what the generic decoder accepts, with the same typed
error for what it refuses:

- a wrong tag, a missing or extra field, a value of the wrong type, a
  non-canonical map, or excess size each raise
  :class:`~meshd.errors.DecodeError` (:class:`~meshd.errors.TooLarge` for
  the size);
- an unknown version raises :class:`~meshd.errors.UnknownVersion`, except
  inside an optional field, where the generic decoder tries the record,
  finds it does not fit and reports a plain ``DecodeError``;
- when several fields are wrong, the first in declaration order decides the
  error. Only a required nested record can raise ``UnknownVersion`` from
  inside, so the checks before such a field all run before it and the
  scalars that only ever raise ``DecodeError`` are checked together.

Integers need no range check here: msgpack carries none wider than 64 bits,
which is the range the generic decoder checks.

The decoded records are equal to the generic decoder's. Keep each decoder
beside the record it mirrors (:mod:`meshd.mesh.records`): a field added
there must be added here, in the same place (the property tests in
``tests/mesh/test_wire.py`` compare both decoders on every record kind).
"""

from __future__ import annotations

from typing import Any, TypeVar

from meshd.crypto.encoding import Record, Signature, Signed, unpack_canonical
from meshd.errors import DecodeError, InvalidInput, TooLarge, UnknownVersion
from meshd.mesh.records import (
    DeviceRecord,
    EntryBody,
    GenesisFacts,
    KeyRotation,
    Proposal,
    Revocation,
    SealedNote,
    ShareSlot,
    VaultGeneration,
)

R = TypeVar("R", bound=Record)


# -- Top-level objects -------------------------------------------------------------


def decode_signed(data: bytes) -> Signed:
    """The same as ``Signed.decode(data)``.

    Raises:
        TooLarge: longer than a signed object may be.
        UnknownVersion: the wrapper or a signature has an unknown version.
        DecodeError: anything else that does not fit the schema.
    """
    body, signatures = _fields(_unpacked(Signed, data), Signed, 2)
    if type(body) is not bytes:
        raise _malformed(Signed)
    return _filled(Signed, {"body": body, "signatures": _signatures(signatures)})


def decode_entry(data: bytes) -> EntryBody:
    """The same as ``EntryBody.decode(data)``.

    Raises:
        TooLarge: longer than an entry may be.
        UnknownVersion: the entry or one of its endorsements has an unknown
            version.
        DecodeError: anything else that does not fit the schema.
    """
    value = _fields(_unpacked(EntryBody, data), EntryBody, 9)
    position, previous, kind, created_at, genesis, proposal = value[:6]
    if (
        type(position) is not int
        or type(previous) is not bytes
        or type(kind) is not str
        or type(created_at) is not int
        or type(proposal) is not bytes
    ):
        raise _malformed(EntryBody)
    return _filled(
        EntryBody,
        {
            "position": position,
            "previous": previous,
            "kind": kind,
            "created_at": created_at,
            "genesis": _optional(_genesis, genesis),
            "proposal": proposal,
            "approvals": _signatures(value[6]),
            "rotation": _optional(_key_rotation, value[7]),
            "vault": _optional(_vault_generation, value[8]),
        },
    )


def decode_proposal(data: bytes) -> Proposal:
    """The same as ``Proposal.decode(data)``.

    Raises:
        TooLarge: longer than a proposal may be.
        UnknownVersion: the proposal or one of its revocations has an unknown
            version.
        DecodeError: anything else that does not fit the schema.
    """
    value = _fields(_unpacked(Proposal, data), Proposal, 13)
    if tuple(map(type, value[:7])) != (str, bytes, bytes, int, str, int, int):
        raise _malformed(Proposal)
    new_device = _optional(_device, value[7])
    revocations = tuple([_revocation(item) for item in _list(value[8])])
    threshold, challenge, note, nonce = value[9:]
    if (
        type(threshold) is not int
        or type(challenge) is not bytes
        or type(nonce) is not bytes
    ):
        raise _malformed(Proposal)
    return _filled(
        Proposal,
        {
            "kind": value[0],
            "mesh_id": value[1],
            "base_head": value[2],
            "base_position": value[3],
            "proposer": value[4],
            "created_at": value[5],
            "expires_at": value[6],
            "new_device": new_device,
            "revocations": revocations,
            "threshold": threshold,
            "challenge": challenge,
            "note": _optional(_sealed_note, note),
            "nonce": nonce,
        },
    )


def _unpacked(cls: type[Record], data: Any) -> Any:
    """Raises:
    TooLarge: longer than the record's limit.
    DecodeError: not bytes, or not canonical msgpack.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("Expected bytes")
    if len(data) > cls.MAX_SIZE:
        raise TooLarge(
            f"A {cls.TAG} object of {len(data)} bytes exceeds {cls.MAX_SIZE}",
            size=len(data),
            limit=cls.MAX_SIZE,
        )
    return unpack_canonical(bytes(data), cls.MAX_SIZE)


# -- Nested records ----------------------------------------------------------------


def _signatures(value: Any) -> tuple[Signature, ...]:
    return tuple([_signature(item) for item in _list(value)])


def _signature(value: Any) -> Signature:
    signer, signature = _fields(value, Signature, 2)
    if type(signer) is not str or type(signature) is not bytes:
        raise _malformed(Signature)
    return _filled(Signature, {"signer": signer, "signature": signature})


def _genesis(value: Any) -> GenesisFacts:
    devices, threshold = _fields(value, GenesisFacts, 2)
    devices = tuple([_device(item) for item in _list(devices)])
    if type(threshold) is not int:
        raise _malformed(GenesisFacts)
    return _filled(GenesisFacts, {"devices": devices, "threshold": threshold})


def _device(value: Any) -> DeviceRecord:
    fields = _fields(value, DeviceRecord, 4)
    if tuple(map(type, fields)) != (str, bytes, bytes, str):
        raise _malformed(DeviceRecord)

    # The record checks that the id is derived from the key.
    try:
        return DeviceRecord(*fields)
    except (ValueError, TypeError, InvalidInput) as exc:
        raise DecodeError(f"device: {exc}") from exc


def _key_rotation(value: Any) -> KeyRotation:
    device_id, signing_key, encryption_key, resealed = _fields(value, KeyRotation, 4)
    if (
        type(device_id) is not str
        or type(signing_key) is not bytes
        or type(encryption_key) is not bytes
    ):
        raise _malformed(KeyRotation)
    return _filled(
        KeyRotation,
        {
            "device_id": device_id,
            "signing_key": signing_key,
            "encryption_key": encryption_key,
            "resealed": _share_slot(resealed),
        },
    )


def _vault_generation(value: Any) -> VaultGeneration:
    number, threshold, public_key, slots, directory = _fields(value, VaultGeneration, 5)
    if (
        type(number) is not int
        or type(threshold) is not int
        or type(public_key) is not bytes
    ):
        raise _malformed(VaultGeneration)
    return _filled(
        VaultGeneration,
        {
            "number": number,
            "threshold": threshold,
            "public_key": public_key,
            "slots": tuple([_share_slot(item) for item in _list(slots)]),
            "directory": _sealed_note(directory),
        },
    )


def _share_slot(value: Any) -> ShareSlot:
    device_id, index, commitment, sealed_share = _fields(value, ShareSlot, 4)
    if (
        type(device_id) is not str
        or type(index) is not int
        or type(commitment) is not bytes
        or type(sealed_share) is not bytes
    ):
        raise _malformed(ShareSlot)
    return _filled(
        ShareSlot,
        {
            "device_id": device_id,
            "index": index,
            "commitment": commitment,
            "sealed_share": sealed_share,
        },
    )


def _sealed_note(value: Any) -> SealedNote:
    ciphertext, wrapped_keys = _fields(value, SealedNote, 2)

    # Map keys arrive sorted, unique and of one type (checked while
    # unpacking); here they must also be text, and the values bytes.
    if (
        type(ciphertext) is not bytes
        or not isinstance(wrapped_keys, dict)
        or any(type(key) is not str for key in wrapped_keys)
        or any(type(item) is not bytes for item in wrapped_keys.values())
    ):
        raise _malformed(SealedNote)
    return _filled(
        SealedNote, {"ciphertext": ciphertext, "wrapped_keys": dict(wrapped_keys)}
    )


def _revocation(value: Any) -> Revocation:
    device_id, cutoff = _fields(value, Revocation, 2)
    if type(device_id) is not str or type(cutoff) is not int:
        raise _malformed(Revocation)
    return _filled(Revocation, {"device_id": device_id, "cutoff": cutoff})


# -- Shapes ------------------------------------------------------------------------


def _fields(value: Any, cls: type[Record], count: int) -> list[Any]:
    """The fields of a wire record ``[tag, version, *fields]``.

    Raises:
        UnknownVersion: right tag, unknown version.
        DecodeError: anything else.
    """
    if (
        type(value) is list
        and len(value) == count + 2
        and value[0] == cls.TAG
        and type(value[1]) is int
        and value[1] == cls.VERSION
    ):
        return value[2:]

    # Something is wrong: find out what, in the generic decoder's order.
    if not isinstance(value, list) or len(value) < 2 or value[0] != cls.TAG:
        raise DecodeError(f"Expected a {cls.TAG} record")
    version = value[1]
    if type(version) is not int:
        raise DecodeError(f"{cls.TAG} version is not an integer")
    if version != cls.VERSION:
        raise UnknownVersion(
            f"{cls.TAG} version {version!r} is not known", version=str(version)
        )
    raise DecodeError(f"{cls.TAG} has {len(value) - 2} fields, expected {count}")


def _malformed(cls: type[Record]) -> DecodeError:
    return DecodeError(f"A field of a {cls.TAG} record has the wrong type")


def _filled(cls: type[R], fields: dict[str, Any]) -> R:
    # The records filled here have no checks of their own (no __post_init__),
    # so storing the fields is all their generated __init__ would do.
    record = object.__new__(cls)
    record.__dict__.update(fields)
    return record


def _optional(decode: Any, value: Any) -> Any:
    # As the generic decoder: a value that does not fit the record (an
    # unknown version included) fits none of the field's types.
    if value is None:
        return None
    try:
        return decode(value)
    except DecodeError as exc:
        raise DecodeError(f"value fits none of the allowed types: {exc}") from exc


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError("Expected a list")
    return value
