"""Which target gets an alert (``matches``) and whether it goes out now (``NotificationGate``).

Pure code, with time passed in. The gate keeps, per target, when each distinct alert was
last sent (dedupe) and the send times per (cluster, unit, reason) within the rate window
(rate limit); what it holds back is counted and reported with the next alert of that key.
State is per hub process: with several replicas each limits what it sends itself.
"""

from __future__ import annotations

import collections
import fnmatch
from enum import StrEnum

from hub.config import SEVERITY_RANK, NotificationTarget
from hub.notify.alerts import Alert


class Verdict(StrEnum):
    SEND = "send"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"


def matches(target: NotificationTarget, alert: Alert) -> bool:
    """The target's filters: severity floor, cluster globs, labels, reasons."""
    if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[target.severity]:
        return False
    if target.clusters and not any(fnmatch.fnmatchcase(alert.cluster, g) for g in target.clusters):
        return False
    if any(alert.labels.get(key) != value for key, value in target.labels.items()):
        return False
    if target.reasons and alert.reason not in target.reasons:
        return False
    return alert.reason not in target.exclude_reasons


class NotificationGate:
    """Dedupe and per-key rate limit for one target."""

    def __init__(self, dedupe_seconds: float, rate_count: int, rate_seconds: float) -> None:
        self.dedupe_seconds = dedupe_seconds
        self.rate_count = rate_count
        self.rate_seconds = rate_seconds
        self._last_sent: dict[tuple[str, str, str, str], float] = {}
        self._sent_times: dict[tuple[str, str, str], collections.deque[float]] = {}
        self._held_back: collections.Counter[tuple[str, str, str]] = collections.Counter()

    @classmethod
    def for_target(cls, target: NotificationTarget) -> NotificationGate:
        return cls(
            target.dedupe_window.total_seconds(),
            target.rate_limit.count,
            target.rate_limit.per.total_seconds(),
        )

    def admit(self, alert: Alert, now: float) -> tuple[Verdict, int]:
        """The verdict, and on SEND how many alerts of this key were held back before it."""
        self._forget_before(now)
        identity = (alert.cluster, alert.unit, alert.reason, alert.message)
        key = identity[:3]
        last = self._last_sent.get(identity)
        if last is not None and now - last < self.dedupe_seconds:
            return Verdict.DUPLICATE, 0
        times = self._sent_times.setdefault(key, collections.deque())
        while times and now - times[0] >= self.rate_seconds:
            times.popleft()
        if len(times) >= self.rate_count:
            self._held_back[key] += 1
            return Verdict.RATE_LIMITED, 0
        times.append(now)
        self._last_sent[identity] = now
        return Verdict.SEND, self._held_back.pop(key, 0)

    def _forget_before(self, now: float) -> None:
        """Drop state older than both windows, so memory stays bounded by recent traffic."""
        horizon = max(self.dedupe_seconds, self.rate_seconds)
        if len(self._last_sent) < 1024:
            return
        for identity, sent in list(self._last_sent.items()):
            if now - sent >= horizon:
                del self._last_sent[identity]
        for key, times in list(self._sent_times.items()):
            if not times or now - times[-1] >= horizon:
                del self._sent_times[key]
