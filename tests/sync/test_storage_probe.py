"""The write probe: storage proves it keeps what is written, and is left clean."""

from __future__ import annotations

import secrets

import fsspec

from meshd.sync.storage import PROBE_PREFIX, StorageBackend
from tests.s3server import S3Server


async def test_the_probe_on_s3_writes_reads_and_deletes_only_its_own_object(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="meshes/kept", Body=b"someone's")
    backend = StorageBackend(f"s3://{s3_bucket}/meshes", options=s3_server.options())

    await backend.probe_writes()

    listed = client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["meshes/kept"]
    counts = backend.requests.snapshot()
    assert (counts["PUT"], counts["GET"], counts["DELETE"]) == (1, 1, 1)


async def test_the_probe_on_a_generic_file_system_leaves_nothing_behind() -> None:
    folder = f"/probe-{secrets.token_hex(4)}"
    memory = fsspec.filesystem("memory")
    memory.pipe_file(f"{folder}/kept", b"someone's")

    await StorageBackend(f"memory://{folder}").probe_writes()

    names = [name.rpartition("/")[2] for name in memory.find(folder)]
    assert names == ["kept"]
    assert not any(name.startswith(PROBE_PREFIX) for name in names)
