"""Storage sync: the object layout of a mesh and the storage backend under it.

:mod:`meshd.sync.layout` names objects (pure); :mod:`meshd.sync.storage` moves
opaque bytes to and from any fsspec URL. What to push and pull is decided
above them.
"""
