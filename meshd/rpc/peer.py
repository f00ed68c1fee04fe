"""Who is on the other end of a Unix socket.

Only the user who runs the daemon may talk to it: the socket is 0600 in a
0700 folder, and every accepted connection is checked once more against the
peer's uid as the kernel reports it, so that a socket handed over by a
service manager or a folder with loose permissions still admits nobody else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

# struct ucred from <sys/socket.h> on Linux: pid_t pid; uid_t uid; gid_t gid.
_UCRED = struct.Struct("iII")


class ConnectedSocket(Protocol):
    """What the check needs of a socket (stdlib and trio sockets both fit)."""

    def getsockopt(self, level: int, option: int, size: int, /) -> bytes: ...

    def fileno(self) -> int: ...


class PeerUnknown(Exception):
    """The kernel would not say who the peer is."""


@dataclass(frozen=True)
class PeerDecision:
    """Whether a peer may talk to the daemon, and why not when refused."""

    allowed: bool
    reason: str = ""


def decide_peer(peer_uid: int, own_uid: int) -> PeerDecision:
    """The rule itself: only the daemon's own user is admitted.

    Root is refused too: it can read the keystore anyway, and admitting it
    would let a confused administrator drive another person's mesh.
    """
    if peer_uid == own_uid:
        return PeerDecision(True)
    return PeerDecision(False, f"uid {peer_uid} is not the daemon's uid {own_uid}")


def peer_uid(sock: ConnectedSocket) -> int:
    """The uid of the process at the other end of a connected Unix socket.

    Raises:
        PeerUnknown: neither SO_PEERCRED nor getpeereid is available or both
            failed; the caller must refuse the connection.
    """
    if hasattr(socket, "SO_PEERCRED"):
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        except OSError as exc:
            raise PeerUnknown(f"SO_PEERCRED failed: {exc.strerror}") from exc
        return int(_UCRED.unpack(raw)[1])
    return _getpeereid(sock.fileno())


def _getpeereid(descriptor: int) -> int:
    """getpeereid(2), the BSD and macOS way to ask for the peer's uid."""
    library_name = ctypes.util.find_library("c")
    if library_name is None or sys.platform.startswith("win"):
        raise PeerUnknown("getpeereid is not available on this system")
    libc = ctypes.CDLL(library_name, use_errno=True)
    if not hasattr(libc, "getpeereid"):
        raise PeerUnknown("getpeereid is not available on this system")

    uid = ctypes.c_uint32()
    gid = ctypes.c_uint32()
    if libc.getpeereid(descriptor, ctypes.byref(uid), ctypes.byref(gid)) != 0:
        raise PeerUnknown(f"getpeereid failed: {os.strerror(ctypes.get_errno())}")
    return int(uid.value)


def check_peer(sock: ConnectedSocket, own_uid: int | None = None) -> PeerDecision:
    """Admit or refuse the peer of ``sock``; never raises."""
    own = os.getuid() if own_uid is None else own_uid
    try:
        uid = peer_uid(sock)
    except PeerUnknown as exc:
        return PeerDecision(False, str(exc))
    return decide_peer(uid, own)
