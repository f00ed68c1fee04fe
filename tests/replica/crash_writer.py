"""Child process of the crash test: ingest ops into a real store and print the
id of each op as soon as its transaction has committed."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from meshd.crypto.suite import DeviceKeys
from meshd.replica import Replica

NOW = 1_800_000_100.0


def main() -> None:
    fixture, store = Path(sys.argv[1]), Path(sys.argv[2])
    seed, secret, view, ops = pickle.loads(fixture.read_bytes())
    replica = Replica.open(store, DeviceKeys(seed, secret), view)
    print("ready", flush=True)
    for data in ops:
        decision = replica.ingest(data, NOW)
        print(decision.verdict.value, decision.op_id, flush=True)


if __name__ == "__main__":
    main()
