"""A deduplicating work queue with delayed adds, in the manner of client-go's.

A key is never handed to two workers at once; a key added while it is being processed
is processed again afterwards. A delayed add is dropped when the key is already queued
sooner.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import anyio

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._counter = itertools.count()
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        return len(self._ready)

    def add(self, key: K) -> None:
        """Queue ``key`` now (or again after the worker holding it finishes)."""
        self._due.pop(key, None)
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._wake()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds, unless it is already due sooner."""
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        if key in self._queued or self._due.get(key, math.inf) <= due:
            return
        self._due[key] = due
        heapq.heappush(self._delayed, (due, next(self._counter), key))
        self._wake()

    def upcoming(self, limit: int) -> list[K]:
        """The next keys a worker will get (due now), without taking them."""
        return list(itertools.islice(self._ready, limit))

    def due_in(self, key: K) -> float | None:
        """Seconds until ``key`` is next due, None when it is not scheduled."""
        if key in self._queued:
            return 0.0
        due = self._due.get(key)
        return None if due is None else max(0.0, due - time.monotonic())

    def _wake(self) -> None:
        self._wakeup.set()

    def _promote_due(self) -> float:
        """Move due delayed keys to the ready queue; returns seconds to the next one."""
        now = time.monotonic()
        while self._delayed:
            due, _, key = self._delayed[0]
            if self._due.get(key) != due:
                heapq.heappop(self._delayed)  # superseded by a sooner add
                continue
            if due > now:
                return due - now
            heapq.heappop(self._delayed)
            self.add(key)
        return math.inf

    async def get(self) -> K:
        """Wait for the next key; the caller must call ``done(key)`` afterwards."""
        while True:
            wait = self._promote_due()
            if self._ready:
                key = self._ready.popleft()
                self._queued.discard(key)
                self._processing.add(key)
                return key
            # One event for all waiting workers, replaced only once it has fired: a new
            # event per waiter would leave every worker but the last one asleep.
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            with anyio.move_on_after(wait):
                await self._wakeup.wait()

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
