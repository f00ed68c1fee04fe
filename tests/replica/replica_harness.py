"""Several devices, each with a real replica in its own SQLite file."""

from __future__ import annotations

import random
from pathlib import Path

from meshd.crypto.suite import DeviceKeys
from meshd.replica import Replica, ReplicaSettings

from .membership_fake import FakeMembership

START = 1_800_000_000.0


class Mesh:
    def __init__(self, directory: Path, count: int, **settings: int) -> None:
        self.keys = [DeviceKeys.generate() for _ in range(count)]
        self.view = FakeMembership(self.keys)
        self.directory = directory
        self.settings = ReplicaSettings(**settings)
        self.replicas = [self.open(index) for index in range(count)]

    def open(self, index: int, view: FakeMembership | None = None) -> Replica:
        return Replica.open(
            self.directory / f"device-{index}.sqlite3",
            self.keys[index],
            view or self.view,
            self.settings,
        )

    def deliver(
        self, source: int, target: int, now: float, rng: random.Random | None = None
    ) -> None:
        """Push what ``target`` lacks from ``source``, shuffled and duplicated."""
        ops = self.replicas[source].ops_since(self.replicas[target].version_vector())
        if rng is not None:
            ops = ops + rng.sample(ops, k=len(ops) // 2)
            rng.shuffle(ops)
        for data in ops:
            self.replicas[target].ingest(data, now)

    def sync_all(self, now: float, rng: random.Random | None = None) -> None:
        for _ in range(2):
            for source in range(len(self.replicas)):
                for target in range(len(self.replicas)):
                    if source != target:
                        self.deliver(source, target, now, rng)

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()
