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


async def test_every_idle_worker_wakes_for_new_keys() -> None:
    """Workers waiting together all take work when keys arrive (a wake-up per waiter was
    once lost, leaving one worker of many busy)."""
    queue: WorkQueue[int] = WorkQueue()
    busy = 0
    most_busy = 0
    release = anyio.Event()

    async def worker() -> None:
        nonlocal busy, most_busy
        while True:
            key = await queue.get()
            busy += 1
            most_busy = max(most_busy, busy)
            await release.wait()
            busy -= 1
            queue.done(key)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for _ in range(8):
                tasks.start_soon(worker)
            await anyio.sleep(0.01)  # all eight wait for work
            for key in range(20):
                queue.add(key)
            while most_busy < 8:
                await anyio.sleep(0.01)
            release.set()
            tasks.cancel_scope.cancel()
    assert most_busy == 8


async def test_upcoming_shows_the_next_keys_without_taking_them() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "c"):
        queue.add(key)
    assert queue.upcoming(2) == ["a", "b"]
    assert await queue.get() == "a"
    assert queue.upcoming(5) == ["b", "c"]
