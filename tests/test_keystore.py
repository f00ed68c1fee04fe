"""The keystore: device keys at rest, private, atomic and never clobbered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from meshd.crypto import passphrase
from meshd.crypto.suite import DeviceKeys
from meshd.errors import (
    AlreadyExists,
    KeystoreCorrupt,
    KeystorePermissions,
    Locked,
    NotFound,
    WrongPassphrase,
)
from meshd.keystore import (
    KEYSTORE_NAME,
    DeviceSecrets,
    KeyPairSecret,
    Keystore,
    KeystoreFile,
)

# Argon2id at its minimum cost: the format is the same, the tests stay fast.
FAST = passphrase.KdfParameters.fresh(passphrase.MIN_OPSLIMIT, passphrase.MIN_MEMLIMIT)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "device-home"


def new_secrets() -> DeviceSecrets:
    return DeviceSecrets.of(DeviceKeys.generate())


def test_a_created_keystore_loads_the_same_keys(home: Path) -> None:
    secrets = new_secrets()
    store = Keystore(home)

    store.create(secrets)

    assert Keystore(home).load() == secrets
    assert Keystore(home).load().current.keys().public == secrets.current.keys().public
    assert not store.is_protected()


def test_the_keystore_and_its_home_are_private(home: Path) -> None:
    Keystore(home).create(new_secrets())

    assert (home.stat().st_mode & 0o777) == 0o700
    assert ((home / KEYSTORE_NAME).stat().st_mode & 0o777) == 0o600


def test_a_rotation_keeps_the_retired_keys(home: Path) -> None:
    store = Keystore(home)
    first = new_secrets()
    store.create(first)

    rotated = first.rotated(DeviceKeys.generate())
    store.replace(rotated)

    loaded = store.load()
    assert loaded == rotated
    assert loaded.retired == (first.current,)


def test_a_protected_keystore_needs_its_passphrase(home: Path) -> None:
    secrets = new_secrets()
    store = Keystore(home)
    store.create(secrets, "correct horse", FAST)

    assert store.is_protected()
    with pytest.raises(Locked):
        store.load()
    with pytest.raises(WrongPassphrase):
        store.load("wrong horse")
    assert store.load("correct horse") == secrets


def test_the_secret_keys_are_not_in_a_protected_file(home: Path) -> None:
    secrets = new_secrets()
    Keystore(home).create(secrets, "correct horse", FAST)

    stored = (home / KEYSTORE_NAME).read_bytes()

    assert secrets.current.signing_seed not in stored
    assert secrets.current.encryption_secret not in stored


def test_a_missing_keystore_is_not_found(home: Path) -> None:
    home.mkdir(mode=0o700)

    with pytest.raises(NotFound):
        Keystore(home).load()
    assert not Keystore(home).exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_a_keystore_readable_by_others_is_refused(home: Path, mode: int) -> None:
    store = Keystore(home)
    store.create(new_secrets())
    (home / KEYSTORE_NAME).chmod(mode)

    with pytest.raises(KeystorePermissions):
        store.load()
    with pytest.raises(KeystorePermissions):
        store.replace(new_secrets())
    assert (home / KEYSTORE_NAME).stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o711])
def test_a_home_open_to_others_is_refused(home: Path, mode: int) -> None:
    store = Keystore(home)
    store.create(new_secrets())
    home.chmod(mode)

    with pytest.raises(KeystorePermissions):
        store.load()


def test_creating_in_a_home_open_to_others_is_refused(home: Path) -> None:
    home.mkdir(mode=0o755)
    home.chmod(0o755)

    with pytest.raises(KeystorePermissions):
        Keystore(home).create(new_secrets())
    assert not (home / KEYSTORE_NAME).exists()


def test_create_never_overwrites_a_keystore(home: Path) -> None:
    store = Keystore(home)
    original = new_secrets()
    store.create(original)
    before = (home / KEYSTORE_NAME).read_bytes()

    with pytest.raises(AlreadyExists):
        store.create(new_secrets())

    assert (home / KEYSTORE_NAME).read_bytes() == before
    assert store.load() == original


def _write_keystore_bytes(home: Path, data: bytes) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    path = home / KEYSTORE_NAME
    path.write_bytes(data)
    path.chmod(0o600)


def _valid_file(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "protected": False,
        "salt": b"",
        "opslimit": 0,
        "memlimit": 0,
        "secret": new_secrets().encode(),
    }
    fields.update(changes)
    return KeystoreFile(**fields).encode()  # type: ignore[arg-type]


CORRUPT_FILES = {
    "empty": b"",
    "garbage": b"\x00not a keystore at all",
    "truncated": _valid_file()[:-5],
    "bit flipped tag": b"\x96\xa8keyst0re" + _valid_file()[10:],
    "secrets garbage": _valid_file(secret=b"garbage"),
    "short signing seed": _valid_file(
        secret=DeviceSecrets(KeyPairSecret(b"s" * 31, b"e" * 32), ()).encode()
    ),
    "short retired key": _valid_file(
        secret=DeviceSecrets(
            KeyPairSecret(b"s" * 32, b"e" * 32), (KeyPairSecret(b"", b""),)
        ).encode()
    ),
    "protected with a short salt": _valid_file(
        protected=True, salt=b"salt", opslimit=1, memlimit=8192
    ),
    "protected with impossible costs": _valid_file(
        protected=True, salt=bytes(16), opslimit=0, memlimit=0
    ),
    "huge": bytes(1 << 20),
}


@pytest.mark.parametrize("name", sorted(CORRUPT_FILES))
def test_a_corrupt_keystore_is_reported_and_left_untouched(
    home: Path, name: str
) -> None:
    data = CORRUPT_FILES[name]
    _write_keystore_bytes(home, data)
    store = Keystore(home)

    with pytest.raises(KeystoreCorrupt):
        store.load("any passphrase")
    with pytest.raises(KeystoreCorrupt):
        store.replace(new_secrets())
    with pytest.raises(AlreadyExists):
        store.create(new_secrets())

    assert (home / KEYSTORE_NAME).read_bytes() == data


def test_a_protected_keystore_without_passphrase_is_locked_before_corruption_shows(
    home: Path,
) -> None:
    # The sealed part cannot be checked without the passphrase.
    _write_keystore_bytes(
        home, _valid_file(protected=True, salt=bytes(16), opslimit=1, memlimit=8192)
    )

    with pytest.raises(Locked):
        Keystore(home).load()


# -- Crashes between writing and renaming -----------------------------------------

_KILL_BEFORE_RENAME = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    from meshd.crypto.suite import DeviceKeys
    from meshd.keystore import DeviceSecrets, Keystore

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    # The temporary file is written and synced; the process dies instead of
    # publishing it.
    os.replace = die
    os.rename = die
    os.link = die
    store = Keystore(Path(sys.argv[1]))
    getattr(store, sys.argv[2])(DeviceSecrets.of(DeviceKeys.generate()))
    print("the write was published")
    """
)


