"""Cryptographic suite v1: the only module (with :mod:`meshd.crypto.vault` and
:mod:`meshd.crypto.passphrase`) that touches pynacl or pycryptodome.

Theory of operation
-------------------
A device has two independent key pairs: an Ed25519 signing key (the Device
Passport Key) and an X25519 encryption key. Nothing signs with the encryption
key and nothing encrypts to the signing key.

Signatures are domain separated: the signed message is always
``b"human-mesh/v1/" + context + b"\\0" + payload``, with one context per object
kind (:class:`Context`), so a signature of one kind never verifies as another.

Payloads are encrypted with XChaCha20-Poly1305-IETF under a fresh random
32-byte payload key and a random 24-byte nonce. The associated data binds the
mesh id, the object kind, the author device and the sequence, so storage
cannot move a ciphertext into another context. The payload key is wrapped to
each recipient with an X25519 sealed box. Plaintexts are padded to size
buckets before encryption so lengths leak only the bucket.

Every decryption failure, whatever step failed, raises the same
:class:`~meshd.errors.DecryptionFailed` with the same message.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from meshd.errors import BadSignature, DecryptionFailed, InvalidInput

SIGNATURE_PREFIX = b"human-mesh/v1/"
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
PAYLOAD_KEY_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
HASH_SIZE = 32

# Padding buckets: powers of two from 256 bytes to 1 MiB, then whole MiB.
# Small edits (the common case) all look alike; large ones leak only their MiB.
_MIN_BUCKET = 256
_MAX_POWER_BUCKET = 1 << 20
_PAD_HEADER = struct.Struct(">I")

_DECRYPTION_FAILED = "The ciphertext cannot be decrypted"
_BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class Context(enum.Enum):
    """Signature contexts. Each signed object kind has its own; never reuse."""

    MEMBERSHIP = b"membership"
    PROPOSAL = b"proposal"
    APPROVAL = b"approval"
    OP = b"op"
    HEAD = b"head"
    SNAPSHOT = b"snapshot"
    AUTH_PROOF = b"auth-proof"
    DELEGATION = b"delegation"
    HANDSHAKE = b"handshake"
    KEY_ROTATION = b"key-rotation"


def signing_message(context: Context, payload: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers (the signing hash, in one
    place)."""
    return SIGNATURE_PREFIX + context.value + b"\0" + payload


def blake2b(data: bytes, *, person: bytes = b"", key: bytes = b"") -> bytes:
    """BLAKE2b-256 of ``data``; ``person`` separates purposes."""
    return hashlib.blake2b(data, digest_size=HASH_SIZE, person=person, key=key).digest()


# -- Text forms of ids -----------------------------------------------------------


def base32_text(data: bytes) -> str:
    """Unpadded upper-case RFC 4648 base32."""
    return base64.b32encode(data).decode("ascii").rstrip("=")


def group_text(text: str, size: int = 4) -> str:
    """Split ``text`` into dash-separated groups for reading aloud."""
    return "-".join(text[i : i + size] for i in range(0, len(text), size))


def device_id_from_key(signing_public_key: bytes) -> str:
    """Device id: grouped base32 of BLAKE2b-256 of the signing public key."""
    return group_text(base32_text(blake2b(signing_public_key)))


def short_id(identifier: str) -> str:
    """The first two groups of an id, for logs and tables."""
    return "-".join(identifier.split("-")[:2]) if "-" in identifier else identifier[:9]


def did_from_genesis(genesis_hash: bytes) -> str:
    """The self-certifying mesh DID: derived from the genesis entry's hash."""
    return "did:human:" + base32_text(genesis_hash).lower()


def _is_canonical_hash_text(compact: str) -> bool:
    """Whether ``compact`` is the exact base32 text of a 32-byte hash.

    52 characters carry 260 bits, so the last one has 4 unused bits that must
    be zero; otherwise two spellings would name the same device.
    """
    if len(compact) != 52 or any(ch not in _BASE32_ALPHABET for ch in compact):
        return False
    return base32_text(base64.b32decode(compact + "====")) == compact


def normalize_device_id(text: str) -> str:
    """Accept a device id typed with any case, dashes or spaces.

    Raises:
        InvalidInput: the text is not a device id.
    """
    # Upper-case only ASCII: a dotless i upper-cases to "I", not what was shown.
    compact = "".join(ch for ch in text if ch not in "- ")
    if not compact.isascii() or not _is_canonical_hash_text(compact.upper()):
        raise InvalidInput(f"{text!r} is not a device id", field="device_id")
    compact = compact.upper()
    return group_text(compact)


