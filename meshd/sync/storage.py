"""The storage backend: opaque bytes under mesh object names, on any fsspec URL.

Theory of operation
-------------------
:class:`StorageBackend` is the thin I/O shell under the sync engine. It knows
object *names* (:mod:`meshd.sync.layout`) but never what objects contain.
It offers five calls: :meth:`~StorageBackend.put_immutable`,
:meth:`~StorageBackend.put_mutable` (a device's own head),
:meth:`~StorageBackend.get` (size-bounded), :meth:`~StorageBackend.list` and
:meth:`~StorageBackend.exists`.

Each URL is served by a *driver* that does blocking calls, run in a worker
thread (``trio.to_thread.run_sync``):

- folders (plain paths and ``file://``, including folders that iCloud Drive,
  Dropbox or OneDrive keep in sync): write a hidden temporary file beside the
  target, fsync it, then hard-link it into place (which fails if the name
  exists, so an immutable object is never overwritten) or rename it over the
  head (``os.replace``), then fsync the folder. Readers never see a partial
  object: temporary names are junk to the layout parser.
- ``s3://bucket/prefix`` through s3fs, on AWS or any S3-compatible endpoint:
  a conditional put (``If-None-Match: *``) for immutable names, a plain put
  for the head, one ``GetObject`` per read (the size is checked from the
  response headers before the body is read) and one ``ListObjectsV2`` page
  per 1000 objects for a listing, with no delimiter, so an idle poll of a
  whole mesh is one request.
- any other fsspec protocol the person has installed (``memory://`` for
  tests, GCS, SFTP, WebDAV, ...): generic fsspec calls.

A listing tags each head with a version
(:attr:`~meshd.sync.layout.HeadName.version`) taken from what the listing
request returns anyway, never from an extra request: a folder's file
identity, size and times, an S3 ETag, or whatever size and time a generic
file system's detailed listing carries (no tag if it carries none).
:meth:`~StorageBackend.put_mutable` returns the version of the head it wrote
when the write's own answer tells it (folders, S3).

Listings always go to the storage: the fsspec listing cache is switched off
and invalidated before each listing, and every backend has its own fsspec
instance, so a write by another device is seen by the next listing.

Failures: a missing object is :class:`~meshd.errors.NotFound`, an object over
the caller's size limit is :class:`~meshd.errors.TooLarge`, an immutable name
already holding other bytes is :class:`~meshd.errors.AlreadyExists`. Any other
failure is retried with exponential backoff and full jitter
(:class:`RetryPolicy`), then raised as
:class:`~meshd.errors.StorageUnavailable`; failures that retrying cannot cure
(permission denied, missing bucket or folder) are raised at once.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import errno
import logging
import os
import random
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import fsspec
import fsspec.asyn
import fsspec.core
import trio

from meshd.crypto.suite import short_id
from meshd.errors import (
    AlreadyExists,
    InvalidInput,
    MeshError,
    NotFound,
    StorageUnavailable,
    TooLarge,
)
from meshd.sync import layout
from meshd.sync.layout import HeadName, ObjectName

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A listed file: its path relative to the mesh folder, and its version tag.
Listed = tuple[str, str | None]

# The name of a write probe starts with this, so that a probe left behind by
# a failed delete is plainly meshd's and plainly not a mesh object.
PROBE_PREFIX = ".meshd-probe-"

# A listing longer than this is refused rather than walked: a hostile or
# broken store must not make a poll unbounded. A mesh holds far fewer objects
# once snapshots compact it.
MAX_LISTED_OBJECTS = 1_000_000

# How long one S3 request waits to connect, and then for each read of its
# answer. A healthy endpoint answers a listing page or an object of at most
# a few megabytes well within these; a hung one costs each attempt only this
# long, so the retries of one call stay under a minute instead of s3fs's
# 15 s read wait per attempt.
S3_CONNECT_TIMEOUT_SECONDS = 5.0
S3_READ_TIMEOUT_SECONDS = 8.0

# Failures that retrying will not cure: wrong credentials or permissions, a
# bucket or folder that does not exist, a path that is a folder.
_PERMANENT_FAILURES = (
    PermissionError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
)


class RequestKind(enum.StrEnum):
    """What a storage request does, for counting."""

    GET = "GET"
    PUT = "PUT"
    LIST = "LIST"
    HEAD = "HEAD"
    DELETE = "DELETE"


class RequestCounter:
    """Counts the requests a backend sends, attempts and retries included.

    Thread-safe: drivers call :meth:`record` from worker threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[RequestKind] = collections.Counter()

    def record(self, kind: RequestKind) -> None:
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        """The counts so far, by kind (every kind present, zero included)."""
        with self._lock:
            return {kind.value: self._counts[kind] for kind in RequestKind}

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing storage call is tried.

    Delays grow exponentially from ``base_delay`` up to ``max_delay``, each
    drawn uniformly from zero to that bound ("full jitter"), so that devices
    that failed together do not retry together.
    """

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise InvalidInput("A retry policy needs at least one attempt")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures (1 or more)."""
        bound = min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))
        return random.uniform(0, bound)


