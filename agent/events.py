"""Which reconcile results become Kubernetes Events, as Flux's event recorder decides.

Every change of a unit's result is an Event: a new failure reason or message (the real
error, not only the first one), becoming Ready, a new revision applied. A result that
repeats the last one is not recorded again. Per unit, a token bucket (client-go's
event spam filter: a burst of 25, then one per five minutes) keeps a unit that flaps
between two errors from flooding the API server. A source that is not fetched yet is
progress: a ``Normal`` ``Progressing`` Event, never a Warning.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

BURST = 25
REFILL_SECONDS = 300.0

Clock = Callable[[], float]


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated: float
    last: tuple[str, str, str] | None = None


class EventFilter:
    """Decides per unit whether an Event is recorded; pure apart from the clock."""

    def __init__(
        self,
        *,
        burst: int = BURST,
        refill_seconds: float = REFILL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._burst = burst
        self._refill = refill_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, unit: str, type_: str, reason: str, message: str) -> bool:
        """True when this Event should be recorded now (and counts it)."""
        now = self._clock()
        bucket = self._buckets.get(unit)
        if bucket is None:
            bucket = self._buckets[unit] = _Bucket(float(self._burst), now)
        event = (type_, reason, message)
        if bucket.last == event:
            return False
        bucket.tokens = min(
            float(self._burst), bucket.tokens + (now - bucket.updated) / self._refill
        )
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        bucket.last = event
        return True

    def forget(self, unit: str) -> None:
        self._buckets.pop(unit, None)
