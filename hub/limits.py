"""What one token may cost the hub: ingest rate and open streams.

A cluster token is not trusted: a compromised agent may send reports as fast as it can
or open streams until the hub runs out of sockets. ``IngestLimiter`` is a token bucket
per hub token (refused requests cost nothing but the refusal: 429 with ``Retry-After``);
``StreamSlots`` caps the streams open per token and in total. Both are per hub process,
as every replica has its own CPU and sockets to protect. Pure code, given a clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED_TOKENS = 100_000
"""Buckets kept at most; full ones are the first dropped (they carry no debt)."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class IngestLimiter:
    """At most ``burst`` requests at once, refilled at ``per_second``, per key."""

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str) -> float | None:
        """None when the request may go ahead (and is counted); else seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_TOKENS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second
        )
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.per_second

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.per_second >= self.burst
        ]
        for key in full or list(self._buckets):
            del self._buckets[key]


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


class StreamSlots:
    """Counts open streams per key and in total; ``take`` refuses beyond the caps."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    @property
    def open(self) -> int:
        return self._count

    def take(self, key: str) -> str | None:
        """None if a slot was taken (give it back with ``give_back``); else why not."""
        if self._count >= self.total:
            return f"the hub serves its limit of {self.total} streams; retry later"
        held = self._open.get(key, 0)
        if held >= self.per_key:
            return f"this token already holds {held} streams, the limit per token"
        self._open[key] = held + 1
        self._count += 1
        return None

    def give_back(self, key: str) -> None:
        held = self._open.get(key, 0)
        if held <= 0:
            return
        self._count -= 1
        if held == 1:
            del self._open[key]
        else:
            self._open[key] = held - 1
