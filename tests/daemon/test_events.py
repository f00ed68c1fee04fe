"""The event bus: increasing ids, resuming with since, a bounded ring."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from meshd.client import EventStream
from meshd.errors import AlreadySubscribed
from meshd.events import EventBus
from tests.daemons import MeshdFactory, MeshdProcess


async def test_subscriber_resumes_after_the_last_id_it_saw() -> None:
    bus = EventBus(ring_size=10)
    for number in range(5):
        bus.publish("test.tick", number=number)

    subscription, replay = bus.subscribe(since=3)
    bus.publish("test.tick", number=5)
    with trio.fail_after(5):
        live = await subscription.__anext__()

    assert [event.id for event in replay.events] == [4, 5]
    assert live.id == 6 and live.data == {"number": 5}
    assert not replay.missed


def test_subscriber_away_too_long_is_told_it_missed_events() -> None:
    bus = EventBus(ring_size=3)
    for _ in range(10):
        bus.publish("test.tick")

    _, replay = bus.subscribe(since=2)

    assert replay.missed
    assert [event.id for event in replay.events] == [8, 9, 10]


def test_since_above_the_newest_id_means_the_daemon_restarted() -> None:
    bus = EventBus()
    bus.publish("daemon.started")

    _, replay = bus.subscribe(since=500)

    assert [event.type for event in replay.events] == ["daemon.started"]


def test_events_stream_over_the_socket_with_increasing_ids(
    meshd_factory: MeshdFactory,
) -> None:
    daemon = meshd_factory.start()

    with daemon.client().subscribe(since=0) as stream:
        first = next(iter(stream))

    assert first["type"] == "daemon.started"
    assert stream.latest >= first["id"] > 0
    assert not stream.missed


def test_a_client_resuming_across_a_restart_gets_the_new_runs_events(
    meshd_factory: MeshdFactory,
) -> None:
    daemon = meshd_factory.start()
    with daemon.client().subscribe(since=0) as stream:
        last_seen = next(iter(stream))["id"]
    assert daemon.stop() == 0

    again = meshd_factory.start(daemon.home)
    with again.client().subscribe(since=last_seen) as stream:
        first = next(iter(stream))

    assert first["type"] == "daemon.started"
    assert first["id"] > last_seen
    assert stream.missed


def test_a_second_subscribe_on_one_connection_is_refused_and_events_come_once(
    meshd: MeshdProcess, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()

    with meshd.client() as client:
        answer = client.call("events.subscribe")
        with pytest.raises(AlreadySubscribed):
            client.call("events.subscribe", since=0)
        meshd.call("mesh.create", label="alice", storage=str(storage))
        # A second event after the first, so a copy of the first would show.
        meshd.call("device.rotate_key")
        seen = []
        for event in EventStream(client, answer):
            seen.append(event)
            if event["type"] == "device.key_rotated":
                break

    ids = [event["id"] for event in seen]
    assert ids == sorted(set(ids))
    assert [event["type"] for event in seen].count("mesh.created") == 1
