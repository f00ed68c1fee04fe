"""The vault: Shamir shares of the seed, checked against commitments."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from meshd.crypto import vault
from meshd.crypto.vault import VaultShare
from meshd.errors import CorruptShare, InvalidInput


def published(
    threshold: int, count: int
) -> tuple[bytes, bytes, list[VaultShare], dict[int, bytes]]:
    """A fresh vault generation: seed, public key, shares and commitments."""
    seed = vault.new_seed()
    public = vault.vault_public_key(seed)
    shares = vault.split(seed, threshold, count)
    commitments = {s.index: vault.share_commitment(public, s) for s in shares}
    return seed, public, shares, commitments


def corrupt(share: VaultShare) -> VaultShare:
    return replace(share, value=bytes([share.value[0] ^ 1]) + share.value[1:])


@pytest.mark.parametrize(("threshold", "count"), [(1, 1), (2, 3), (3, 5)])
def test_every_threshold_subset_rebuilds_the_seed(threshold: int, count: int) -> None:
    seed, public, shares, commitments = published(threshold, count)

    for size in range(threshold, count + 1):
        for subset in itertools.combinations(shares, size):
            assert vault.combine(subset, threshold, public) == seed
            assert vault.combine(subset, threshold, public, commitments) == seed


@pytest.mark.parametrize(("threshold", "count"), [(2, 3), (3, 5)])
def test_fewer_shares_than_the_threshold_do_not_rebuild(
    threshold: int, count: int
) -> None:
    _, public, shares, commitments = published(threshold, count)

    for subset in itertools.combinations(shares, threshold - 1):
        with pytest.raises(InvalidInput):
            vault.combine(subset, threshold, public)
        with pytest.raises(InvalidInput):
            vault.combine(subset, threshold, public, commitments)


def test_duplicates_of_one_share_do_not_count_twice() -> None:
    _, public, shares, _ = published(2, 3)

    with pytest.raises(InvalidInput):
        vault.combine([shares[0], shares[0]], 2, public)


def test_fewer_shares_interpolate_to_a_wrong_seed_that_the_check_catches() -> None:
    _seed, public, shares, _ = published(3, 5)

    # Told the threshold is 2, two shares of a 3-of-5 vault give a wrong seed.
    with pytest.raises(CorruptShare):
        vault.combine(shares[:2], 2, public)


@pytest.mark.parametrize("bad", range(5))
def test_a_corrupted_share_is_named_through_its_commitment(bad: int) -> None:
    _, public, shares, commitments = published(3, 5)
    shares[bad] = corrupt(shares[bad])

    with pytest.raises(CorruptShare) as caught:
        vault.combine(shares, 3, public, commitments)

    assert caught.value.details["share"] == bad + 1
    assert str(bad + 1) in str(caught.value)


def test_a_share_with_a_forged_index_is_named() -> None:
    _, public, shares, commitments = published(2, 3)
    moved = replace(shares[0], index=2)

    with pytest.raises(CorruptShare) as caught:
        vault.combine([moved, shares[2]], 2, public, commitments)

    assert caught.value.details["share"] == 2


def test_a_share_that_was_never_issued_is_named() -> None:
    _, public, shares, commitments = published(2, 3)
    stranger = VaultShare(9, shares[0].value)

    with pytest.raises(CorruptShare) as caught:
        vault.combine([shares[0], stranger], 2, public, commitments)

    assert caught.value.details["share"] == 9


def test_a_corrupted_share_is_detected_without_commitments() -> None:
    _, public, shares, _ = published(2, 3)

    for bad in range(3):
        damaged = list(shares)
        damaged[bad] = corrupt(damaged[bad])
        chosen = [damaged[bad], damaged[(bad + 1) % 3]]
        with pytest.raises(CorruptShare):
            vault.combine(chosen, 2, public)


@pytest.mark.parametrize(
    "share",
    [VaultShare(1, b"short"), VaultShare(0, bytes(16)), VaultShare(300, bytes(16))],
)
def test_a_misshapen_share_is_corrupt_with_or_without_commitments(
    share: VaultShare,
) -> None:
    _, public, shares, commitments = published(2, 3)

    with pytest.raises(CorruptShare):
        vault.combine([share, shares[1]], 2, public)
    with pytest.raises(CorruptShare):
        vault.combine([share, shares[1]], 2, public, commitments)


def test_shares_of_another_vault_are_rejected() -> None:
    _, public, _shares, _ = published(2, 3)
    _, _, foreign, _ = published(2, 3)

    with pytest.raises(CorruptShare):
        vault.combine(foreign[:2], 2, public)


def test_commitments_are_bound_to_the_vault_key() -> None:
    _, public, shares, _ = published(2, 3)
    _, other_public, _, _ = published(2, 3)

    commitment = vault.share_commitment(public, shares[0])
    vault.check_share(public, commitment, shares[0])
    with pytest.raises(CorruptShare):
        vault.check_share(other_public, commitment, shares[0])


@pytest.mark.parametrize(("threshold", "count"), [(0, 3), (4, 3), (1, 256), (-1, 1)])
def test_impossible_splits_are_invalid_input(threshold: int, count: int) -> None:
    with pytest.raises(InvalidInput):
        vault.split(vault.new_seed(), threshold, count)


@pytest.mark.parametrize("threshold", [0, -1, 256])
def test_an_impossible_threshold_when_combining_is_invalid_input(
    threshold: int,
) -> None:
    _, public, shares, _ = published(1, 3)

    with pytest.raises(InvalidInput):
        vault.combine(shares, threshold, public)


def test_a_seed_of_the_wrong_size_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        vault.split(bytes(15), 1, 1)
    with pytest.raises(InvalidInput):
        vault.vault_public_key(bytes(32))


def test_the_vault_key_is_derived_for_its_purpose_only() -> None:
    seed = vault.new_seed()

    assert vault.vault_public_key(seed) == vault.vault_public_key(seed)
    assert vault.vault_secret(seed) != seed + bytes(16)
    assert vault.vault_public_key(seed) != vault.vault_public_key(vault.new_seed())