def _crash_during(home: Path, method: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _KILL_BEFORE_RENAME, str(home), method],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert b"published" not in result.stdout


def test_a_crash_during_replace_leaves_the_old_keystore(home: Path) -> None:
    store = Keystore(home)
    original = new_secrets()
    store.create(original)
    before = (home / KEYSTORE_NAME).read_bytes()

    _crash_during(home, "replace")

    assert (home / KEYSTORE_NAME).read_bytes() == before
    assert store.load() == original
    rotated = original.rotated(DeviceKeys.generate())
    store.replace(rotated)
    assert store.load() == rotated


def test_a_crash_during_create_leaves_no_keystore_and_create_works_later(
    home: Path,
) -> None:
    _crash_during(home, "create")

    assert not (home / KEYSTORE_NAME).exists()
    assert not Keystore(home).exists()
    assert [p for p in home.iterdir() if p.name != KEYSTORE_NAME], "no leftover"

    secrets = new_secrets()
    Keystore(home).create(secrets)
    assert Keystore(home).load() == secrets
    assert os.listdir(home) == [KEYSTORE_NAME]


def test_of_many_concurrent_creates_exactly_one_wins(home: Path) -> None:
    candidates = [new_secrets() for _ in range(8)]
    winners: list[DeviceSecrets] = []
    refused: list[BaseException] = []
    start = threading.Barrier(len(candidates))

    def create(secrets: DeviceSecrets) -> None:
        start.wait()
        try:
            Keystore(home).create(secrets)
            winners.append(secrets)
        except AlreadyExists as exc:
            refused.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1
    assert len(refused) == len(candidates) - 1
    assert Keystore(home).load() == winners[0]


def test_an_empty_passphrase_never_opens_a_protected_keystore(home: Path) -> None:
    Keystore(home).create(new_secrets(), "correct horse", FAST)

    with pytest.raises(WrongPassphrase):
        Keystore(home).load("")