# -- Drivers: blocking calls, one per request, in worker threads -----------------


@dataclass(frozen=True)
class _Oversize:
    """A read refused because the object is larger than allowed."""

    size: int


class _Driver(Protocol):
    def read(self, path: str, max_size: int) -> bytes | _Oversize:
        """The object's bytes. Raises FileNotFoundError if it is missing."""
        ...

    def create(self, path: str, data: bytes) -> bool:
        """Write a new object; False (and nothing written) if it exists."""
        ...

    def replace(self, path: str, data: bytes) -> str | None:
        """Write or overwrite an object atomically; its version tag if known."""
        ...

    def find(self, folder: str) -> list[Listed]:
        """Every file under ``folder`` (``""``: all), relative to the root,
        with its version tag."""
        ...

    def exists(self, path: str) -> bool: ...

    def remove(self, path: str) -> None:
        """Delete one object. Only the write probe calls it, on its own name."""
        ...


def _joined(root: str, path: str) -> str:
    return f"{root}/{path}" if path else root


class FolderDriver:
    """A local folder, possibly kept in sync by a sync client.

    ``storage_root``, when given, is the folder the person chose (``root``
    lies inside it). It is never created: missing, it most likely is an
    unmounted drive or a sync client's folder that was removed, and writing
    there would fill the bare mount point. Every listing and write then fails
    with :class:`~meshd.errors.StorageUnavailable` until it is back; the
    folders below it are created as needed.
    """

    def __init__(
        self,
        root: Path,
        count: Callable[[RequestKind], None],
        storage_root: Path | None = None,
    ) -> None:
        self._root = root
        self._count = count
        self._storage_root = storage_root

    def _storage_missing(self) -> StorageUnavailable:
        return StorageUnavailable(
            f"The storage folder {self._storage_root} is missing: "
            "is the drive mounted?",
            url=str(self._storage_root),
        )

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and the folders above it, never the storage root.

        Raises:
            StorageUnavailable: the storage root is missing.
        """
        if self._storage_root is None:
            folder.mkdir(parents=True, exist_ok=True)
            return

        # One level at a time from the root down: if the root vanishes, the
        # first mkdir fails instead of recreating it.
        current = self._storage_root
        for part in folder.relative_to(self._storage_root).parts:
            current = current / part
            try:
                current.mkdir()
            except FileExistsError:
                continue
            except FileNotFoundError:
                raise self._storage_missing() from None

    def _inside(self, path: Path) -> Path:
        # A synced folder is written by the storage provider too: a symlink
        # planted there must not lead a read or a write out of the mesh folder.
        real_root = os.path.realpath(self._root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise PermissionError(
                errno.EACCES, "Path leaves the mesh folder", str(path)
            )
        return path

    def read(self, path: str, max_size: int) -> bytes | _Oversize:
        self._count(RequestKind.GET)
        target = self._inside(self._root / path)
        descriptor = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_size:
                return _Oversize(size)

            # The file may grow between fstat and read: never read past the limit.
            data = handle.read(max_size + 1)
        return _Oversize(len(data)) if len(data) > max_size else data

    def create(self, path: str, data: bytes) -> bool:
        self._count(RequestKind.PUT)
        target = self._inside(self._root / path)
        with self._staged(target, data) as temporary:
            try:
                os.link(temporary, target)
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno not in _NO_HARD_LINKS:
                    raise
                return self._create_without_links(temporary, target)
        _fsync_folder(target.parent)
        return True

    @staticmethod
    def _create_without_links(temporary: Path, target: Path) -> bool:
        # TODO: on file systems without hard links (FAT, some network shares)
        # the existence check and the rename are two steps, so two devices
        # writing the same immutable name at the same instant could replace
        # one another's object. Names of content-addressed objects carry their
        # hash, so this can only hit approvals and proposal requests.
        if os.path.lexists(target):
            return False
        os.replace(temporary, target)
        return True

    def replace(self, path: str, data: bytes) -> str | None:
        self._count(RequestKind.PUT)
        target = self._inside(self._root / path)
        with self._staged(target, data) as temporary:
            os.replace(temporary, target)
        _fsync_folder(target.parent)

        # The same figures a listing shows for the file (a local call, no
        # request): the next listing of an untouched head matches them.
        return _file_version(os.lstat(target))

    @contextlib.contextmanager
    def _staged(self, target: Path, data: bytes) -> Iterator[Path]:
        """A durable temporary copy of ``data`` beside ``target``, removed after."""
        self._make_folders(target.parent)
        self._inside(target.parent)
        token = secrets.token_hex(6)
        temporary = target.with_name(layout.temporary_name(target.name, token))
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            yield temporary
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def find(self, folder: str) -> list[Listed]:
        self._count(RequestKind.LIST)
        if self._storage_root is not None and not self._storage_root.is_dir():
            raise self._storage_missing()
        top = self._root / folder if folder else self._root
        if not top.is_dir():
            return []
        found: list[Listed] = []
        for directory, _, files in os.walk(top, followlinks=False):
            base = Path(directory).relative_to(self._root).as_posix()
            found.extend(_regular_files(Path(directory), base, files))
            if len(found) > MAX_LISTED_OBJECTS:
                raise TooLarge(f"The mesh folder holds over {MAX_LISTED_OBJECTS} files")
        return found

    def exists(self, path: str) -> bool:
        self._count(RequestKind.HEAD)
        try:
            mode = os.lstat(self._inside(self._root / path)).st_mode
        except FileNotFoundError:
            return False
        return stat.S_ISREG(mode)

    def remove(self, path: str) -> None:
        self._count(RequestKind.DELETE)
        os.unlink(self._inside(self._root / path))


# Errors of os.link on file systems that have no hard links.
_NO_HARD_LINKS = {
    errno.EPERM,
    errno.ENOTSUP,
    errno.EOPNOTSUPP,
    errno.EXDEV,
    errno.ENOSYS,
}


def _regular_files(directory: Path, base: str, files: list[str]) -> Iterator[Listed]:
    for name in files:
        # A file may vanish between the folder read and lstat (a temporary
        # name renamed away, a sync client at work): it is simply not listed.
        try:
            status = os.lstat(directory / name)
        except FileNotFoundError:
            continue

        # Symlinks are skipped: an object is a regular file inside the folder.
        if stat.S_ISREG(status.st_mode):
            path = name if base == "." else f"{base}/{name}"
            yield path, _file_version(status)


def _file_version(status: os.stat_result) -> str:
    """A folder file's version tag, from the figures any rewrite changes.

    A rename puts another inode in place; a copy over the file in place
    changes its times. The change time is set by the system, so even a copy
    that restores the old modification time changes the tag.
    """
    return f"{status.st_ino}-{status.st_size}-{status.st_mtime_ns}-{status.st_ctime_ns}"


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot sync)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(descriptor)


async def _read_stream(body: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes of a response body. One stream read returns what
    has arrived so far, not all that was asked for: read until the end."""
    chunks: list[bytes] = []
    received = 0
    while received < limit:
        chunk: bytes = await body.read(limit - received)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


