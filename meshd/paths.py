"""Where a device keeps its state and its socket.

With a home folder (``--home DIR`` or ``MESHD_HOME``) everything lives in
it: the keystore, the store, the config, the lock file and the socket
``DIR/meshd.sock``; several daemons can then run side by side. Without one,
the platform's usual places are used (platformdirs): the user data folder
for state and the user runtime folder for the socket (on Linux
``$XDG_RUNTIME_DIR/meshd/meshd.sock``, which the systemd socket unit also
uses).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "meshd"
SOCKET_NAME = "meshd.sock"
LOCK_NAME = "meshd.lock"
CONFIG_NAME = "meshd.toml"
HOME_VARIABLE = "MESHD_HOME"


@dataclass(frozen=True)
class Paths:
    """The places one daemon uses."""

    state: Path
    socket: Path
    config: Path

    @property
    def lock(self) -> Path:
        return self.state / LOCK_NAME


def resolve_paths(
    home: Path | None = None,
    socket: Path | None = None,
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Paths:
    """The daemon's paths from the command line, the environment or defaults."""
    environ = os.environ if environ is None else environ
    if home is None and environ.get(HOME_VARIABLE):
        home = Path(environ[HOME_VARIABLE])

    if home is not None:
        home = home.expanduser().absolute()
        return Paths(
            state=home,
            socket=socket or home / SOCKET_NAME,
            config=config or home / CONFIG_NAME,
        )
    return Paths(
        state=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        socket=socket or default_socket(),
        config=config
        or Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_NAME,
    )


def default_socket() -> Path:
    """The socket path when no home is given."""
    runtime = platformdirs.user_runtime_dir(APP_NAME, appauthor=False)
    return Path(runtime) / SOCKET_NAME


def client_socket(
    home: Path | None = None,
    socket: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The socket a client should connect to, by the same rules as the daemon."""
    return resolve_paths(home, socket, environ=environ).socket
