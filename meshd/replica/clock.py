"""Hybrid logical clock: wall-clock milliseconds plus a counter.

A timestamp is ``(wall_ms, counter)``. A local event takes the larger of the
last timestamp and the wall clock, bumping the counter when the wall clock
has not moved on. Receiving an accepted remote timestamp moves the clock past
it, so an op made after seeing another op always sorts after it.

The clock is pure: every call takes ``now_ms`` from the caller. It never
reads the system clock, and the replica only lets it observe remote
timestamps that passed the skew bound, so a device whose clock runs ahead
cannot drag every receiver's clock forward with it.
"""

from __future__ import annotations

from dataclasses import dataclass

# The counter travels as a msgpack integer; this bound keeps a misbehaving
# peer from pushing it anywhere near the 64-bit limit.
MAX_COUNTER = (1 << 32) - 1


@dataclass(frozen=True, order=True)
class Timestamp:
    """A point in hybrid logical time; compares by wall time, then counter."""

    wall_ms: int
    counter: int

    def __str__(self) -> str:
        return f"{self.wall_ms}.{self.counter}"


ZERO = Timestamp(0, 0)


def seconds_to_ms(now: float) -> int:
    """Wall-clock seconds (as from ``time.time()``) to whole milliseconds."""
    return int(now * 1000)


class HybridClock:
    """The hybrid logical clock of one device."""

    def __init__(self, last: Timestamp = ZERO) -> None:
        self._last = last

    @property
    def last(self) -> Timestamp:
        """The newest timestamp issued or observed."""
        return self._last

    def tick(self, now_ms: int) -> Timestamp:
        """A timestamp for a local event at wall time ``now_ms``."""
        if now_ms > self._last.wall_ms:
            self._last = Timestamp(now_ms, 0)
        else:
            self._last = Timestamp(self._last.wall_ms, self._bump(self._last.counter))
        return self._last

    def observe(self, remote: Timestamp, now_ms: int) -> Timestamp:
        """Move past an accepted remote timestamp received at ``now_ms``.

        The caller checks the skew bound first: only timestamps it accepted
        may move this clock.
        """
        wall = max(self._last.wall_ms, remote.wall_ms, now_ms)

        # Whichever of the two known timestamps shares the new wall time
        # decides where the counter continues from.
        counters = [
            stamp.counter for stamp in (self._last, remote) if stamp.wall_ms == wall
        ]
        counter = self._bump(max(counters)) if counters else 0
        self._last = Timestamp(wall, counter)
        return self._last

    @staticmethod
    def _bump(counter: int) -> int:
        return min(counter + 1, MAX_COUNTER)
