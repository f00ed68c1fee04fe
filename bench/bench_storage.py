"""Storage request counts on a real S3 server (moto, on loopback).

What a device pays its storage provider, in requests: pushing one segment and
its head, an idle poll of a whole mesh, and reading one object. Requests are
counted on the server side (a recorder in front of the S3 server), so retries
and any request a client library adds on its own are counted too; the
backend's own counter is reported beside them as a cross-check.

The idle poll is compared with a folder-by-folder walk of the same mesh
(fsspec ``walk``, one delimited listing per folder), the obvious way to poll
a tree of folders, which costs one request per folder.

Run with ``python -m bench.bench_storage``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import fsspec
import trio

# Run from a checkout: the S3 test server lives in tests/s3server.py.
_PROJECT = str(Path(__file__).resolve().parents[1])
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from bench.bench_support import figure  # noqa: E402
from meshd.crypto.suite import DeviceKeys  # noqa: E402
from meshd.sync import layout  # noqa: E402
from meshd.sync.layout import HeadName  # noqa: E402
from meshd.sync.storage import StorageBackend  # noqa: E402
from tests.s3server import S3Server, running_s3_server  # noqa: E402

DEVICES = 5
SEGMENTS_PER_DEVICE = 20
LOG_ENTRIES = 10

# Goals from the sync design: a push of one batch is a segment and a head
# (at most 3 requests leaves room for one check), and polling is one listing.
PUSH_GOAL = 3
POLL_GOAL = 1
READ_GOAL = 1


def _figure(
    name: str, value: int, goal: int, baseline: int | None = None
) -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return figure(name, value, baseline, ratio, f"<= {goal}", value <= goal, "requests")


async def _fill_mesh(backend: StorageBackend) -> list[str]:
    """A mesh of several devices with segments, heads and log entries."""
    devices = [DeviceKeys.generate().device_id for _ in range(DEVICES)]
    for position in range(LOG_ENTRIES):
        data = f"entry {position}".encode()
        await backend.put_immutable(layout.log_entry_name(position, data), data)
    for device_id in devices:
        for seq in range(SEGMENTS_PER_DEVICE):
            data = f"{device_id} ops {seq}".encode()
            await backend.put_immutable(
                layout.segment_name(device_id, seq, seq, data), data
            )
        await backend.put_mutable(HeadName(device_id), b"head")
    return devices


def _total(counts: dict[str, int]) -> int:
    return sum(counts.values())


async def _measure(server: S3Server) -> dict[str, Any]:
    bucket = server.new_bucket("meshd-bench")
    url = f"s3://{bucket}/mesh"
    backend = StorageBackend(url, options=server.options())
    await _fill_mesh(backend)
    device_id = DeviceKeys.generate().device_id
    segment_bytes = b"one batch of ops" * 64
    segment = layout.segment_name(device_id, 1, 16, segment_bytes)

    # Push: one segment and the head that points at it.
    server.log.clear()
    backend.requests.reset()
    await backend.put_immutable(segment, segment_bytes)
    await backend.put_mutable(HeadName(device_id), b"head at 16")
    push = server.log.counts(bucket)
    push_client = backend.requests.total

    # Idle poll: everything under the mesh folder.
    server.log.clear()
    listed = await backend.list()
    poll = server.log.counts(bucket)

    # The folder-by-folder walk of the same tree, for comparison.
    server.log.clear()
    fs = fsspec.filesystem(
        "s3",
        skip_instance_cache=True,
        use_listings_cache=False,
        **_s3fs_options(server),
    )
    walked = sum(len(files) for _, _, files in fs.walk(f"{bucket}/mesh"))
    walk = server.log.counts(bucket)

    # Read one segment with a size limit.
    server.log.clear()
    await backend.get(segment, 1 << 20)
    read = server.log.counts(bucket)

    figures = [
        _figure("push one segment + head: requests", _total(push), PUSH_GOAL),
        _figure(
            "idle poll of the whole mesh: requests",
            _total(poll),
            POLL_GOAL,
            _total(walk),
        ),
        _figure("read one segment: requests", _total(read), READ_GOAL),
    ]
    return {
        "figures": figures,
        "objects_in_mesh": len(listed),
        "objects_walked": walked,
        "push_by_kind": push,
        "push_counted_by_backend": push_client,
        "poll_by_kind": poll,
        "walk_by_kind": walk,
        "read_by_kind": read,
    }


def _s3fs_options(server: S3Server) -> dict[str, Any]:
    options = server.options()
    options["client_kwargs"] = {
        **options["client_kwargs"],
        "endpoint_url": options.pop("endpoint_url"),
    }
    return options


def run() -> dict[str, Any]:
    """Measure request counts against a fresh S3 server on loopback."""
    with running_s3_server() as server:
        return trio.run(_measure, server)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
