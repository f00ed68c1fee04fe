"""The daemon's optional TOML configuration.

Example (every key optional)::

    [daemon]
    log_level = "INFO"
    socket = "/run/user/1000/meshd/meshd.sock"

    [rpc]
    max_connections = 64
    line_timeout = 10.0     # seconds to finish a line once started
    stop_grace = 10.0       # seconds requests in progress get at shutdown

    [events]
    ring_size = 1000

    [keystore]
    kdf = "moderate"        # or "minimum": fast, weak, for tests and demos

    [sync]
    interval = 3.0          # seconds between polls of the storage

Command-line options win over the file.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshd.crypto import passphrase
from meshd.errors import InvalidInput
from meshd.events import DEFAULT_RING_SIZE
from meshd.rpc.server import ServerLimits

logger = logging.getLogger(__name__)

KDF_STRENGTHS = {
    "moderate": (passphrase.DEFAULT_OPSLIMIT, passphrase.DEFAULT_MEMLIMIT),
    "minimum": (passphrase.MIN_OPSLIMIT, passphrase.MIN_MEMLIMIT),
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Config:
    """Settings of one daemon."""

    log_level: str = "INFO"
    socket: Path | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)
    ring_size: int = DEFAULT_RING_SIZE
    kdf: str = "moderate"
    sync_interval: float = 3.0

    def kdf_parameters(self) -> passphrase.KdfParameters:
        opslimit, memlimit = KDF_STRENGTHS[self.kdf]
        return passphrase.KdfParameters.fresh(opslimit, memlimit)


def load_config(path: Path, required: bool = False) -> Config:
    """Read a config file; a missing optional file gives the defaults.

    Raises:
        InvalidInput: the file is missing while required, is not TOML, or
            holds a value of the wrong kind.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise InvalidInput(f"No config file at {path}") from None
        return Config()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"Cannot read the config file {path}: {exc}") from exc
    return parse_config(document, path)


def parse_config(document: dict[str, Any], origin: Path) -> Config:
    """Build a Config from a parsed TOML document.

    Raises:
        InvalidInput: a value has the wrong type or is out of range.
    """
    reader = _Reader(document, origin)
    socket = reader.get("daemon", "socket", str, None)
    limits = ServerLimits(
        max_connections=reader.get("rpc", "max_connections", int, 64),
        line_timeout=reader.get("rpc", "line_timeout", float, 10.0),
        stop_grace=reader.get("rpc", "stop_grace", float, 10.0),
    )
    log_level = reader.get("daemon", "log_level", str, "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise InvalidInput(f"{origin}: daemon.log_level must be one of {LOG_LEVELS}")
    strength = reader.get("keystore", "kdf", str, "moderate")
    if strength not in KDF_STRENGTHS:
        raise InvalidInput(
            f"{origin}: keystore.kdf must be one of {sorted(KDF_STRENGTHS)}"
        )
    config = Config(
        log_level=log_level,
        socket=Path(socket).expanduser() if socket else None,
        limits=limits,
        ring_size=reader.get("events", "ring_size", int, DEFAULT_RING_SIZE),
        kdf=strength,
        sync_interval=reader.get("sync", "interval", float, 3.0),
    )

    # A misspelt setting would otherwise do nothing without a word.
    for name in reader.unread():
        logger.warning("Config %s: unknown setting %s is ignored", origin, name)
    return config


class _Reader:
    def __init__(self, document: dict[str, Any], origin: Path) -> None:
        self.document = document
        self.origin = origin
        self.read: set[str] = set()

    def unread(self) -> list[str]:
        """The settings in the document that no :meth:`get` asked for."""
        present = []
        for section, table in self.document.items():
            if isinstance(table, dict):
                present += [f"{section}.{key}" for key in table]
            else:
                present.append(section)
        return sorted(name for name in present if name not in self.read)

    def get(self, section: str, key: str, kind: type[Any], default: Any) -> Any:
        self.read.add(f"{section}.{key}")
        table = self.document.get(section, {})
        if not isinstance(table, dict):
            raise InvalidInput(f"{self.origin}: [{section}] must be a table")
        value = table.get(key, default)
        if value is None:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
            raise InvalidInput(
                f"{self.origin}: {section}.{key} must be a {kind.__name__}"
            )
        if kind in (int, float) and value <= 0:
            raise InvalidInput(f"{self.origin}: {section}.{key} must be positive")
        return value
