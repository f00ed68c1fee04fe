"""Vault generations: making them, opening one's own share, and recovery.

A new vault generation is written at every membership change (and may be
written alone, as a periodic rotation): a fresh 16-byte seed, split
threshold-of-(active devices), each share sealed to its device's X25519 key,
with a per-share commitment and the vault public key published.

Share acceptance (recovery on a new device): a share is accepted only from an
active member, only inside an approval of a request this device made, and
only if its commitment matches; the rebuilt seed must then yield the
published vault public key. A share that fails is named, never combined.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from meshd.crypto import vault
from meshd.crypto.encoding import Signed
from meshd.crypto.suite import (
    AssociatedData,
    Context,
    DeviceKeys,
    blake2b,
    seal,
    short_id,
    unseal,
    verify,
)
from meshd.errors import (
    BadSignature,
    CorruptShare,
    DecodeError,
    DecryptionFailed,
    InvalidInput,
    UnauthorizedShare,
)
from meshd.mesh.records import (
    APPROVE,
    Approval,
    Directory,
    Proposal,
    SealedNote,
    ShareSlot,
    VaultGeneration,
)
from meshd.mesh.view import MemberInfo

logger = logging.getLogger(__name__)

DIRECTORY_KIND = "mesh-directory"


def directory_aad(previous: bytes, number: int) -> AssociatedData:
    """What a generation's directory is bound to: the entry before it."""
    return AssociatedData(previous, DIRECTORY_KIND, "", number)


def share_plaintext(share: vault.VaultShare) -> bytes:
    return bytes([share.index]) + share.value


def share_from_plaintext(
    data: bytes, expected_index: int, device: str
) -> vault.VaultShare:
    """Raises:
    CorruptShare: the opened share has the wrong shape or index.
    """
    if len(data) != 1 + vault.SHARE_SIZE or data[0] != expected_index:
        raise CorruptShare(
            f"Share {expected_index} from {short_id(device)} has the wrong shape",
            share=expected_index,
            device=device,
        )
    return vault.VaultShare(data[0], data[1:])


def new_generation(
    number: int,
    threshold: int,
    recipients: dict[str, bytes],
    directory: Directory,
    previous: bytes,
) -> VaultGeneration:
    """A fresh vault generation for ``recipients`` (device id -> X25519 key).

    Shares are indexed in device-id order, so every device can check that
    the generation covers exactly the active devices.

    Raises:
        InvalidInput: the threshold does not fit the number of devices.
    """
    seed = vault.new_seed()
    public = vault.vault_public_key(seed)
    members = sorted(recipients.items())
    shares = vault.split(seed, threshold, len(members))

    # Each share is sealed to its own device; the commitment lets a
    # recovering device name a corrupt share before combining.
    slots = tuple(
        ShareSlot(
            device_id,
            share.index,
            vault.share_commitment(public, share),
            seal(encryption_key, share_plaintext(share)),
        )
        for (device_id, encryption_key), share in zip(members, shares, strict=True)
    )

    # The directory is readable by each device and by whoever rebuilds the
    # seed (a recovering device), never by storage.
    note = SealedNote.seal(
        {**recipients, "vault": public},
        directory.encode(),
        directory_aad(previous, number),
    )
    return VaultGeneration(number, threshold, public, slots, note)


def open_share(
    generation: VaultGeneration, keys: DeviceKeys, device_id: str | None = None
) -> vault.VaultShare:
    """This device's own share of ``generation``.

    Args:
        device_id: the device's enrollment id, when its keys were rotated.

    Raises:
        InvalidInput: the device holds no share of it.
        CorruptShare: the sealed share does not open to a committed share.
    """
    owner = device_id or keys.device_id
    slot = generation.slot_of(owner)
    if slot is None:
        raise InvalidInput(
            f"Device {short_id(owner)} holds no share of vault "
            f"generation {generation.number}"
        )
    return _open_slot(slot, generation.public_key, keys.encryption_secret)


def _open_slot(slot: ShareSlot, public: bytes, secret: bytes) -> vault.VaultShare:
    try:
        data = unseal(secret, slot.sealed_share)
    except DecryptionFailed as exc:
        raise CorruptShare(
            f"Share {slot.index} cannot be opened", share=slot.index
        ) from exc
    share = share_from_plaintext(data, slot.index, slot.device_id)
    vault.check_share(public, slot.commitment, share)
    return share


