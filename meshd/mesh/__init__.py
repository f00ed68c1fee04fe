"""The threshold core: mesh log, proposals and approvals, vault generations.

Pure: no trio, fsspec or socket imports here.
"""
