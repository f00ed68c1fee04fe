"""Authentication proofs: "this identity answers this challenge".

A proof is a JSON object that anyone can check with the mesh log (or the DID
document) alone, without a daemon:

- A *device proof* is one signature, in :attr:`Context.AUTH_PROOF`, over an
  :class:`AuthStatement` (mesh, challenge, audience, time, mesh head).
- A *threshold proof* is made of approvals of an ``auth`` proposal whose
  ``challenge`` field is the hash of the statement: each approver signs the
  proposal's exact bytes (context APPROVAL), so ``threshold`` devices vouch
  for the same statement. The proposal bytes travel in the proof.

The statement is carried as its exact signed bytes (base64); the readable
fields next to it must say the same thing, or the proof is refused.

Checks, in :func:`verify_proof`, each with its own ``reason`` when it fails:
the DID is the one of the mesh (self-certifying: its hash names the genesis),
each signer was an active device at the proof's mesh head and still is now
(``revoked_signer`` for a device the mesh log shows revoked),
each signature verifies with that device's key of that moment, the distinct
signers reach the claimed threshold (and, for a threshold proof, the mesh's
threshold at that head), and the challenge and audience are the expected
ones when the verifier names them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from meshd.crypto.encoding import Record, Signed
from meshd.crypto.suite import (
    Context,
    DeviceKeys,
    blake2b,
    device_id_from_key,
    did_from_genesis,
    verify,
)
from meshd.errors import BadSignature, DecodeError, InvalidInput, MeshError
from meshd.mesh.log import MeshLog
from meshd.mesh.records import AUTH, Approval, Proposal
from meshd.mesh.state import MeshState

PROOF_TYPE = "human-mesh-auth-proof/v1"
DEVICE_MODE = "device"
THRESHOLD_MODE = "threshold"
MAX_CHALLENGE = 1024
# A proof dated further ahead than this is refused (clocks drift a little).
FUTURE_SKEW_SECONDS = 300.0
_STATEMENT_PERSON = b"hm1-auth-stmt"


@dataclass(frozen=True)
class AuthStatement(Record):
    """What a proof says. Wire format (do not reorder fields)."""

    TAG: ClassVar[str] = "auth-statement"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 8 * 1024
    mesh_id: bytes
    challenge: str
    audience: str
    created_at: int
    mesh_head: bytes
    threshold: int


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on a proof: ``reason`` is ``"ok"`` when it is valid."""

    valid: bool
    signers: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "signers": list(self.signers),
            "reason": self.reason,
        }


