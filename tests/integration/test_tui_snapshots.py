"""Snapshot tests of the TUI's screens at 120x40, against a real hub seeded through its API.

Deterministic by construction: report and event times are fixed relative to ``t0``,
the app's clock is ``t0 + 5m30s``, the hub is named ``hub.test`` (not its random port),
commits of the fleet repository have a fixed date (so a fixed SHA), and each screenshot
waits for its data to be on screen. Update the SVGs after an
intended change with ``pytest tests/integration/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from textual.pilot import Pilot

from hub.tui.app import FleetApp
from hub.tui.screens.cluster import ClusterScreen
from hub.tui.screens.pipeline import PipelineScreen
from tests.hubserver import RunningHub, running_hub
from tests.integration.tuikit import Fleet, hub_config, promoting_hub, tui_app, until

pytestmark = pytest.mark.timeout(120)
SIZE = (120, 40)
SnapCompare = Callable[..., bool]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with running_hub(hub_config(tmp_path)) as hub:
        seeded = Fleet(hub)
        seeded.seed()
        yield seeded


def app_for(hub: RunningHub, fleet: Fleet) -> FleetApp:
    return tui_app(hub, fleet.clock())


async def loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, FleetApp)
    await until(pilot, lambda: app.loaded and app.promotions_read > 0, "the first load")


def test_overview_snapshot(fleet: Fleet, snap_compare: SnapCompare) -> None:
    assert snap_compare(app_for(fleet.hub, fleet), terminal_size=SIZE, run_before=loaded)


def test_pipeline_snapshot(tmp_path: Path, snap_compare: SnapCompare) -> None:
    with promoting_hub(tmp_path) as promoting:
        first = anyio.run(promoting.to_approval)

        def settled(app: FleetApp) -> bool:
            waves = app.state.promotions or []
            return [(w.action, w.last_good) for w in waves] == [
                ("settled", first),
                ("settled", first),
                ("wait", None),
            ] and waves[2].reason.startswith("approval pending")

        async def pipeline(pilot: Pilot[Any]) -> None:
            app = pilot.app
            assert isinstance(app, FleetApp)
            await until(pilot, lambda: app.loaded and settled(app), "prod waiting", timeout=30)
            await pilot.press("w")
            await until(
                pilot,
                lambda: isinstance(app.screen, PipelineScreen) and app.screen.shown,
                "the pipeline",
            )

        app = tui_app(promoting.fleet.hub, promoting.fleet.clock())
        assert snap_compare(app, terminal_size=SIZE, run_before=pipeline)


def test_cluster_detail_snapshot(fleet: Fleet, snap_compare: SnapCompare) -> None:
    async def detail(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("down", "down", "down", "enter")
        await until(
            pilot,
            lambda: isinstance(pilot.app.screen, ClusterScreen) and pilot.app.screen.loaded,
            "the cluster screen",
        )

    assert snap_compare(app_for(fleet.hub, fleet), terminal_size=SIZE, run_before=detail)
