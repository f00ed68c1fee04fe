"""The method table: every JSON-RPC method meshd serves, in one place.

Read this block to know the whole API. Each row declares the method's
params (name, JSON types, required or default), a one-line summary and what
the result holds; ``rpc.discover`` turns the rows into an OpenRPC document.
Areas follow the method prefixes: ``rpc``, ``daemon``, ``device``, ``mesh``,
``events``. Areas served by the mesh, replica and sync layers (``mesh.create``,
``enrollment.*``, ``proposal.*``, ``passport.*``, ``sync.*``...) join the
table as rows here, or at run time with ``DeviceService.register``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshd.rpc.methods import Method, optional, required

if TYPE_CHECKING:
    from meshd.daemon import DeviceService


def method_table(service: DeviceService) -> list[Method]:
    """The rows of the table, bound to ``service``'s handlers."""
    return [
        # -- rpc: the API describing itself ------------------------------------
        Method(
            "rpc.discover",
            service.discover,
            summary="The OpenRPC document of this daemon's methods and errors",
            result="an OpenRPC 1.x document generated from this table",
        ),
        # -- daemon: the process itself -------------------------------------------
        Method(
            "daemon.ping",
            service.ping,
            summary="Check that the daemon answers",
            result="{pong: true, version, pid, uptime, locked}",
        ),
        # -- device: this device's keys -------------------------------------------
        Method(
            "device.info",
            service.device_info,
            summary="This device's id and public keys",
            result="{device_id, signing_key, encryption_key} (keys in base64)",
        ),
        Method(
            "device.unlock",
            service.unlock,
            params=(required("passphrase", "string"),),
            summary="Open a passphrase-protected keystore",
            result="{locked: false, device_id}",
        ),
        # -- mesh: the identity this device belongs to ----------------------------
        Method(
            "mesh.status",
            service.mesh_status,
            summary="Who this device is, its mesh and what needs attention",
            result=(
                "{state, did, label, device_id, threshold, devices, warnings, storage}"
            ),
        ),
        # -- events: what happened, with ids to resume from ------------------------
        Method(
            "events.subscribe",
            service.subscribe,
            params=(
                optional(
                    "since",
                    "integer",
                    "null",
                    description="last event id seen; events after it are replayed",
                ),
            ),
            session=True,
            summary=(
                "Stream events as 'event' notifications after this response,"
                " one stream per connection (types: docs/events.md)"
            ),
            result=(
                "{latest, missed}; then notifications {id, type, time, data};"
                " a second subscribe on the connection fails already_subscribed"
            ),
            notifications="event",
        ),
    ]
