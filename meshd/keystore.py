"""Device keys at rest.

The keystore is one file, ``keystore``, in the device home. The home folder
must be 0700 and the file 0600, both owned by the current user; anything
looser is refused rather than silently fixed, because it may mean the keys
have already been exposed. Writes are atomic (lock the folder, write a
temporary file, fsync, rename, fsync the folder), so a crash leaves either the
old keystore or the new one, never a mix, and two writers cannot interleave.
A file that does not decode is reported as corrupt and is never overwritten.

With a passphrase the secrets are sealed with a key derived by Argon2id; the
daemon then starts locked until ``meshctl unlock``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from meshd.crypto import passphrase as kdf
from meshd.crypto.encoding import Record
from meshd.crypto.suite import DeviceKeys
from meshd.errors import (
    AlreadyExists,
    DecodeError,
    InvalidInput,
    KeystoreCorrupt,
    KeystoreError,
    KeystorePermissions,
    Locked,
    NotFound,
    WrongPassphrase,
)

logger = logging.getLogger(__name__)

KEYSTORE_NAME = "keystore"
_TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class KeyPairSecret(Record):
    TAG: ClassVar[str] = "keypair"
    VERSION: ClassVar[int] = 1
    signing_seed: bytes
    encryption_secret: bytes

    def keys(self) -> DeviceKeys:
        return DeviceKeys(self.signing_seed, self.encryption_secret)

    @classmethod
    def of(cls, keys: DeviceKeys) -> KeyPairSecret:
        return cls(keys.signing_seed, keys.encryption_secret)


@dataclass(frozen=True)
class DeviceSecrets(Record):
    """What the keystore protects: the current keys and retired ones.

    Retired keys stay so that data sealed to them before a rotation still
    opens.
    """

    TAG: ClassVar[str] = "device-secrets"
    VERSION: ClassVar[int] = 1
    current: KeyPairSecret
    retired: tuple[KeyPairSecret, ...]

    @classmethod
    def of(cls, keys: DeviceKeys) -> DeviceSecrets:
        return cls(KeyPairSecret.of(keys), ())

    def rotated(self, new_keys: DeviceKeys) -> DeviceSecrets:
        return DeviceSecrets(KeyPairSecret.of(new_keys), (self.current, *self.retired))


@dataclass(frozen=True)
class KeystoreFile(Record):
    TAG: ClassVar[str] = "keystore"
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 64 * 1024
    protected: bool
    salt: bytes
    opslimit: int
    memlimit: int
    secret: bytes


class Keystore:
    """The keystore file of one device home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / KEYSTORE_NAME

    def exists(self) -> bool:
        return self.path.exists()

    def is_protected(self) -> bool:
        return self._read().protected

    def create(
        self,
        secrets: DeviceSecrets,
        passphrase: str | None = None,
        params: kdf.KdfParameters | None = None,
    ) -> None:
        """Write a new keystore.

        Raises:
            AlreadyExists: a keystore is already there (it is never replaced
                by ``create``; use :meth:`replace` after loading it).
        """
        ensure_private_dir(self.home)
        if self.path.exists():
            raise AlreadyExists(f"A keystore already exists at {self.path}")
        sealed = self._seal(secrets, passphrase, params).encode()

        # Checked again under the write lock: a concurrent create must not win
        # and then be overwritten.
        try:
            atomic_write(self.path, sealed, overwrite=False)
        except FileExistsError:
            raise AlreadyExists(f"A keystore already exists at {self.path}") from None
        logger.info("Keystore created: protected=%s", passphrase is not None)

    def replace(
        self,
        secrets: DeviceSecrets,
        passphrase: str | None = None,
        params: kdf.KdfParameters | None = None,
    ) -> None:
        """Atomically replace a keystore that loads (key rotation)."""
        # Refuse corrupt or exposed files before touching them; an unprotected
        # file can be checked all the way down.
        stored = self._read()
        if not stored.protected:
            self._decode_secrets(stored.secret)
        self._write(self._seal(secrets, passphrase, params))

    def load(self, passphrase: str | None = None) -> DeviceSecrets:
        """Read the device secrets.

        Raises:
            NotFound: there is no keystore.
            KeystorePermissions: the file or its folder is open to others.
            KeystoreCorrupt: the file does not decode.
            Locked: the keystore is protected and no passphrase was given.
            WrongPassphrase: the passphrase does not open it.
        """
        stored = self._read()
        if not stored.protected:
            return self._decode_secrets(stored.secret)
        if passphrase is None:
            raise Locked()
        params = kdf.KdfParameters(stored.salt, stored.opslimit, stored.memlimit)
        if not passphrase:
            raise WrongPassphrase()
        return self._decode_secrets(kdf.unlock(passphrase, params, stored.secret))

    def _seal(
        self,
        secrets: DeviceSecrets,
        passphrase: str | None,
        params: kdf.KdfParameters | None,
    ) -> KeystoreFile:
        if passphrase is None:
            return KeystoreFile(False, b"", 0, 0, secrets.encode())
        params = params or kdf.KdfParameters.fresh()
        locked = kdf.lock(passphrase, params, secrets.encode())
        return KeystoreFile(True, params.salt, params.opslimit, params.memlimit, locked)

    def _read(self) -> KeystoreFile:
        check_private_dir(self.home)
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise NotFound(f"No keystore at {self.path}") from None
        _check_private(self.path, info, 0o077)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise KeystoreError(f"Cannot read {self.path}: {exc.strerror}") from exc
        try:
            stored = KeystoreFile.decode(data)
            if stored.protected:
                kdf.check_parameters(
                    kdf.KdfParameters(stored.salt, stored.opslimit, stored.memlimit)
                )
        except (DecodeError, InvalidInput) as exc:
            raise KeystoreCorrupt(
                f"The keystore at {self.path} is corrupt and was left untouched"
            ) from exc
        return stored

    def _decode_secrets(self, data: bytes) -> DeviceSecrets:
        try:
            secrets = DeviceSecrets.decode(data)
            # Keys of the wrong size would only fail later, far from the cause.
            for pair in (secrets.current, *secrets.retired):
                pair.keys()
        except (DecodeError, InvalidInput) as exc:
            raise KeystoreCorrupt(
                f"The keystore at {self.path} is corrupt and was left untouched"
            ) from exc
        return secrets

    def _write(self, stored: KeystoreFile) -> None:
        atomic_write(self.path, stored.encode())


