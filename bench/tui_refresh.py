"""How long the TUI's overview takes to take in a 1,000-cluster fleet, headless.

The updates go through the app's own path: a source's ``updates()`` iterator (here fed
from a queue instead of the hub's socket), the feed worker, ``FleetApp.apply_update``,
the per-turn flush and ``ClusterTable.apply`` (``update_cell`` on changed cells only).
Measured, each as the median of ``--repeat`` runs at 120x40:

1. initial load: one ``Resync`` of N clusters until every row is in the table, and until
   the next frame is painted (the app idle again);
2. full update: N ``ClusterChanged`` (every cluster changes health, revision, units and
   drift, as after a fleet-wide promotion) queued at once, until every row shows it;
3. single update: one ``ClusterChanged`` until its row shows it and the frame is painted,
   one at a time (what a steady stream costs per event);
4. a user's actions on the full table: cursor down (until painted), a new filter (rebuild).

Run: ``.venv/bin/python -m bench.tui_refresh [--clusters 1000]``; writes
bench/results/tui_refresh.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import textual
from textual.pilot import Pilot

from fleet.report import ClusterSummary, HubCommand
from hub import api
from hub.tui.app import FleetApp
from hub.tui.client import PromotionRecord, Promotions
from hub.tui.feed import ClusterChanged, Connection, Resync, Update
from hub.tui.widgets.cluster_table import ClusterTable

RESULTS = Path(__file__).parent / "results" / "tui_refresh.md"
NOTES = """\
Reading the figures: "painted" waits for the app to be idle again, which includes one
frame and, for new rows, Textual's DataTable measuring every new cell on idle (it does
so even for fixed-width columns); with 10 clusters the same steps take about 50 ms, the
cost of a frame and of the pilot's wait itself. A full update touches only the cells that
changed (``update_cell``); the cursor and scroll position stay. Filtering and sorting
rebuild the rows (a user's request, not an update). Only the visible rows (about 35 at
120x40) are rendered per frame, so a steady stream costs the same per event whatever
the fleet's size."""
NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
WAVES = (("dev", 0.1), ("staging", 0.3), ("prod", 0.6))


def fleet(count: int, generation: int) -> list[ClusterSummary]:
    """``count`` clusters over three waves; each generation changes every row."""
    sha = f"{generation:02x}" * 20
    clusters = []
    start = 0
    for wave, share in WAVES:
        size = round(count * share) if wave != "prod" else count - start
        for index in range(size):
            failing = (index + generation) % 17 == 0
            clusters.append(
                ClusterSummary(
                    name=f"{wave}-{index:04d}",
                    health="Degraded" if failing else "Ready",
                    labels={"env": wave, "region": f"r{index % 4}"},
                    revision=f"main@sha1:{sha}",
                    units_ready=4 if failing else 5,
                    units_total=5,
                    drift24h=generation % 3,
                    last_report_at=NOW - datetime.timedelta(seconds=30 + generation),
                    agent_version="0.1.0",
                )
            )
        start += size
    return clusters


class QueueSource:
    """A source whose updates come from a queue: the stream without the socket."""

    read_only = True
    label = "bench"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Update] = asyncio.Queue()

    async def updates(self) -> AsyncIterator[Update]:
        yield Connection("connected", "bench")
        while True:
            yield await self.queue.get()

    async def cluster(self, name: str) -> api.ClusterDetail:
        raise NotImplementedError

    async def events(self, cluster: str | None, limit: int) -> list[api.EventRecord]:
        return []

    async def promotions(self) -> Promotions:
        return Promotions()

    async def promotion_history(self, wave: str) -> list[PromotionRecord]:
        return []

    async def reconcile(self, cluster: str, unit: str | None) -> HubCommand:
        raise NotImplementedError

    async def approve(self, wave: str, revision: str) -> None: ...
    async def pause(self, wave: str) -> None: ...
    async def resume(self, wave: str) -> None: ...
    async def rollback(self, wave: str, to: str) -> None: ...
    async def aclose(self) -> None: ...


async def _until(pilot: Pilot[None], check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0)
    del pilot


def _shows(table: ClusterTable, name: str, drift: str) -> Callable[[], bool]:
    return lambda: str(table.get_cell(name, "drift")) == drift


async def _timed(action: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def run_once(count: int) -> dict[str, float]:
    source = QueueSource()
    app = FleetApp(source, clock=lambda: NOW)
    results: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(ClusterTable)
        first = fleet(count, 1)
        started = time.perf_counter()
        source.queue.put_nowait(Resync(first))
        await _until(pilot, lambda: table.row_count == count)
        results["initial load: rows in table"] = time.perf_counter() - started
        await pilot.pause()
        results["initial load: painted"] = time.perf_counter() - started

        table.focus()
        second = fleet(count, 2)
        last = second[-1]
        expected = str(table.get_cell(last.name, "drift"))
        started = time.perf_counter()
        for cluster in second:
            source.queue.put_nowait(ClusterChanged(cluster))
        await _until(pilot, lambda: str(table.get_cell(last.name, "drift")) != expected)
        results["full update: rows updated"] = time.perf_counter() - started
        await pilot.pause()
        results["full update: painted"] = time.perf_counter() - started

        singles = []
        for generation in range(3, 23):
            cluster = fleet(count, generation)[count // 2]
            want = str(generation % 3)
            started = time.perf_counter()
            source.queue.put_nowait(ClusterChanged(cluster))
            await _until(pilot, _shows(table, cluster.name, want))
            await pilot.pause()
            singles.append(time.perf_counter() - started)
        results["single update: applied and painted (median of 20)"] = statistics.median(singles)

        results["cursor down: painted"] = await _timed(lambda: pilot.press("down"))
        results["filter 'prod r1': rebuilt"] = await _timed(lambda: _filter(pilot, "prod r1"))
        results["filter cleared: rebuilt"] = await _timed(lambda: _filter(pilot, ""))
        assert table.row_count == count
    return results


async def _filter(pilot: Pilot[None], text: str) -> None:
    screen = pilot.app.screen
    table = screen.query_one(ClusterTable)
    table.filter_text = text
    table.rebuild(NOW)
    await pilot.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table goes")
    args = parser.parse_args(argv)
    runs = [asyncio.run(run_once(args.clusters)) for _ in range(args.repeat)]
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    lines = [
        "# TUI refresh: the overview with a large fleet",
        "",
        (__doc__ or "").split("\n\n", 1)[1].replace("Run: ", "Run: ").strip(),
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}, Textual {textual.__version__}; "
        f"{args.clusters} clusters, median of {args.repeat} runs.",
        "",
        "| step | ms |",
        "| --- | ---: |",
        *(f"| {key} | {value * 1000:.1f} |" for key, value in medians.items()),
        "",
        NOTES,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
