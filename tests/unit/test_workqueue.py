from __future__ import annotations

import anyio
import pytest

from agent.workqueue import WorkQueue

pytestmark = pytest.mark.anyio


async def test_keys_are_deduplicated_and_fifo() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c"):
        queue.add(key)
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    assert len(queue) == 0
    queue.done(key)
    assert await queue.get() == "a"


async def test_delayed_add_fires_after_the_delay_and_sooner_wins() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("slow", 5)
    queue.add_after("slow", 0.05)
    with anyio.fail_after(1):
        assert await queue.get() == "slow"


async def test_delayed_add_is_dropped_when_already_queued() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add_after("a", 0.01)
    assert await queue.get() == "a"
    queue.done("a")
    with anyio.move_on_after(0.1) as scope:
        await queue.get()
    assert scope.cancelled_caught
