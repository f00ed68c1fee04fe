from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.replica.clock import HybridClock, Timestamp


def test_local_events_are_strictly_increasing_even_when_the_wall_clock_stalls() -> None:
    clock = HybridClock()
    stamps = [clock.tick(1000) for _ in range(3)]
    assert stamps == [Timestamp(1000, 0), Timestamp(1000, 1), Timestamp(1000, 2)]


def test_wall_clock_going_backwards_does_not_move_time_backwards() -> None:
    clock = HybridClock()
    first = clock.tick(5000)
    assert clock.tick(4000) > first


def test_an_op_made_after_seeing_a_remote_op_sorts_after_it() -> None:
    clock = HybridClock()
    clock.tick(1000)
    remote = Timestamp(2500, 7)
    clock.observe(remote, now_ms=1200)
    assert clock.tick(1300) > remote


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 10_000), st.integers(0, 10_000)),
        max_size=40,
    )
)
def test_hybrid_time_never_goes_backwards(events: list[tuple[bool, int, int]]) -> None:
    clock = HybridClock()
    previous = clock.last
    for is_remote, now_ms, remote_wall in events:
        if is_remote:
            stamp = clock.observe(Timestamp(remote_wall, 3), now_ms)
            assert stamp > Timestamp(remote_wall, 3)
        else:
            stamp = clock.tick(now_ms)
        assert stamp > previous
        assert stamp.wall_ms >= now_ms
        previous = stamp
