"""The source poller: fetches each followed Git source on its interval or when woken (a
webhook, ``reconcile --with-source``), and tells its listener when a revision moved or
a fetch failed. It knows nothing of units: the loop maps a source to its units."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.abc

from agent.metrics import AgentMetrics
from agent.sources import Sources
from fleet.models import NamespacedName

OnFetched = Callable[[NamespacedName], None]
OnResult = Callable[[NamespacedName], None]


class SourcePoller:
    def __init__(
        self,
        sources: Sources,
        metrics: AgentMetrics,
        on_fetched: OnFetched,
        on_result: OnResult = lambda key: None,
    ) -> None:
        self.sources = sources
        self.metrics = metrics
        self.on_fetched = on_fetched
        """Called with a source's key after a fetch that moved its revision or failed."""
        self.on_result = on_result
        """Called with a source's key after every fetch (its status may have changed)."""
        self._wakeups: dict[NamespacedName, anyio.Event] = {}
        self._polled: set[NamespacedName] = set()
        self._tasks: anyio.abc.TaskGroup | None = None

    def attach(self, tasks: anyio.abc.TaskGroup) -> None:
        """Poll in ``tasks`` (the agent's task group)."""
        self._tasks = tasks

    def poll(self, key: NamespacedName) -> None:
        """Start polling a tracked source, once."""
        if key in self._polled:
            return
        self._polled.add(key)
        assert self._tasks is not None
        self._tasks.start_soon(self._poll, key)

    def wake(self, key: NamespacedName | None = None) -> None:
        """Fetch a source (or every polled one) now instead of at its next interval."""
        for source in [key] if key is not None else list(self._polled):
            event = self._wakeups.get(source)
            if event is not None:
                event.set()

    async def _poll(self, key: NamespacedName) -> None:
        while (tracked := self.sources.get(key)) is not None:
            await self.fetch(key)
            wakeup = self._wakeups[key] = anyio.Event()
            with anyio.move_on_after(tracked.interval):
                await wakeup.wait()
        self._polled.discard(key)

    async def fetch(self, key: NamespacedName) -> None:
        """Fetch a source now; tell the listener when the revision moved or it failed."""
        started = time.monotonic()
        result = await self.sources.fetch(key)
        label = str(key)
        self.metrics.fetch_duration.labels(label).observe(time.monotonic() - started)
        if result is None:
            self.metrics.fetch_errors.labels(label).inc()
        self.on_result(key)
        if result is None or result.changed:
            self.on_fetched(key)
