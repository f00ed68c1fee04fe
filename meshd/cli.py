"""The ``meshd`` command: run the daemon in the foreground.

    meshd run [--home DIR] [--config FILE] [--socket PATH] [--log-level L]
              [--passphrase-file FILE]

The keystore passphrase comes from ``--passphrase-file`` (first line) or the
``MESHD_PASSPHRASE`` environment variable. On the first start in an empty
home it protects the new keystore; later it unlocks it at start. Without
one, a protected keystore leaves the daemon running but locked until
``meshctl unlock``. Exit status: 0 after a clean stop, 1 when the daemon
cannot start, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from meshd.config import LOG_LEVELS, Config, load_config
from meshd.daemon import Daemon, DaemonStartError, read_passphrase_file
from meshd.errors import MeshError
from meshd.paths import resolve_paths
from meshd.rpc.listener import SocketUnavailable

logger = logging.getLogger("meshd")

PASSPHRASE_VARIABLE = "MESHD_PASSPHRASE"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshd", description="The meshd device daemon"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--home", type=Path, help="keep all state and the socket in DIR")
    run.add_argument("--config", type=Path, help="TOML config file")
    run.add_argument("--socket", type=Path, help="listen on this socket path")
    run.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        help="log level (default INFO, or the config's)",
    )
    run.add_argument(
        "--passphrase-file",
        type=Path,
        help=f"keystore passphrase in a file (or set {PASSPHRASE_VARIABLE})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    try:
        return _run(arguments)
    except (DaemonStartError, SocketUnavailable, MeshError) as exc:
        logger.error("Daemon not started: %s", exc)
        return 1


def _run(arguments: argparse.Namespace) -> int:
    paths = resolve_paths(arguments.home, arguments.socket, arguments.config)
    config = load_config(paths.config, required=arguments.config is not None)
    logging.getLogger().setLevel(arguments.log_level or config.log_level)
    if arguments.socket is None and arguments.home is None and config.socket:
        paths = resolve_paths(None, config.socket, paths.config)

    passphrase = _passphrase(arguments)
    trio.run(Daemon(paths, config, passphrase).run)
    return 0


def _passphrase(arguments: argparse.Namespace) -> str | None:
    if arguments.passphrase_file is not None:
        return read_passphrase_file(arguments.passphrase_file)
    value = os.environ.pop(PASSPHRASE_VARIABLE, None)
    return value or None


__all__ = ["Config", "main"]

if __name__ == "__main__":
    sys.exit(main())