def reseal_share(
    generation: VaultGeneration,
    old_keys: DeviceKeys,
    new_encryption_key: bytes,
    device_id: str,
) -> ShareSlot:
    """This device's share sealed again, to its new encryption key."""
    share = open_share(generation, old_keys, device_id)
    slot = generation.slot_of(device_id)
    assert slot is not None  # open_share succeeded
    return ShareSlot(
        slot.device_id,
        slot.index,
        slot.commitment,
        seal(new_encryption_key, share_plaintext(share)),
    )


def open_directory(
    generation: VaultGeneration, previous: bytes, device_id: str, secret: bytes
) -> Directory:
    """Raises:
    DecryptionFailed: this device is not a recipient of the generation.
    """
    data = generation.directory.open(
        device_id, secret, directory_aad(previous, generation.number)
    )
    try:
        return Directory.decode(data)
    except DecodeError as exc:
        raise DecryptionFailed() from exc


def proposal_id(proposal_body: bytes) -> bytes:
    """A proposal's id: the hash of its exact bytes."""
    return blake2b(proposal_body, person=b"hm1-proposal-id")


def recover_vault_seed(
    generation: VaultGeneration,
    members: Iterable[MemberInfo],
    my_request: Signed,
    approvals: Iterable[Signed],
    keys: DeviceKeys,
) -> bytes:
    """Rebuild the seed of ``generation`` from approvals of my own request.

    Args:
        generation: the vault generation current at the request's base head.
        members: the active members at the request's base head.
        my_request: the Signed request this device made.
        approvals: Signed approvals received from storage or peers.
        keys: this device's keys (the shares are sealed to them).

    Raises:
        UnauthorizedShare: an approval is not from an active member, is not
            for a request this device made, or its signature does not verify.
        CorruptShare: a share is corrupt (named by index and device), or the
            shares do not rebuild the published vault public key.
        InvalidInput: fewer than the generation's threshold of shares.
    """
    request = Proposal.decode(my_request.body)
    if request.new_device is None or request.new_device.device_id != keys.device_id:
        raise UnauthorizedShare("The request was not made by this device")
    wanted = proposal_id(my_request.body)
    active = {member.device_id: member for member in members if member.active}

    shares = [
        _accepted_share(signed, wanted, active, generation, keys)
        for signed in approvals
    ]
    seed = vault.combine(shares, generation.threshold, generation.public_key)
    logger.info(
        "Vault seed of generation %s rebuilt from %s shares",
        generation.number,
        len(shares),
    )
    return seed


def _accepted_share(
    signed: Signed,
    wanted: bytes,
    active: dict[str, MemberInfo],
    generation: VaultGeneration,
    keys: DeviceKeys,
) -> vault.VaultShare:
    approval = _checked_approval(signed, wanted, active)

    # The share must be the approver's own slot of this generation, and must
    # match the commitment published for that slot.
    slot = generation.slot_of(approval.approver)
    if slot is None or approval.generation != generation.number:
        raise UnauthorizedShare(
            f"Approver {short_id(approval.approver)} holds no share of "
            f"generation {generation.number}",
            device=approval.approver,
        )
    try:
        data = unseal(keys.encryption_secret, approval.sealed_share)
    except DecryptionFailed as exc:
        raise CorruptShare(
            f"Share {slot.index} from {short_id(approval.approver)} cannot be opened",
            share=slot.index,
            device=approval.approver,
        ) from exc
    share = share_from_plaintext(data, slot.index, approval.approver)
    try:
        vault.check_share(generation.public_key, slot.commitment, share)
    except CorruptShare as exc:
        raise CorruptShare(
            f"Share {slot.index} from {short_id(approval.approver)} is corrupt",
            share=slot.index,
            device=approval.approver,
        ) from exc
    return share


def _checked_approval(
    signed: Signed, wanted: bytes, active: dict[str, MemberInfo]
) -> Approval:
    approval = Approval.decode(signed.body)
    member = active.get(approval.approver)
    if member is None:
        raise UnauthorizedShare(
            f"Share from {short_id(approval.approver)}, not an active member",
            device=approval.approver,
        )
    if approval.proposal_id != wanted or approval.decision != APPROVE:
        raise UnauthorizedShare(
            f"Share from {short_id(approval.approver)} is not for a request "
            "this device made",
            device=approval.approver,
        )
    signers = signed.signatures
    if len(signers) != 1 or signers[0].signer != approval.approver:
        raise UnauthorizedShare("An approval must carry its approver's signature")
    try:
        verify(Context.APPROVAL, member.keys.signing, signed.body, signers[0].signature)
    except BadSignature as exc:
        raise UnauthorizedShare(
            f"Approval from {short_id(approval.approver)} has a bad signature",
            device=approval.approver,
        ) from exc
    return approval
