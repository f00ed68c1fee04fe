"""The threshold core: mesh log, proposals and approvals, vault generations.

Pure: no trio, fsspec, sqlite or socket imports here; clock values are
integer milliseconds since the epoch, passed in by the caller.

Modules: :mod:`.records` (wire format), :mod:`.state` (validity rules of one
entry), :mod:`.log` (the chain, fork rules, rollback refusal),
:mod:`.proposals` (proposals, approvals, codes, finalize), :mod:`.vaults`
(vault generations, recovery), :mod:`.changes` (genesis, key and vault
rotation), :mod:`.scenario` (a small language that builds logs for tests),
:mod:`.view` (what the other layers may ask).
"""

from meshd.mesh.changes import Founder, make_genesis, rotate_device_key, rotate_vault
from meshd.mesh.log import Fork, MeshLog, create_mesh, fork_choice
from meshd.mesh.proposals import (
    PendingProposal,
    ProposalBook,
    approval_for,
    finalize,
    make_join_request,
    propose,
    rejection_for,
    short_code,
)
from meshd.mesh.records import Approval, Proposal, Revocation, VaultGeneration
from meshd.mesh.state import MeshState, entry_hash
from meshd.mesh.vaults import open_share, proposal_id, recover_vault_seed
from meshd.mesh.view import MemberInfo, MembershipView

__all__ = [
    "Approval",
    "Fork",
    "Founder",
    "MemberInfo",
    "MembershipView",
    "MeshLog",
    "MeshState",
    "PendingProposal",
    "Proposal",
    "ProposalBook",
    "Revocation",
    "VaultGeneration",
    "approval_for",
    "create_mesh",
    "entry_hash",
    "finalize",
    "fork_choice",
    "make_genesis",
    "make_join_request",
    "open_share",
    "proposal_id",
    "propose",
    "recover_vault_seed",
    "rejection_for",
    "rotate_device_key",
    "rotate_vault",
    "short_code",
]
