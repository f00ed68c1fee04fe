"""The event bus: what happened on this device, with increasing ids.

Every event gets the next id. A bounded ring keeps the most recent ones so
a client that reconnects can ask for everything after the last id it saw
(``since``) and miss nothing, as long as it was not away for longer than the
ring holds; the subscribe answer says when it was.

A daemon numbers its events on from the wall clock in microseconds at its
start, so ids keep growing across restarts: a client that resumes with an id
of an earlier run gets every event of the new run, told that it may have
missed some. A ``since`` above the newest id (a clock set back between runs)
also gets the whole ring.

Subscribers each have a bounded queue. One that does not keep up is dropped
(its stream ends) rather than slowing the daemon; it reconnects with
``since`` and catches up from the ring.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import trio

logger = logging.getLogger(__name__)

# A few hours of a busy mesh; each event is a few hundred bytes.
DEFAULT_RING_SIZE = 1000
# Events a subscriber may have waiting before it is dropped.
SUBSCRIBER_QUEUE = 256


@dataclass(frozen=True)
class Event:
    """One event: ``type`` like ``device.unlocked``, ``data`` a JSON object."""

    id: int
    type: str
    time: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time": self.time, "data": self.data}


@dataclass(frozen=True)
class Replay:
    """What a new subscriber gets first: the ring's events after ``since``.

    ``missed`` is true when events after ``since`` have already left the ring.
    """

    events: tuple[Event, ...]
    latest: int
    missed: bool


class Subscription:
    """A live feed of events; iterate it, and close it when done."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._send, self.receive = trio.open_memory_channel[Event](SUBSCRIBER_QUEUE)

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False when this subscriber fell behind."""
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    def close(self) -> None:
        self._bus.unsubscribe(self)
        self._send.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class EventBus:
    """Publishes events to subscribers and keeps the recent ones."""

    def __init__(self, ring_size: int = DEFAULT_RING_SIZE, first_id: int = 1) -> None:
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._subscribers: list[Subscription] = []
        self._first_id = first_id
        self._latest = first_id - 1

    @classmethod
    def numbered_from_clock(cls, ring_size: int = DEFAULT_RING_SIZE) -> EventBus:
        """A bus whose ids start above those of any earlier daemon run."""
        return cls(ring_size, first_id=time.time_ns() // 1000)

    @property
    def latest(self) -> int:
        return self._latest

    def publish(self, type: str, **data: Any) -> Event:
        """Record an event and hand it to every subscriber."""
        self._latest += 1
        event = Event(self._latest, type, math.floor(time.time() * 1000) / 1000, data)
        self._ring.append(event)

        for subscription in list(self._subscribers):
            # TODO: a dropped subscriber's stream just ends, without a last
            # notice saying why; the client must reconnect with since to learn
            # what it missed.
            if not subscription.offer(event):
                logger.warning(
                    "Event subscriber dropped: it fell behind at event %d", event.id
                )
                subscription.close()
        return event

    def subscribe(self, since: int | None) -> tuple[Subscription, Replay]:
        """A live subscription and the ring's events after ``since``.

        Both come from the same instant, so no event is lost or repeated
        between the replay and the live feed.
        """
        subscription = Subscription(self)
        self._subscribers.append(subscription)
        return subscription, self.replay(since)

    def replay(self, since: int | None) -> Replay:
        if since is None:
            return Replay((), self._latest, False)
        if since > self._latest:
            # Ids above the newest come from a run whose clock was ahead:
            # send everything.
            since = 0
        events = tuple(event for event in self._ring if event.id > since)
        oldest = self._ring[0].id if self._ring else self._latest + 1
        # 0 asks for all that is kept: only this run's events that left the
        # ring are missed. Another id from before this run missed the end of
        # that earlier run.
        wanted = self._first_id if since == 0 else since + 1
        return Replay(events, self._latest, wanted < oldest)

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
