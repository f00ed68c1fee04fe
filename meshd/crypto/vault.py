"""The vault: a 16-byte seed split across the devices with Shamir shares.

The vault seed derives an X25519 key pair (the vault key). Every op and
snapshot also wraps its payload key to the vault public key, so anyone who
rebuilds the seed from ``threshold`` shares can read the whole passport: this
is how a new device recovers after a loss.

Shamir runs over GF(2^128) (pycryptodome). Plain Shamir cannot tell a wrong
share from a right one, so each vault generation also publishes a commitment
per share: a keyed BLAKE2b of the share under the vault public key and the
share index. A share that does not match its commitment is named as corrupt
before any combination is tried; the rebuilt seed is then checked against the
published vault public key as well.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir

from meshd.crypto.suite import blake2b, constant_time_equal, x25519_public_key
from meshd.errors import CorruptShare, InvalidInput

SEED_SIZE = 16
SHARE_SIZE = 16
MAX_SHARES = 255  # Shamir share indexes are one byte on the wire

_VAULT_KEY_PERSON = b"hm1-vault-x25519"
_COMMITMENT_PERSON = b"hm1-share-commit"


@dataclass(frozen=True)
class VaultShare:
    """One Shamir share of a vault seed. ``index`` starts at 1."""

    index: int
    value: bytes


def new_seed() -> bytes:
    return os.urandom(SEED_SIZE)


def vault_secret(seed: bytes) -> bytes:
    """The vault X25519 secret key derived from the seed (purpose-bound)."""
    if len(seed) != SEED_SIZE:
        raise InvalidInput("A vault seed must be 16 bytes")
    return blake2b(seed, person=_VAULT_KEY_PERSON)


def vault_public_key(seed: bytes) -> bytes:
    return x25519_public_key(vault_secret(seed))


def split(seed: bytes, threshold: int, count: int) -> list[VaultShare]:
    """Split ``seed`` into ``count`` shares, any ``threshold`` of which rebuild it."""
    if len(seed) != SEED_SIZE:
        raise InvalidInput("A vault seed must be 16 bytes")
    if not 1 <= threshold <= count <= MAX_SHARES:
        raise InvalidInput("Need 1 <= threshold <= share count <= 255")
    return [
        VaultShare(index, value)
        for index, value in Shamir.split(threshold, count, seed)
    ]


def share_commitment(vault_public: bytes, share: VaultShare) -> bytes:
    """The published commitment to one share of the vault with this public key."""
    key = blake2b(vault_public + bytes([share.index]), person=_COMMITMENT_PERSON)
    return blake2b(share.value, key=key, person=_COMMITMENT_PERSON)


def check_share_shape(share: VaultShare) -> None:
    """Raises:
    CorruptShare: the share cannot be a share of any vault (size or index).
    """
    if (
        type(share.value) is not bytes
        or len(share.value) != SHARE_SIZE
        or not 1 <= share.index <= MAX_SHARES
    ):
        raise CorruptShare(
            f"Share {share.index} has the wrong shape", share=share.index
        )


def check_share(vault_public: bytes, commitment: bytes, share: VaultShare) -> None:
    """Raises:
    CorruptShare: the share does not match its published commitment.
    """
    check_share_shape(share)
    if not constant_time_equal(share_commitment(vault_public, share), commitment):
        raise CorruptShare(
            f"Share {share.index} does not match its commitment", share=share.index
        )


def combine(
    shares: Sequence[VaultShare],
    threshold: int,
    vault_public: bytes,
    commitments: dict[int, bytes] | None = None,
) -> bytes:
    """Rebuild the seed from at least ``threshold`` shares and check it.

    Args:
        shares: distinct shares; extra ones beyond ``threshold`` are ignored.
        threshold: how many shares the vault generation needs.
        vault_public: the published vault public key the seed must yield.
        commitments: per-index share commitments, when published; each share
            is checked against its own before combining, so a bad one is named.

    Raises:
        CorruptShare: a named share is corrupt, or the rebuilt seed does not
            yield the published vault public key.
        InvalidInput: fewer than ``threshold`` distinct shares.
    """
    if not 1 <= threshold <= MAX_SHARES:
        raise InvalidInput("Need 1 <= threshold <= 255", threshold=threshold)
    by_index = {share.index: share for share in shares}
    if len(by_index) < threshold:
        raise InvalidInput(
            f"Need {threshold} distinct shares, have {len(by_index)}",
            have=len(by_index),
            need=threshold,
        )
    # A misshapen share is named even when no commitments were published.
    for share in by_index.values():
        check_share_shape(share)
    if commitments is not None:
        for share in by_index.values():
            expected = commitments.get(share.index)
            if expected is None:
                raise CorruptShare(
                    f"Share {share.index} was never issued", share=share.index
                )
            check_share(vault_public, expected, share)

    chosen = sorted(by_index.values(), key=lambda share: share.index)[:threshold]
    seed = Shamir.combine([(share.index, share.value) for share in chosen])
    if not constant_time_equal(vault_public_key(seed), vault_public):
        raise CorruptShare(
            "The shares do not rebuild the published vault key",
            shares=[share.index for share in chosen],
        )
    return seed
