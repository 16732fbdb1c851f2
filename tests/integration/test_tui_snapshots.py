"""Snapshot tests of the TUI's screens at 120x40, against a real hub seeded through its API.

Deterministic by construction: report and event times are fixed relative to ``t0``,
the app's clock is ``t0 + 5m30s``, the hub is named ``hub.test`` (not its random port),
and each screenshot waits for its data to be on screen. Update the SVGs after an
intended change with ``pytest tests/integration/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from hub.tui.app import FleetApp
from hub.tui.screens.cluster import ClusterScreen
from hub.tui.screens.pipeline import PipelineScreen
from tests.hubserver import RunningHub, running_hub
from tests.integration.tuikit import Fleet, hub_config, tui_app, until

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


def test_pipeline_snapshot(fleet: Fleet, snap_compare: SnapCompare) -> None:
    async def pipeline(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("w")
        await until(
            pilot,
            lambda: isinstance(pilot.app.screen, PipelineScreen) and pilot.app.screen.shown,
            "the pipeline",
        )

    assert snap_compare(app_for(fleet.hub, fleet), terminal_size=SIZE, run_before=pipeline)


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