# -- Device keys -----------------------------------------------------------------


@dataclass(frozen=True)
class DevicePublicKeys:
    """What other devices know of a device: its two public keys."""

    signing: bytes
    encryption: bytes

    @functools.cached_property
    def device_id(self) -> str:
        # Hashing and base32 per call showed up in every status answer.
        return device_id_from_key(self.signing)


class DeviceKeys:
    """A device's private keys: an Ed25519 signing key and an X25519 key."""

    def __init__(self, signing_seed: bytes, encryption_secret: bytes) -> None:
        if len(signing_seed) != SEED_SIZE or len(encryption_secret) != SEED_SIZE:
            raise InvalidInput("Device key material must be 32 bytes each")
        self._signing = nacl.signing.SigningKey(signing_seed)
        self._encryption = nacl.public.PrivateKey(encryption_secret)

    @classmethod
    def generate(cls) -> DeviceKeys:
        return cls(os.urandom(SEED_SIZE), os.urandom(SEED_SIZE))

    @property
    def signing_seed(self) -> bytes:
        return bytes(self._signing)

    @property
    def encryption_secret(self) -> bytes:
        return bytes(self._encryption)

    @functools.cached_property
    def public(self) -> DevicePublicKeys:
        return DevicePublicKeys(
            signing=bytes(self._signing.verify_key),
            encryption=bytes(self._encryption.public_key),
        )

    @functools.cached_property
    def device_id(self) -> str:
        return self.public.device_id

    def sign(self, context: Context, payload: bytes) -> bytes:
        """A detached Ed25519 signature over ``payload`` in ``context``."""
        return self._signing.sign(signing_message(context, payload)).signature

    def unwrap_key(self, wrapped: bytes) -> bytes:
        """Open a payload key sealed to this device.

        Raises:
            DecryptionFailed: the wrapped key is not for this device or altered.
        """
        return unseal(self.encryption_secret, wrapped)

    def __repr__(self) -> str:
        return f"DeviceKeys({short_id(self.device_id)})"