class ProofRefused(Exception):
    """A check failed; ``reason`` is a stable word for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- Making proofs -------------------------------------------------------------------


def make_statement(
    state: MeshState, challenge: str, audience: str, now_ms: int, threshold: int
) -> AuthStatement:
    """The statement of a proof made at the head of ``state``.

    Raises:
        InvalidInput: an empty or oversized challenge or audience.
    """
    if not challenge or len(challenge) > MAX_CHALLENGE:
        raise InvalidInput("A challenge is 1 to 1024 characters", field="challenge")
    if len(audience) > MAX_CHALLENGE:
        raise InvalidInput("An audience is at most 1024 characters", field="audience")
    return AuthStatement(
        state.mesh_id, challenge, audience, now_ms, state.head_hash, threshold
    )


def statement_digest(statement: bytes) -> bytes:
    """What an ``auth`` proposal carries as its challenge."""
    return blake2b(statement, person=_STATEMENT_PERSON)


def device_proof(statement: AuthStatement, keys: DeviceKeys) -> dict[str, Any]:
    """A proof signed by this one device (``keys.device_id`` names it)."""
    data = statement.encode()
    signature = keys.sign(Context.AUTH_PROOF, data)
    return _proof_json(
        statement, data, DEVICE_MODE, [(keys.device_id, signature)], None
    )


def threshold_proof(
    statement: bytes, proposal_body: bytes, approvals: Iterable[Signed]
) -> dict[str, Any]:
    """A proof assembled from the approvals of an ``auth`` proposal.

    Raises:
        DecodeError: the statement or an approval is malformed.
    """
    decoded = AuthStatement.decode(statement)
    signatures = []
    for signed in approvals:
        approval = Approval.decode(signed.body)
        if approval.endorsement:
            signatures.append((approval.approver, approval.endorsement))
    return _proof_json(decoded, statement, THRESHOLD_MODE, signatures, proposal_body)


def _proof_json(
    statement: AuthStatement,
    data: bytes,
    mode: str,
    signatures: Sequence[tuple[str, bytes]],
    proposal_body: bytes | None,
) -> dict[str, Any]:
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "mode": mode,
        **_readable(statement),
        "statement": _b64(data),
        "signatures": [
            {"device_id": device, "signature": _b64(signature)}
            for device, signature in sorted(signatures)
        ],
    }
    if proposal_body is not None:
        proof["proposal"] = _b64(proposal_body)
    return proof


def _readable(statement: AuthStatement) -> dict[str, Any]:
    return {
        "did": did_from_genesis(statement.mesh_id),
        "challenge": statement.challenge,
        "audience": statement.audience,
        "created_at": statement.created_at / 1000,
        "mesh_head": statement.mesh_head.hex(),
        "threshold": statement.threshold,
    }


# -- Checking proofs -------------------------------------------------------------------


def verify_proof(
    proof: Mapping[str, Any],
    evidence: Sequence[bytes] | Mapping[str, Any],
    now: float,
    *,
    challenge: str | None = None,
    audience: str | None = None,
    max_age_seconds: float | None = None,
) -> VerifyResult:
    """Check a proof with the mesh log's entries, or with a DID document.

    No daemon is needed. With the mesh log, signers are checked against the
    keys they had at the proof's mesh head and must still be active; a DID
    document lists only the active devices' current keys, so a proof made
    before a key rotation no longer verifies with it.

    Args:
        proof: the proof object, as ``meshctl prove`` printed it.
        evidence: the mesh log's entries (bytes, genesis first), or the DID
            document of the mesh.
        now: seconds since the epoch.
        challenge: when given, the proof must answer exactly this challenge.
        audience: when given, the proof must be meant for this audience.
        max_age_seconds: when given, older proofs are refused.
    """
    signers: tuple[str, ...] = ()
    try:
        statement, data = _read_statement(proof)
        _check_expectations(statement, now, challenge, audience, max_age_seconds)
        keys = _KeyBook.of(evidence, statement)
        signers = _check_signatures(proof, statement, data, keys)
    except ProofRefused as exc:
        return VerifyResult(False, signers, exc.reason)
    return VerifyResult(True, signers, "ok")


def _read_statement(proof: Mapping[str, Any]) -> tuple[AuthStatement, bytes]:
    if not isinstance(proof, Mapping) or proof.get("type") != PROOF_TYPE:
        raise ProofRefused("not_a_proof")
    data = _unb64(proof.get("statement"))
    try:
        statement = AuthStatement.decode(data)
    except DecodeError:
        raise ProofRefused("malformed") from None

    # The readable fields are what people look at: they must not lie.
    readable = _readable(statement)
    if any(proof.get(key) != value for key, value in readable.items()):
        raise ProofRefused("fields_do_not_match_statement")
    return statement, data


def _check_expectations(
    statement: AuthStatement,
    now: float,
    challenge: str | None,
    audience: str | None,
    max_age_seconds: float | None,
) -> None:
    if challenge is not None and statement.challenge != challenge:
        raise ProofRefused("wrong_challenge")
    if audience is not None and statement.audience != audience:
        raise ProofRefused("wrong_audience")
    created = statement.created_at / 1000
    if created > now + FUTURE_SKEW_SECONDS:
        raise ProofRefused("from_the_future")
    if max_age_seconds is not None and now - created > max_age_seconds:
        raise ProofRefused("too_old")


@dataclass(frozen=True)
class _KeyBook:
    """Which signing key each device had when the proof was made.

    ``revoked`` names the devices the mesh log shows as revoked, so that a
    proof signed by one of them is refused for that reason, not as signed
    by a stranger.
    """

    keys: dict[str, bytes]
    required: int
    revoked: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        evidence: Sequence[bytes] | Mapping[str, Any],
        statement: AuthStatement,
    ) -> _KeyBook:
        if isinstance(evidence, Mapping):
            return cls(_document_keys(evidence, statement), 1)
        return _log_keys(evidence, statement)


def _log_keys(entries: Sequence[bytes], statement: AuthStatement) -> _KeyBook:
    try:
        log = MeshLog.from_entries(entries)
    except (MeshError, IndexError):
        raise ProofRefused("bad_mesh_log") from None
    if log.mesh_id != statement.mesh_id:
        raise ProofRefused("wrong_mesh")
    then = log.state_at(statement.mesh_head)
    if then is None:
        raise ProofRefused("unknown_mesh_head")

    # Keys of that moment, for devices active then and still active now.
    keys = {}
    for member in then.active_members():
        current = log.state.member(member.device_id)
        if current is not None and current.active:
            keys[member.device_id] = member.keys.signing
    revoked = {
        device for device, known in log.state.devices.items() if not known.active
    }
    return _KeyBook(keys, then.threshold, frozenset(revoked))


def _document_keys(
    document: Mapping[str, Any], statement: AuthStatement
) -> dict[str, bytes]:
    if document.get("id") != did_from_genesis(statement.mesh_id):
        raise ProofRefused("wrong_mesh")
    keys = {}
    methods = document.get("verificationMethod")
    for method in methods if isinstance(methods, list) else []:
        if not isinstance(method, Mapping):
            continue
        key = _decode_multibase_ed25519(method.get("publicKeyMultibase"))
        if key is None:
            continue
        # The fragment names the device: after a key rotation it is the
        # enrollment id, no longer the one derived from the current key.
        fragment = str(method.get("id", "")).partition("#")[2]
        keys[fragment or device_id_from_key(key)] = key
    return keys


def _check_signatures(
    proof: Mapping[str, Any], statement: AuthStatement, data: bytes, book: _KeyBook
) -> tuple[str, ...]:
    mode = proof.get("mode")
    if mode == DEVICE_MODE:
        context, signed_bytes = Context.AUTH_PROOF, data
    elif mode == THRESHOLD_MODE:
        context, signed_bytes = Context.APPROVAL, _auth_proposal(proof, statement, data)
        if statement.threshold < book.required:
            raise ProofRefused("below_mesh_threshold")
    else:
        raise ProofRefused("unknown_mode")

    signers = sorted(_valid_signers(proof, book, context, signed_bytes))
    if len(signers) < max(statement.threshold, 1):
        raise ProofRefused("threshold_not_met")
    return tuple(signers)


def _auth_proposal(
    proof: Mapping[str, Any], statement: AuthStatement, data: bytes
) -> bytes:
    body = _unb64(proof.get("proposal"))
    try:
        proposal = Proposal.decode(body)
    except DecodeError:
        raise ProofRefused("malformed") from None
    if (
        proposal.kind != AUTH
        or proposal.mesh_id != statement.mesh_id
        or proposal.base_head != statement.mesh_head
        or proposal.challenge != statement_digest(data)
    ):
        raise ProofRefused("proposal_does_not_match")
    return body


def _valid_signers(
    proof: Mapping[str, Any], book: _KeyBook, context: Context, signed_bytes: bytes
) -> set[str]:
    entries = proof.get("signatures")
    if not isinstance(entries, list) or not entries:
        raise ProofRefused("no_signatures")
    signers: set[str] = set()
    for entry in entries:
        device = entry.get("device_id") if isinstance(entry, Mapping) else None
        if not isinstance(device, str):
            raise ProofRefused("malformed")
        key = book.keys.get(device)
        if key is None and device in book.revoked:
            raise ProofRefused("revoked_signer")
        if key is None:
            raise ProofRefused("unknown_signer")
        try:
            verify(context, key, signed_bytes, _unb64(entry.get("signature")))
        except BadSignature:
            raise ProofRefused("bad_signature") from None
        signers.add(device)
    return signers


# -- Encodings ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ProofRefused("malformed")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofRefused("malformed") from None


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ED25519_MULTICODEC = b"\xed\x01"


def _decode_multibase_ed25519(text: object) -> bytes | None:
    """The Ed25519 key of a ``z6Mk...`` multibase string, or None."""
    if not isinstance(text, str) or not text.startswith("z") or len(text) > 100:
        return None
    number = 0
    for character in text[1:]:
        digit = _BASE58.find(character)
        if digit < 0:
            return None
        number = number * 58 + digit
    data = number.to_bytes(34, "big") if number < 1 << (34 * 8) else b""
    if not data.startswith(_ED25519_MULTICODEC):
        return None
    return data[len(_ED25519_MULTICODEC) :]


__all__ = [
    "AuthStatement",
    "ProofRefused",
    "VerifyResult",
    "device_proof",
    "make_statement",
    "statement_digest",
    "threshold_proof",
    "verify_proof",
]