class S3Driver:
    """A bucket and key prefix on S3 or an S3-compatible server, through s3fs."""

    def __init__(
        self, fs: Any, root: str, count: Callable[[RequestKind], None]
    ) -> None:
        self._fs = fs
        self._bucket, _, prefix = root.partition("/")
        self._prefix = prefix.strip("/")
        self._count = count

    def _key(self, path: str) -> str:
        return _joined(self._prefix, path) if self._prefix else path

    def read(self, path: str, max_size: int) -> bytes | _Oversize:
        self._count(RequestKind.GET)
        with _s3_errors():
            result: bytes | _Oversize = fsspec.asyn.sync(
                self._fs.loop, self._read_bounded, self._key(path), max_size
            )
        return result

    async def _read_bounded(self, key: str, max_size: int) -> bytes | _Oversize:
        # One GetObject: its Content-Length is checked before the body is read,
        # and the body is read only up to the limit.
        response = await self._fs._call_s3("get_object", Bucket=self._bucket, Key=key)
        body = response["Body"]
        try:
            size = int(response.get("ContentLength", 0))
            if size > max_size:
                return _Oversize(size)
            data = await _read_stream(body, max_size + 1)
        finally:
            body.close()
        return _Oversize(len(data)) if len(data) > max_size else data

    def create(self, path: str, data: bytes) -> bool:
        self._count(RequestKind.PUT)
        try:
            with _s3_errors():
                self._put(path, data, IfNoneMatch="*")
        except FileExistsError:
            return False
        return True

    def replace(self, path: str, data: bytes) -> str | None:
        self._count(RequestKind.PUT)
        with _s3_errors():
            response = self._put(path, data)

        # The ETag of the answer is the one later listings show for it.
        etag = response.get("ETag")
        return str(etag) if etag is not None else None

    def _put(self, path: str, data: bytes, **conditions: str) -> dict[str, Any]:
        response: dict[str, Any] = self._fs.call_s3(
            "put_object",
            Bucket=self._bucket,
            Key=self._key(path),
            Body=data,
            **conditions,
        )
        return response

    def find(self, folder: str) -> list[Listed]:
        # No delimiter: the whole tree under the prefix comes in one request
        # per page of 1000 keys.
        listed = _joined(self._prefix, folder) if self._prefix else folder
        key_prefix = f"{listed}/" if listed else ""
        found: list[Listed] = []
        arguments: dict[str, str] = {"Bucket": self._bucket, "Prefix": key_prefix}
        while True:
            self._count(RequestKind.LIST)
            with _s3_errors():
                page = self._fs.call_s3("list_objects_v2", **arguments)
            found.extend(
                (item["Key"][len(key_prefix) :], item.get("ETag"))
                for item in page.get("Contents", [])
            )
            if len(found) > MAX_LISTED_OBJECTS:
                raise TooLarge(
                    f"The mesh prefix holds over {MAX_LISTED_OBJECTS} objects"
                )
            if not page.get("IsTruncated"):
                return [
                    (f"{folder}/{name}" if folder else name, version)
                    for name, version in found
                ]
            arguments["ContinuationToken"] = page["NextContinuationToken"]

    def exists(self, path: str) -> bool:
        self._count(RequestKind.HEAD)
        try:
            with _s3_errors():
                self._fs.call_s3(
                    "head_object", Bucket=self._bucket, Key=self._key(path)
                )
        except FileNotFoundError:
            return False
        return True

    def remove(self, path: str) -> None:
        self._count(RequestKind.DELETE)
        with _s3_errors():
            self._fs.call_s3("delete_object", Bucket=self._bucket, Key=self._key(path))


