"""The listening Unix socket: bound by the daemon or handed over by systemd.

Binding (:func:`bind_socket`) keeps the socket private: its folder is 0700
and owned by this user (created so if missing, refused otherwise), the socket
itself is 0600. A socket file left by a daemon that crashed is replaced; one
that still answers belongs to a live daemon and is left alone.

Socket activation (:func:`inherited_socket`) follows the systemd protocol:
when ``LISTEN_PID`` is this process and ``LISTEN_FDS`` is at least 1, the
listening socket is descriptor 3. The variables are then removed so that
child processes do not take the socket for theirs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import MutableMapping
from pathlib import Path

logger = logging.getLogger(__name__)

# sd_listen_fds(3): passed descriptors start right after stdin/out/err.
LISTEN_FDS_START = 3
# Pending connections the kernel queues before accept; a person's apps only.
BACKLOG = 64


class SocketUnavailable(Exception):
    """The socket cannot be created where it was asked for (a start-up error)."""


def inherited_socket(
    environ: MutableMapping[str, str] | None = None,
) -> socket.socket | None:
    """The listening socket passed by a service manager, if there is one.

    Raises:
        SocketUnavailable: the passed descriptor is not a Unix stream socket.
    """
    environ = os.environ if environ is None else environ
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(environ.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if count < 1:
        return None

    listener = socket.socket(fileno=LISTEN_FDS_START)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
        listener.detach()
        raise SocketUnavailable(
            "The socket passed by the service manager is not a Unix stream socket"
        )
    listener.set_inheritable(False)
    listener.setblocking(False)
    return listener


def bind_socket(path: Path) -> socket.socket:
    """A listening socket at ``path``, private to this user.

    Raises:
        SocketUnavailable: the folder is not private, the path is taken by
            something that is not a socket, or a live daemon serves it.
    """
    ensure_socket_folder(path.parent)
    replace_stale_socket(path)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        listener.bind(str(path))
    except OSError as exc:
        listener.close()
        # A path too long for a Unix socket fails with no strerror.
        detail = exc.strerror or f"{exc}: use a shorter --home or --socket"
        raise SocketUnavailable(f"Cannot bind {path}: {detail}") from exc
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    listener.listen(BACKLOG)
    listener.setblocking(False)
    return listener


def ensure_socket_folder(folder: Path) -> None:
    """Create the socket's folder 0700, or check an existing one is private.

    Raises:
        SocketUnavailable: the folder belongs to someone else or others may
            enter it (they could then reach the socket).
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        raise SocketUnavailable(f"Cannot create {folder}: {exc.strerror}") from exc
    if info.st_uid != os.getuid():
        raise SocketUnavailable(f"The socket folder {folder} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise SocketUnavailable(
            f"The socket folder {folder} has mode {stat.S_IMODE(info.st_mode):04o};"
            " it must be 0700 so that other users cannot reach the socket"
        )


def replace_stale_socket(path: Path) -> None:
    """Remove a socket file that no daemon serves any more.

    Raises:
        SocketUnavailable: the path is not a socket, or a daemon answers on it.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketUnavailable(f"{path} exists and is not a socket; it was left alone")

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        logger.info("Stale socket replaced: %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise SocketUnavailable(f"Another daemon is serving {path}")


def remove_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
