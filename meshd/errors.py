"""The one exception tree of meshd.

Every error a caller can see derives from :class:`MeshError` and carries a
stable ``reason`` string and a JSON-RPC application error code. The tree is
split by who is at fault, so a caller knows whether to fix its input, distrust
a peer or the storage, or look at the local machine::

    MeshError
    ├── ClientError        bad input from the person, an app or meshctl
    │   ├── InvalidInput, NotFound, WrongCode, Expired, ThresholdNotMet,
    │   ├── LockoutRefused, NotAMember, DeviceRevoked, Locked, Conflict, ...
    ├── ProtocolError      a peer or the storage broke the protocol
    │   ├── DecodeError, BadSignature, DecryptionFailed, RollbackRefused,
    │   ├── InvalidEntry, CorruptShare, ...
    └── LocalError         something on this machine failed
        ├── KeystoreError, StorageUnavailable, StoreError, ...

Third-party exceptions (pynacl, fsspec, sqlite3, zeroconf) are translated into
this tree at the module that calls them, with ``raise ... from``.

Codes: the JSON-RPC 2.0 specification reserves -32000..-32099 for
implementation-defined server errors. Client faults use -32000..-32039,
protocol faults -32040..-32069 and local faults -32070..-32098; the root
itself, raised only for faults that fit no branch, uses -32099.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MeshError(Exception):
    """Root of every meshd error.

    Attributes:
        reason: stable machine-readable cause, sent as JSON-RPC ``data.reason``.
        code: JSON-RPC application error code.
        details: extra JSON-serialisable facts about the cause.
    """

    reason: ClassVar[str] = "mesh_error"
    # The root keeps the last code of the range for itself, so no two classes
    # share a code (ClientError owns -32000).
    code: ClassVar[int] = -32099
    default_message: ClassVar[str] = "The mesh operation failed"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_data(self) -> dict[str, Any]:
        """The JSON-RPC ``data`` object for this error."""
        # The class's reason wins over any detail of the same name.
        return {**self.details, "reason": self.reason}


# -- Client faults: the caller can fix its request -----------------------------


class ClientError(MeshError):
    reason = "invalid_request"
    code = -32000
    default_message = "The request cannot be carried out"


class InvalidInput(ClientError):
    reason = "invalid_input"
    code = -32001
    default_message = "The input is not valid"


class NotFound(ClientError):
    reason = "not_found"
    code = -32002
    default_message = "No such object"


class UnknownProposal(NotFound):
    reason = "unknown_proposal"
    code = -32003
    default_message = "No such proposal"


class WrongCode(ClientError):
    reason = "wrong_code"
    code = -32004
    default_message = "The confirmation code does not match the request"


class TooManyAttempts(ClientError):
    reason = "too_many_attempts"
    code = -32005
    default_message = "Too many wrong codes: the request is locked"


class Expired(ClientError):
    reason = "expired"
    code = -32006
    default_message = "The request has expired"


class ThresholdNotMet(ClientError):
    reason = "threshold_not_met"
    code = -32007
    default_message = "Not enough approvals from active devices"


class LockoutRefused(ClientError):
    reason = "lockout_refused"
    code = -32008
    default_message = "The change would lock the person out of the mesh"


class NotAMember(ClientError):
    reason = "not_a_member"
    code = -32009
    default_message = "The device is not a member of this mesh"


class DeviceRevoked(ClientError):
    reason = "device_revoked"
    code = -32010
    default_message = "The device has been revoked"


class Locked(ClientError):
    reason = "locked"
    code = -32011
    default_message = "The keystore is locked: run 'meshctl unlock'"


class AlreadyExists(ClientError):
    reason = "already_exists"
    code = -32012
    default_message = "The object already exists"


class InvalidState(ClientError):
    reason = "invalid_state"
    code = -32013
    default_message = "The request does not fit the current state"


class WrongPassphrase(ClientError):
    reason = "wrong_passphrase"
    code = -32014
    default_message = "The passphrase is wrong"


class ProposalClosed(ClientError):
    reason = "proposal_closed"
    code = -32015
    default_message = "The proposal is no longer pending"


class AlreadySubscribed(ClientError):
    reason = "already_subscribed"
    code = -32016
    default_message = (
        "This connection already streams events: read them there, or open"
        " another connection for a second stream"
    )


class PassportFull(ClientError):
    reason = "passport_full"
    code = -32017
    default_message = (
        "The passport would grow past its size limit: delete or shorten values"
    )


class AnswerTooLarge(ClientError):
    reason = "answer_too_large"
    code = -32018
    default_message = (
        "The answer is larger than one message may carry: ask for less at a time"
    )


# -- Protocol faults: a peer or the storage broke the rules ---------------------


class ProtocolError(MeshError):
    reason = "protocol_violation"
    code = -32040
    default_message = "A peer or the storage sent an object that breaks the protocol"


class DecodeError(ProtocolError):
    reason = "malformed"
    code = -32041
    default_message = "The object is malformed"


class UnknownVersion(DecodeError):
    reason = "unknown_version"
    code = -32042
    default_message = "The object has an unknown format version"


class TooLarge(DecodeError):
    reason = "too_large"
    code = -32043
    default_message = "The object is larger than allowed"


class BadSignature(ProtocolError):
    reason = "bad_signature"
    code = -32044
    default_message = "A signature does not verify"


class DecryptionFailed(ProtocolError):
    """Every decryption failure looks the same: no detail, no oracle."""

    reason = "decryption_failed"
    code = -32045
    default_message = "The ciphertext cannot be decrypted"


class InvalidEntry(ProtocolError):
    reason = "invalid_entry"
    code = -32046
    default_message = "The mesh-log entry is not valid"


class RollbackRefused(ProtocolError):
    reason = "rollback_refused"
    code = -32047
    default_message = "The mesh log would go back to an older state"


class CorruptShare(ProtocolError):
    reason = "corrupt_share"
    code = -32048
    default_message = "A vault share is corrupt"


class UnauthorizedShare(ProtocolError):
    reason = "unauthorized_share"
    code = -32049
    default_message = "A vault share was not accepted"


# -- Local faults: something on this machine ------------------------------------


class LocalError(MeshError):
    reason = "local_failure"
    code = -32070
    default_message = "A local operation failed"


class KeystoreError(LocalError):
    reason = "keystore_error"
    code = -32071
    default_message = "The keystore cannot be used"


class KeystoreCorrupt(KeystoreError):
    reason = "keystore_corrupt"
    code = -32072
    default_message = "The keystore file is corrupt; it was left untouched"


class KeystorePermissions(KeystoreError):
    reason = "keystore_permissions"
    code = -32073
    default_message = "The keystore is readable by other users; fix its mode to 0600"


class StorageUnavailable(LocalError):
    reason = "storage_unavailable"
    code = -32074
    default_message = "The storage cannot be reached"


class StoreError(LocalError):
    reason = "store_error"
    code = -32075
    default_message = "The local store failed"


class NoMesh(LocalError):
    reason = "no_mesh"
    code = -32076
    default_message = (
        "This device is not part of a mesh yet: run 'meshctl init' or 'meshctl join'"
    )


class TooManyConnections(LocalError):
    reason = "busy"
    code = -32077
    default_message = "The daemon is serving too many connections; try again"


def all_error_classes() -> list[type[MeshError]]:
    """Every error class in the tree, root first, for documentation."""
    found: list[type[MeshError]] = []
    pending: list[type[MeshError]] = [MeshError]
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