@contextlib.contextmanager
def _s3_errors() -> Iterator[None]:
    """Translate botocore and aiohttp errors that s3fs lets through into OSError.

    s3fs already turns S3 error responses into OSError subclasses
    (FileNotFoundError, PermissionError, FileExistsError for a failed
    If-None-Match); what is left are connection-level failures.
    """
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        NoCredentialsError,
    )

    try:
        yield
    except NoCredentialsError as error:
        raise PermissionError(errno.EACCES, f"No S3 credentials: {error}") from error
    except BotoCoreError as error:
        raise ConnectionError(errno.ECONNREFUSED, str(error)) from error


class FsspecDriver:
    """Any other fsspec file system, through its generic calls."""

    def __init__(
        self, fs: Any, root: str, count: Callable[[RequestKind], None]
    ) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._count = count

    def read(self, path: str, max_size: int) -> bytes | _Oversize:
        self._count(RequestKind.HEAD)
        full = _joined(self._root, path)
        with _generic_errors():
            size = int(self._fs.size(full))
            if size > max_size:
                return _Oversize(size)
            self._count(RequestKind.GET)
            data: bytes = self._fs.cat_file(full, start=0, end=max_size + 1)
        return _Oversize(len(data)) if len(data) > max_size else data

    def create(self, path: str, data: bytes) -> bool:
        # TODO: generic fsspec file systems offer no create-if-absent, so two
        # devices writing the same immutable name at the same instant could
        # replace one another's object. Content-addressed names carry their
        # hash, so this can only hit approvals and proposal requests.
        if self.exists(path):
            return False
        self.replace(path, data)
        return True

    def replace(self, path: str, data: bytes) -> str | None:
        self._count(RequestKind.PUT)
        full = _joined(self._root, path)
        parent, _, leaf = full.rpartition("/")
        temporary = f"{parent}/{layout.temporary_name(leaf, secrets.token_hex(6))}"
        with _generic_errors():
            self._fs.makedirs(parent, exist_ok=True)
            self._fs.pipe_file(temporary, data)
            self._fs.mv(temporary, full)

        # Generic file systems answer a write with nothing to tag it by; the
        # next listing's tag is taken as the one written.
        return None

    def find(self, folder: str) -> list[Listed]:
        self._count(RequestKind.LIST)
        top = _joined(self._root, folder)
        with _generic_errors():
            self._fs.invalidate_cache(top)
            try:
                listed: dict[str, Any] = self._fs.find(top, withdirs=False, detail=True)
            except FileNotFoundError:
                return []
        root = self._fs._strip_protocol(self._root).rstrip("/") + "/"
        return [
            (name[len(root) :], _listed_version(info))
            for name, info in listed.items()
            if name.startswith(root)
        ]

    def exists(self, path: str) -> bool:
        self._count(RequestKind.HEAD)
        with _generic_errors():
            return bool(self._fs.isfile(_joined(self._root, path)))

    def remove(self, path: str) -> None:
        self._count(RequestKind.DELETE)
        with _generic_errors():
            self._fs.rm_file(_joined(self._root, path))