def verify(
    context: Context, signing_public_key: bytes, payload: bytes, signature: bytes
) -> None:
    """Check a signature made with :meth:`DeviceKeys.sign`.

    Raises:
        BadSignature: the signature does not verify for this key and context.
    """
    if len(signing_public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise BadSignature("A signature or public key has the wrong length")
    try:
        nacl.signing.VerifyKey(signing_public_key).verify(
            signing_message(context, payload), signature
        )
    except nacl.exceptions.CryptoError as exc:
        raise BadSignature() from exc


def verify_raw(signing_public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Plain Ed25519 verification without a context (test vectors, baselines)."""
    try:
        nacl.signing.VerifyKey(signing_public_key).verify(message, signature)
    except nacl.exceptions.CryptoError:
        return False
    return True


def sign_raw(signing_seed: bytes, message: bytes) -> bytes:
    """Plain Ed25519 signature without a context (test vectors only)."""
    return nacl.signing.SigningKey(signing_seed).sign(message).signature


def x25519_public_key(secret: bytes) -> bytes:
    return bytes(nacl.public.PrivateKey(secret).public_key)


# -- Key wrapping ------------------------------------------------------------------


def seal(recipient_public_key: bytes, plaintext: bytes) -> bytes:
    """Anonymous X25519 sealed box of ``plaintext`` to a recipient."""
    if len(recipient_public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInput("An encryption public key must be 32 bytes")
    return nacl.bindings.crypto_box_seal(plaintext, recipient_public_key)


def unseal(recipient_secret: bytes, sealed: bytes) -> bytes:
    """Open a sealed box.

    Raises:
        DecryptionFailed: always the same error, whatever went wrong.
    """
    try:
        public = x25519_public_key(recipient_secret)
        return nacl.bindings.crypto_box_seal_open(sealed, public, recipient_secret)
    except Exception as exc:  # any failure must look the same to the caller
        raise DecryptionFailed(_DECRYPTION_FAILED) from exc


# -- Payload encryption -------------------------------------------------------------


@dataclass(frozen=True)
class AssociatedData:
    """What a ciphertext is bound to. Storage cannot move it elsewhere."""

    mesh_id: bytes
    kind: str
    author: str
    sequence: int

    def encode(self) -> bytes:
        parts = (self.mesh_id, self.kind.encode(), self.author.encode())
        framed = b"".join(struct.pack(">I", len(part)) + part for part in parts)
        return SIGNATURE_PREFIX + b"aad\0" + framed + struct.pack(">Q", self.sequence)


def bucket_size(length: int) -> int:
    """The padded size for a plaintext of ``length`` bytes (header included)."""
    needed = length + _PAD_HEADER.size
    if needed <= _MIN_BUCKET:
        return _MIN_BUCKET
    if needed <= _MAX_POWER_BUCKET:
        return 1 << (needed - 1).bit_length()
    return -(-needed // _MAX_POWER_BUCKET) * _MAX_POWER_BUCKET


def pad(plaintext: bytes) -> bytes:
    size = bucket_size(len(plaintext))
    body = _PAD_HEADER.pack(len(plaintext)) + plaintext
    return body + bytes(size - len(body))


def unpad(padded: bytes) -> bytes:
    if len(padded) < _PAD_HEADER.size:
        raise DecryptionFailed(_DECRYPTION_FAILED)
    (length,) = _PAD_HEADER.unpack_from(padded)
    end = _PAD_HEADER.size + length
    if end > len(padded) or any(padded[end:]):
        raise DecryptionFailed(_DECRYPTION_FAILED)
    return padded[_PAD_HEADER.size : end]


def new_payload_key() -> bytes:
    return os.urandom(PAYLOAD_KEY_SIZE)


def encrypt(key: bytes, plaintext: bytes, aad: AssociatedData) -> bytes:
    """Pad and encrypt; returns ``nonce || ciphertext``.

    Raises:
        InvalidInput: the payload key is not 32 bytes, or the sequence does not
            fit the 64 bits the associated data gives it.
    """
    if len(key) != PAYLOAD_KEY_SIZE:
        raise InvalidInput("A payload key must be 32 bytes")
    if not 0 <= aad.sequence < 1 << 64:
        raise InvalidInput("A sequence must fit in 64 bits", field="sequence")
    nonce = os.urandom(NONCE_SIZE)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        pad(plaintext), aad.encode(), nonce, key
    )
    return nonce + ciphertext


def decrypt(key: bytes, sealed: bytes, aad: AssociatedData) -> bytes:
    """Decrypt and unpad ``nonce || ciphertext``.

    Raises:
        DecryptionFailed: always the same error, whatever went wrong.
    """
    try:
        padded = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[NONCE_SIZE:], aad.encode(), sealed[:NONCE_SIZE], key
        )
    except Exception as exc:  # any failure must look the same to the caller
        raise DecryptionFailed(_DECRYPTION_FAILED) from exc
    return unpad(padded)


@dataclass(frozen=True)
class Envelope:
    """A payload encrypted once, its key wrapped to several recipients.

    ``wrapped_keys`` maps a recipient name (a device id, or ``"vault"``) to the
    payload key sealed to that recipient's X25519 public key.
    """

    ciphertext: bytes
    wrapped_keys: dict[str, bytes]


def encrypt_for(
    recipients: dict[str, bytes], plaintext: bytes, aad: AssociatedData
) -> Envelope:
    """Encrypt ``plaintext`` for every recipient public key in ``recipients``."""
    key = new_payload_key()
    wrapped = {name: seal(public, key) for name, public in sorted(recipients.items())}
    return Envelope(ciphertext=encrypt(key, plaintext, aad), wrapped_keys=wrapped)


def decrypt_envelope(
    recipient: str, recipient_secret: bytes, envelope: Envelope, aad: AssociatedData
) -> bytes:
    """Open an :class:`Envelope` as ``recipient``.

    Raises:
        DecryptionFailed: always the same error, whatever went wrong (no key
            for this recipient, a flipped bit, a wrong context).
    """
    wrapped = envelope.wrapped_keys.get(recipient)
    if wrapped is None:
        raise DecryptionFailed(_DECRYPTION_FAILED)
    return decrypt(unseal(recipient_secret, wrapped), envelope.ciphertext, aad)


def constant_time_equal(left: bytes, right: bytes) -> bool:
    return hmac.compare_digest(left, right)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
