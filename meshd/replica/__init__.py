"""The replica log and the passport: signed encrypted ops, their merge, conflicts,
snapshots and the local SQLite store."""

from meshd.replica.clock import HybridClock, Timestamp
from meshd.replica.ingest import Decision, Verdict
from meshd.replica.merge import ConflictRecord
from meshd.replica.replica import Replica, ReplicaSettings
from meshd.replica.store import STORE_FILE, Store

__all__ = [
    "STORE_FILE",
    "ConflictRecord",
    "Decision",
    "HybridClock",
    "Replica",
    "ReplicaSettings",
    "Store",
    "Timestamp",
    "Verdict",
]