# Fields of fsspec's detailed listings that change when a file is rewritten,
# by file system: content tags first, then times.
_VERSION_FIELDS = ("ETag", "etag", "md5", "mtime", "LastModified", "created")


def _listed_version(info: Any) -> str | None:
    """A version tag from one entry of a generic detailed listing, if any."""
    if not isinstance(info, Mapping):
        return None
    for key in _VERSION_FIELDS:
        value = info.get(key)
        if value is not None:
            return f"{info.get('size')}-{value}"
    return None


@contextlib.contextmanager
def _generic_errors() -> Iterator[None]:
    """Turn the unknown exception types of third-party file systems into OSError.

    A plugin may raise anything (HTTP, SSH or cloud-library errors); here is the
    one place where they cross into meshd, so they become retryable OSError.
    """
    try:
        yield
    except (OSError, MeshError):
        raise
    except Exception as error:
        raise OSError(errno.EIO, f"{type(error).__name__}: {error}") from error


# -- The backend -----------------------------------------------------------------

Name = ObjectName | str


def _checked(name: Name) -> ObjectName:
    return layout.check_name(name) if isinstance(name, str) else name


def _display_url(url: str) -> str:
    """The URL without any user name or password, for logs and errors."""
    protocol, path = fsspec.core.split_protocol(url)
    if protocol is None:
        return str(path)
    return f"{protocol}://{path.rpartition('@')[2]}"


