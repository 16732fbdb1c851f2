"""``hub.limits``: the token bucket and the stream caps, with a clock of our own."""

from __future__ import annotations

from hub.limits import IngestLimiter, StreamSlots, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_gets_its_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = IngestLimiter(per_second=2, burst=3, clock=clock)
    assert [limiter.admit("a") for _ in range(3)] == [None, None, None]
    wait = limiter.admit("a")
    assert wait is not None and abs(wait - 0.5) < 1e-9
    assert limiter.admit("b") is None, "another token has its own bucket"
    clock.now += 0.5
    assert limiter.admit("a") is None
    assert limiter.admit("a") is not None
    clock.now += 60
    assert [limiter.admit("a") for _ in range(4)][:3] == [None, None, None]


def test_refused_requests_do_not_dig_the_hole_deeper() -> None:
    clock = Clock()
    limiter = IngestLimiter(per_second=1, burst=1, clock=clock)
    assert limiter.admit("a") is None
    for _ in range(100):
        assert limiter.admit("a") is not None
    clock.now += 1.0
    assert limiter.admit("a") is None


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"


def test_stream_slots_cap_per_key_and_in_total() -> None:
    slots = StreamSlots(per_key=2, total=3)
    assert slots.take("a") is None and slots.take("a") is None
    refused = slots.take("a")
    assert refused is not None and "per token" in refused
    assert slots.take("b") is None
    total = slots.take("c")
    assert total is not None and "3 streams" in total
    slots.give_back("a")
    assert slots.take("c") is None
    slots.give_back("nobody")
    assert slots.open == 3
