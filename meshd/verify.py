"""Check an authentication proof without a daemon.

Anyone holding the mesh log (the entries in storage, genesis first) or the
mesh's DID document can check a proof that ``meshctl prove`` printed::

    from meshd.verify import verify_proof
    result = verify_proof(proof, entries_or_did_document, time.time())
    result.valid, result.signers, result.reason

See :mod:`meshd.auth` for what is checked.
"""

from meshd.auth import VerifyResult, verify_proof

__all__ = ["VerifyResult", "verify_proof"]