class StorageBackend:
    """Mesh objects as opaque bytes under one folder of any fsspec URL.

    Args:
        url: the folder, e.g. ``/home/me/Dropbox/meshd/<mesh>``,
            ``s3://bucket/prefix/<mesh>`` or ``memory://test-1``.
        options: fsspec storage options (``endpoint_url``, ``key``,
            ``client_kwargs``...). Without them each file system reads its
            usual environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
            ``FSSPEC_S3_*``...).
        retry: how transient failures are retried.
        counter: counts every request; a fresh one if not given.
        own_device_id: if given, the only head that :meth:`put_mutable` writes.
        storage_root: for a folder, the folder the person chose, above
            ``url``: it is never created (see :class:`FolderDriver`).

    Raises:
        StorageUnavailable: the URL names a protocol that is not installed or
            options that its file system refuses.
    """

    def __init__(
        self,
        url: str,
        *,
        options: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        counter: RequestCounter | None = None,
        own_device_id: str | None = None,
        storage_root: str | None = None,
    ) -> None:
        self.url = _display_url(url)
        self.requests = counter or RequestCounter()
        self._retry = retry or RetryPolicy()
        self._own_device_id = own_device_id
        self._driver = _open_driver(
            url, dict(options or {}), self.requests.record, storage_root
        )

    @classmethod
    def for_mesh(cls, url: str, mesh_id: bytes, **keywords: Any) -> StorageBackend:
        """The backend of one mesh: the folder named after it under ``url``.

        ``url`` itself is never created; the mesh's folder is.
        """
        mesh_url = f"{url.rstrip('/')}/{layout.mesh_folder(mesh_id)}"
        return cls(mesh_url, storage_root=url, **keywords)

    async def put_immutable(self, name: Name, data: bytes) -> bool:
        """Write an object that is never rewritten.

        Returns:
            True if it was written now; False if the same bytes were already
            there (a repeated push is harmless).

        Raises:
            AlreadyExists: the name holds other bytes; nothing was written.
            InvalidInput: the name is not a valid immutable name.
            StorageUnavailable: the storage failed, retries included.
        """
        checked = _checked(name)
        if checked.mutable:
            raise InvalidInput("A head is written with put_mutable", field="name")
        if await self._call("put", checked, self._driver.create, checked.path, data):
            logger.debug("Storage wrote %s (%d bytes)", _log_name(checked), len(data))
            return True

        # The name exists: identical bytes mean another push already did it.
        if await self._holds(checked, data):
            return False
        raise AlreadyExists(
            f"Storage already holds other bytes under {checked.path}", name=checked.path
        )

    async def _holds(self, name: ObjectName, data: bytes) -> bool:
        try:
            present = await self._call(
                "get", name, self._driver.read, name.path, len(data)
            )
        except FileNotFoundError:
            return False
        return present == data

    async def put_mutable(self, name: Name, data: bytes) -> str | None:
        """Write or rewrite this device's head, atomically.

        Returns:
            The version tag that listings show for the head just written,
            when the write's answer tells it; else ``None``.

        Raises:
            InvalidInput: the name is not a head, or not this device's.
            StorageUnavailable: the storage failed, retries included.
        """
        checked = _checked(name)
        if not isinstance(checked, HeadName):
            raise InvalidInput("Only a device head is rewritten", field="name")
        if self._own_device_id not in (None, checked.device_id):
            raise InvalidInput("A device writes only its own head", field="name")
        version = await self._call(
            "put", checked, self._driver.replace, checked.path, data
        )
        logger.debug("Storage wrote %s (%d bytes)", _log_name(checked), len(data))
        return version

    async def get(self, name: Name, max_size: int) -> bytes:
        """The bytes of an object, if it is at most ``max_size`` bytes long.

        Raises:
            NotFound: no such object.
            TooLarge: the object is larger than ``max_size``; it was not read.
            InvalidInput: the name is not a mesh object name.
            StorageUnavailable: the storage failed, retries included.
        """
        checked = _checked(name)
        try:
            result = await self._call(
                "get", checked, self._driver.read, checked.path, max_size
            )
        except FileNotFoundError as error:
            raise NotFound(
                f"Storage has no {checked.path}", name=checked.path
            ) from error
        if isinstance(result, _Oversize):
            raise TooLarge(
                f"{checked.path} is {result.size} bytes, over the {max_size} allowed",
                name=checked.path,
            )
        return result

    async def exists(self, name: Name) -> bool:
        """Whether an object is present.

        Raises:
            InvalidInput: the name is not a mesh object name.
            StorageUnavailable: the storage failed, retries included.
        """
        checked = _checked(name)
        return await self._call("exists", checked, self._driver.exists, checked.path)

    async def list(self, prefix: str = "") -> list[ObjectName]:
        """Every valid object name under ``prefix``, sorted by path.

        Heads carry the version tag the listing gave them. Junk (conflict
        copies, temporary files, placeholders, unknown or hostile names) is
        left out with a debug log line.

        Raises:
            InvalidInput: the prefix could leave the mesh folder.
            TooLarge: the storage lists more than MAX_LISTED_OBJECTS files.
            StorageUnavailable: the storage failed, retries included.
        """
        folder = layout.check_prefix(prefix)
        listed = await self._call("list", folder or "/", self._driver.find, folder)
        names: list[ObjectName] = []
        for path, version in listed:
            parsed = layout.parse_name(path)
            if parsed is None:
                logger.debug(
                    "Storage ignored %r: %s", path[:120], layout.junk_reason(path)
                )
            elif isinstance(parsed, HeadName):
                names.append(dataclasses.replace(parsed, version=version))
            else:
                names.append(parsed)
        return sorted(names, key=lambda name: name.path)

    async def probe_writes(self) -> None:
        """Write a small object of this device's own at the top of the folder,
        read it back and delete it: storage that lists but cannot keep what
        is written (a read-only share, a plain web server) is found before a
        mesh depends on it.

        The probe's name is random and used once, so it can be no other
        device's object; it is the only object a backend ever deletes.

        Raises:
            StorageUnavailable: the probe could not be written, or did not
                come back as written.
        """
        name = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        data = f"meshd write probe {name}\n".encode("ascii")
        try:
            await self._call("put", name, self._driver.replace, name, data)
            present = await self._call("get", name, self._driver.read, name, len(data))
        except (StorageUnavailable, FileNotFoundError) as error:
            raise StorageUnavailable(
                f"The storage {self.url} cannot be written by this device: "
                f"choose a folder or bucket it may write to ({one_line(error)})",
                url=self.url,
            ) from error
        if present != data:
            raise StorageUnavailable(
                f"The storage {self.url} does not give back what was written to "
                "it: choose another storage",
                url=self.url,
            )

        # A probe left behind is harmless junk to every listing.
        try:
            await self._call("delete", name, self._driver.remove, name)
        except (StorageUnavailable, FileNotFoundError) as error:
            logger.warning(
                "Storage write probe %s left at %s: %s", name, self.url, one_line(error)
            )

    async def _call(
        self,
        operation: str,
        subject: ObjectName | str,
        step: Callable[..., T],
        *args: Any,
    ) -> T:
        """Run one driver step in a worker thread, retrying transient failures.

        FileNotFoundError from a read passes through for the caller to type.

        Raises:
            StorageUnavailable: a permanent failure, or the retry budget is spent.
        """
        shown = subject if isinstance(subject, str) else subject.path
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await trio.to_thread.run_sync(step, *args)
            except FileNotFoundError as error:
                if operation in ("get", "exists"):
                    raise
                raise self._unavailable(operation, shown, attempt, error) from error
            except _PERMANENT_FAILURES as error:
                raise self._unavailable(operation, shown, attempt, error) from error
            except OSError as error:
                if attempt == self._retry.attempts:
                    raise self._unavailable(operation, shown, attempt, error) from error
                delay = self._retry.delay(attempt)
                logger.info(
                    "Storage %s of %s failed (try %d of %d), retrying in %.2f s: %s",
                    operation,
                    shown,
                    attempt,
                    self._retry.attempts,
                    delay,
                    error,
                )
                await trio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _unavailable(
        self,
        operation: str,
        shown: str,
        attempts: int,
        error: BaseException | None = None,
    ) -> StorageUnavailable:
        cause = error or "unknown failure"
        return StorageUnavailable(
            f"Storage {operation} of {shown} at {self.url} failed after "
            f"{attempts} attempt(s): {cause}",
            url=self.url,
            operation=operation,
        )


