"""`make demo`'s fleet end to end: it comes up Ready, the TUI shows all three clusters
Ready from its hub, and the walkthrough's three stories pass."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from fleet.demo import status
from fleet.demo.environment import CLUSTERS, demo_fleet
from fleet.demo.story import Story
from hub.tui.app import FleetApp
from hub.tui.client import HubClient
from hub.tui.feed import HubSource


async def _tui_shows_every_cluster_ready(hub_url: str, token: str) -> dict[str, str]:
    app = FleetApp(HubSource(HubClient(hub_url, token, timeout=5), label="demo"))
    async with app.run_test(size=(120, 40)) as pilot:
        with anyio.fail_after(60):
            while True:
                await pilot.pause(0.2)
                health = {name: c.health for name, c in app.state.clusters.items()}
                if set(health) == set(CLUSTERS) and set(health.values()) == {"Ready"}:
                    return health


@pytest.mark.slow
def test_the_demo_comes_up_and_its_walkthrough_passes(tmp_path: Path) -> None:
    with demo_fleet(tmp_path / "demo", progress=False) as fleet:
        deadline = time.monotonic() + 240
        while True:
            rows = anyio.run(status.unit_rows, fleet.clusters)
            if status.all_ready(rows, CLUSTERS, minimum_units=3):
                break
            for agent in fleet.agents.values():
                agent.check_running()
            assert time.monotonic() < deadline, f"the demo did not become Ready: {rows}"
            time.sleep(1)
        token = fleet.admin_token_file.read_text().strip()
        health = anyio.run(_tui_shows_every_cluster_ready, fleet.hub_url, token)
        assert health == dict.fromkeys(CLUSTERS, "Ready")
        Story(fleet).run()
