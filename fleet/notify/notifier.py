"""``Notifier``: deliveries in the background, never on the caller's path.

``submit`` returns at once. Each target has its own bounded queue and worker, so a hung
receiver delays only its own messages; a full queue drops the new delivery. The same event
(``Delivery.key``) to the same target within ``dedupe_seconds`` is dropped, as Flux's event
server rate-limits duplicates (five minutes there). Every delivery ends in one ``Outcome``,
reported to ``on_outcome`` and counted in ``counts``; the last failure per target is kept for
a Provider's status.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from fleet.notify.delivery import DEFAULT_RETRY, Delivery, RetryPolicy, Sleep, deliver
from fleet.notify.errors import DeliveryFailed
from fleet.notify.transport import HttpTransport, Transport

log = logging.getLogger(__name__)

DEFAULT_DEDUPE_SECONDS = 300.0
"""notification-controller's ``--rate-limit-interval`` default."""
QUEUE_SIZE = 100


class Outcome(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    """Nothing to send (the event does not apply) or the status was already set."""
    DUPLICATE = "duplicate"
    DROPPED = "dropped"
    """The target's queue was full, or the notifier was not running."""
    FAILED = "failed"


OutcomeHook = Callable[[str, Outcome, str], None]
"""Called with (target, outcome, detail) once per submitted delivery."""


@dataclass(frozen=True)
class Failure:
    message: str
    at: float


class Notifier:
    def __init__(
        self,
        *,
        transport: Transport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        queue_size: int = QUEUE_SIZE,
        on_outcome: OutcomeHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self._transport = transport or HttpTransport()
        self._owns_transport = transport is None
        self._retry = retry
        self._dedupe_seconds = dedupe_seconds
        self._queue_size = queue_size
        self._on_outcome = on_outcome
        self._clock = clock
        self._sleep = sleep
        self._group: anyio.abc.TaskGroup | None = None
        self._queues: dict[str, MemoryObjectSendStream[Delivery]] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self.counts: collections.Counter[tuple[str, Outcome]] = collections.Counter()
        """(target, outcome) -> deliveries, for tests and metrics."""
        self.failures: dict[str, Failure] = {}
        """The last failure per target, cleared by its next success."""

    @property
    def running(self) -> bool:
        return self._group is not None

    def submit(self, delivery: Delivery) -> bool:
        """Queue ``delivery``; False when it was dropped (duplicate, full queue, not
        running). Never waits."""
        target = delivery.target
        if not delivery.requests:
            self._report(target, Outcome.SKIPPED, "nothing to send")
            return False
        if self._group is None:
            self._report(target, Outcome.DROPPED, "the notifier is not running")
            return False
        now = self._clock()
        if delivery.key and self._dedupe_seconds > 0:
            self._forget_before(now)
            seen = self._seen.get((target, delivery.key))
            if seen is not None and now - seen < self._dedupe_seconds:
                self._report(target, Outcome.DUPLICATE, "same event within the window")
                return False
        try:
            self._queue(target).send_nowait(delivery)
        except anyio.WouldBlock:
            self._report(target, Outcome.DROPPED, "queue full")
            return False
        if delivery.key:
            self._seen[(target, delivery.key)] = now
        return True

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver until cancelled; ``submit`` drops everything while this is not running."""
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._group = None
            queues, self._queues = self._queues, {}
            for queue in queues.values():
                queue.close()
            if self._owns_transport:
                with anyio.CancelScope(shield=True):
                    await self._transport.aclose()

    def _queue(self, target: str) -> MemoryObjectSendStream[Delivery]:
        queue = self._queues.get(target)
        if queue is None:
            assert self._group is not None
            queue, receive = anyio.create_memory_object_stream[Delivery](self._queue_size)
            self._queues[target] = queue
            self._group.start_soon(self._work, target, receive, name=f"notify-{target}")
        return queue

    async def _work(self, target: str, receive: MemoryObjectReceiveStream[Delivery]) -> None:
        async with receive:
            async for delivery in receive:
                try:
                    done = await deliver(delivery, self._transport, self._retry, self._sleep)
                except DeliveryFailed as error:
                    log.warning("notification to %s failed: %s", target, error)
                    self.failures[target] = Failure(str(error), self._clock())
                    self._report(target, Outcome.FAILED, str(error))
                else:
                    self.failures.pop(target, None)
                    if done.stopped_early:
                        self._report(target, Outcome.SKIPPED, "already set")
                    else:
                        self._report(target, Outcome.SENT, f"{done.attempts} attempt(s)")

    def _report(self, target: str, outcome: Outcome, detail: str) -> None:
        self.counts[(target, outcome)] += 1
        if self._on_outcome is not None:
            self._on_outcome(target, outcome, detail)

    def _forget_before(self, now: float) -> None:
        if len(self._seen) < 4096:
            return
        for key, seen in list(self._seen.items()):
            if now - seen >= self._dedupe_seconds:
                del self._seen[key]