def _log_name(name: ObjectName) -> str:
    """A name for logs, with device ids shortened."""
    device_id = getattr(name, "device_id", None)
    if device_id is None:
        return name.path
    return name.path.replace(device_id, short_id(device_id))


# -- Opening a URL ---------------------------------------------------------------


def _open_driver(
    url: str,
    options: dict[str, Any],
    count: Callable[[RequestKind], None],
    storage_root: str | None = None,
) -> _Driver:
    """The driver for a URL; ``storage_root`` only matters to folders.

    Raises:
        StorageUnavailable: the protocol is unknown or not installed, or its
            file system refuses the options.
    """
    protocol, path = fsspec.core.split_protocol(url)
    if protocol in (None, "file", "local"):
        folder = Path(os.path.expanduser(path))
        return FolderDriver(folder, count, _local_root(storage_root))

    # Every backend gets its own instance with the listing cache off: a
    # shared or cached instance would serve one device's stale listing.
    options.setdefault("skip_instance_cache", True)
    options.setdefault("use_listings_cache", False)
    if protocol in ("s3", "s3a"):
        _prepare_s3_options(options)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except Exception as error:
        # A file system may connect or open a file as it is made (FTP, SFTP,
        # zip archives): whatever it raises, the person gets one line.
        raise StorageUnavailable(
            f"Storage {_display_url(url)} cannot be opened: {one_line(error)}",
            url=_display_url(url),
        ) from error
    if protocol in ("s3", "s3a"):
        # Retries are ours (RetryPolicy); s3fs would otherwise retry again.
        fs.retries = 1
        return S3Driver(fs, root, count)
    return FsspecDriver(fs, root, count)


