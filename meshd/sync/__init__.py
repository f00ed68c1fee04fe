"""Storage sync: the object layout of a mesh and the storage backend under it.

:mod:`meshd.sync.layout` names objects (pure); :mod:`meshd.sync.storage` moves
opaque bytes to and from any fsspec URL. What to push and pull is decided
above them.
"""

from meshd.sync.layout import ObjectName, content_hash, parse_name
from meshd.sync.storage import RequestCounter, RetryPolicy, StorageBackend

__all__ = [
    "ObjectName",
    "RequestCounter",
    "RetryPolicy",
    "StorageBackend",
    "content_hash",
    "parse_name",
]