def atomic_write(
    path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True
) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file.

    Steps: lock the folder, write a temporary file beside ``path`` (created
    with ``mode``), fsync it, rename it over ``path``, fsync the folder so the
    rename itself is durable. A temporary file left by a crash is replaced by
    the next write.

    Raises:
        FileExistsError: ``overwrite`` is false and ``path`` already exists.
    """
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        # Writers in one folder take turns, so none removes or publishes a
        # temporary file that another is still writing. Closing unlocks.
        fcntl.flock(folder, fcntl.LOCK_EX)
        if not overwrite and path.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(path))
        _write_and_rename(path, data, mode)
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_and_rename(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(path.name + _TEMP_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` as a 0700 folder if missing, then check it is private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path)


def check_private_dir(path: Path) -> None:
    """Raises:
    KeystorePermissions: the folder is not ours or others can enter it.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise NotFound(f"No device home at {path}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise KeystoreError(f"{path} is not a folder")
    _check_private(path, info, 0o077)


def _check_private(path: Path, info: os.stat_result, forbidden: int) -> None:
    if info.st_uid != os.getuid():
        raise KeystorePermissions(f"{path} belongs to another user")
    if info.st_mode & forbidden:
        mode = stat.S_IMODE(info.st_mode)
        raise KeystorePermissions(
            f"{path} has mode {mode:04o}; other users must have no access",
            path=str(path),
            mode=f"{mode:04o}",
        )
