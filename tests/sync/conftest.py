"""Fixtures of the sync tests: a real S3 server, and places to store objects."""

from __future__ import annotations

import sys
from pathlib import Path

# The shared S3 fixture lives in tests/s3server.py; make ``tests`` importable
# when pytest runs without the project folder on the import path.
_PROJECT = str(Path(__file__).resolve().parents[2])
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from tests.s3server import s3_bucket, s3_server  # noqa: E402, F401