# The longest cause a storage error repeats: enough to tell causes apart, short
# enough for one line of a terminal or a log.
MAX_CAUSE_LENGTH = 200


def one_line(error: BaseException) -> str:
    """An exception as one short line: its type when it says nothing else.

    Third-party file systems put tracebacks, server pages or line breaks in
    their messages; a person needs the gist in one line.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > MAX_CAUSE_LENGTH:
        return text[: MAX_CAUSE_LENGTH - 3] + "..."
    return text


def _local_root(storage_root: str | None) -> Path | None:
    """The folder a plain path or ``file://`` URL names, if one is given."""
    if storage_root is None:
        return None
    return Path(os.path.expanduser(fsspec.core.split_protocol(storage_root)[1]))


def _prepare_s3_options(options: dict[str, Any]) -> None:
    """Put ``endpoint_url`` where s3fs expects it, turn botocore retries off
    and bound how long one request may wait for a hung server."""
    endpoint = options.pop("endpoint_url", None)
    if endpoint is not None:
        options.setdefault("client_kwargs", {})["endpoint_url"] = endpoint
    config = options.setdefault("config_kwargs", {})
    config.setdefault("retries", {"total_max_attempts": 1})
    config.setdefault("connect_timeout", S3_CONNECT_TIMEOUT_SECONDS)
    config.setdefault("read_timeout", S3_READ_TIMEOUT_SECONDS)
