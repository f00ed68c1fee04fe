"""Passphrase protection for secrets at rest: Argon2id plus XSalsa20-Poly1305."""

from __future__ import annotations

import os
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from meshd.errors import InvalidInput, WrongPassphrase

SALT_SIZE = nacl.pwhash.argon2id.SALTBYTES

# libsodium's "moderate" limits: about half a second and 256 MiB on a laptop,
# paid once when the daemon is unlocked.
DEFAULT_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
DEFAULT_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
MIN_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MIN
MIN_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MIN
# Far above libsodium's "sensitive" limits (4 passes, 1 GiB): stored parameters
# asking for more come from a damaged file, and would stall the unlock for hours.
MAX_OPSLIMIT = 64
MAX_MEMLIMIT = 4 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class KdfParameters:
    salt: bytes
    opslimit: int
    memlimit: int

    @classmethod
    def fresh(
        cls, opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT
    ) -> KdfParameters:
        return cls(os.urandom(SALT_SIZE), opslimit, memlimit)


def check_parameters(params: KdfParameters) -> None:
    """Raises:
    InvalidInput: the salt or a cost is outside what Argon2id here accepts.
    """
    if (
        len(params.salt) != SALT_SIZE
        or not MIN_OPSLIMIT <= params.opslimit <= MAX_OPSLIMIT
        or not MIN_MEMLIMIT <= params.memlimit <= MAX_MEMLIMIT
    ):
        raise InvalidInput("The key derivation parameters are out of range")


def derive_key(passphrase: str, params: KdfParameters) -> bytes:
    """The secret-box key for ``passphrase``.

    Raises:
        InvalidInput: the passphrase is empty or the parameters out of range.
    """
    if not passphrase:
        raise InvalidInput("The passphrase must not be empty")
    check_parameters(params)
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        passphrase.encode("utf-8"),
        params.salt,
        opslimit=params.opslimit,
        memlimit=params.memlimit,
    )


def lock(passphrase: str, params: KdfParameters, plaintext: bytes) -> bytes:
    box = nacl.secret.SecretBox(derive_key(passphrase, params))
    return bytes(box.encrypt(plaintext))


def unlock(passphrase: str, params: KdfParameters, locked: bytes) -> bytes:
    """Raises:
    WrongPassphrase: the passphrase does not open the secret.
    """
    box = nacl.secret.SecretBox(derive_key(passphrase, params))
    try:
        return box.decrypt(locked)
    except nacl.exceptions.CryptoError as exc:
        raise WrongPassphrase() from exc
