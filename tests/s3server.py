"""A real S3 server on loopback, for tests and benchmarks.

moto's threaded server runs in this process on 127.0.0.1 and an ephemeral
port, and clients reach it over HTTP exactly as they would reach AWS. The
environment is pointed at it with dummy credentials for as long as it runs,
so nothing can fall back to real AWS endpoints, a developer's ``~/.aws``
files or the instance metadata service.

Every request the server answers is recorded (:class:`RequestLog`), so tests
and benchmarks count requests on the server side, where retries and any
extra request a client library adds are seen too.

Use from any test folder's ``conftest.py``::

    from tests.s3server import s3_bucket, s3_server  # noqa: F401

``s3_server`` is session-scoped; ``s3_bucket`` is a fresh bucket per test.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from moto.server import ThreadedMotoServer

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
DUMMY_KEY = "testing"
DUMMY_SECRET = "testing"

_bucket_numbers = itertools.count(1)


def s3_environment(endpoint_url: str) -> dict[str, str]:
    """Environment variables that point every AWS client at ``endpoint_url``."""
    nowhere = os.devnull
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": nowhere,
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
    }


# Variables that would send a client elsewhere or change its identity.
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN")


def request_kind(method: str, path: str, query: str) -> str:
    """GET, PUT, LIST, HEAD, DELETE or OTHER for one path-style S3 request."""
    bucket, _, key = path.lstrip("/").partition("/")
    if not key:
        listing = method == "GET" and "location" not in parse_qs(query)
        return "LIST" if listing and bucket else "OTHER"
    if method in ("GET", "PUT", "HEAD", "DELETE"):
        return method
    return "OTHER"


class RequestLog:
    """WSGI middleware that records each request before moto answers it."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._entries: list[tuple[str, str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        entry = (
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
        )
        with self._lock:
            self._entries.append(entry)
        return self._app(environ, start_response)  # type: ignore[no-any-return]

    def entries(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._entries)

    def counts(self, bucket: str | None = None) -> dict[str, int]:
        """Requests by kind, for one bucket or all, since the last clear()."""
        counted: collections.Counter[str] = collections.Counter()
        for method, path, query in self.entries():
            if bucket is None or path.lstrip("/").split("/")[0] == bucket:
                counted[request_kind(method, path, query)] += 1
        return {kind: counted[kind] for kind in ("GET", "PUT", "LIST", "HEAD", "OTHER")}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class S3Server:
    """A running server: where it is, and what it was asked."""

    endpoint_url: str
    log: RequestLog

    def options(self) -> dict[str, Any]:
        """fsspec storage options for this server (given explicitly too)."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": DUMMY_KEY,
            "secret": DUMMY_SECRET,
            "client_kwargs": {"region_name": REGION},
        }

    def client(self) -> Any:
        """A boto3 S3 client of this server, for setting up test data."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_SECRET,
            region_name=REGION,
        )

    def new_bucket(self, stem: str = "meshd-test") -> str:
        """Create an empty bucket with a name no other test uses."""
        name = f"{stem}-{os.getpid()}-{next(_bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Run a moto S3 server on loopback until the block ends."""
    # One access-log line per request would drown the test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    assert host == LOOPBACK, f"the S3 test server must listen on loopback, not {host}"

    # Record requests from the first one on: werkzeug reads server.app per request.
    wsgi_server = server._server
    log = RequestLog(wsgi_server.app)
    wsgi_server.app = log

    endpoint = f"http://{LOOPBACK}:{port}"
    saved = {key: os.environ.get(key) for key in (*s3_environment(endpoint), *_CLEARED)}
    os.environ.update(s3_environment(endpoint))
    for key in _CLEARED:
        os.environ.pop(key, None)
    try:
        yield S3Server(endpoint, log)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server on loopback for the whole test session."""
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.new_bucket()
