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


def derive_key(passphrase: str, params: KdfParameters) -> bytes:
    if not passphrase:
        raise InvalidInput("The passphrase must not be empty")
    if (
        len(params.salt) != SALT_SIZE
        or params.opslimit < MIN_OPSLIMIT
        or params.memlimit < MIN_MEMLIMIT
    ):
        raise InvalidInput("The key derivation parameters are out of range")
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
