"""``fleet tui`` against a real hub on SQLite, seeded through the hub's HTTP API."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from agent.reporters import GitStatusReporter
from fleet import sse
from fleet.localkube.gitserver import git_daemon
from hub.tui import view
from hub.tui.app import FleetApp
from hub.tui.client import HubClient
from hub.tui.feed import HubSource, StatusBranchSource
from hub.tui.screens.cluster import ClusterScreen
from hub.tui.screens.confirm import ConfirmDialog
from hub.tui.screens.events import EventsScreen
from hub.tui.screens.pipeline import PipelineScreen
from hub.tui.widgets.cluster_table import ClusterTable
from hub.tui.widgets.event_table import EventTable
from hub.tui.widgets.keyed_table import KeyedTable
from hub.tui.widgets.summary_bar import SummaryBar
from hub.tui.widgets.wave_card import WaveCard
from tests.gitservers import served_repo
from tests.hubserver import RunningHub, create_token, revoke_tokens, running_hub
from tests.integration.tuikit import (
    FLEET,
    NEW,
    OLD,
    Fleet,
    cluster_report,
    hub_config,
    promoting_hub,
    tui_app,
    until,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.anyio]
SIZE = (120, 40)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningHub]:
    with running_hub(hub_config(tmp_path)) as running:
        yield running


@pytest.fixture
def fleet(hub: RunningHub) -> Fleet:
    seeded = Fleet(hub)
    seeded.seed()
    return seeded


def table(app: FleetApp) -> ClusterTable:
    return app.screen.query_one(ClusterTable)


def cell(app: FleetApp, cluster: str, column: str) -> str:
    return str(table(app).get_cell(cluster, column))


def rows(app: FleetApp) -> list[str]:
    shown = table(app)
    return [str(row.key.value) for row in shown.ordered_rows]


async def test_overview_lists_every_cluster_grouped_by_wave_with_counts(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")

        assert rows(app) == [name for name, _ in FLEET]
        assert cell(app, "dev-1", "wave") == "dev"
        assert cell(app, "dev-1", "health") == "✔ Ready"
        assert cell(app, "staging-2", "health") == "✖ Degraded"
        assert cell(app, "staging-2", "units") == "1/2"
        assert cell(app, "staging-2", "drift") == "2"
        assert cell(app, "prod-1", "revision") == OLD[:8]
        assert cell(app, "dev-1", "age") == "5m"
        assert cell(app, "dev-1", "agent") == "0.1.0"
        counts = app.counts
        assert (counts.clusters, counts.ready, counts.degraded, counts.stale) == (7, 6, 1, 0)
        summary = str(app.screen.query_one(SummaryBar).render())
        assert "7 clusters" in summary and "6 ready" in summary and "1 degraded" in summary
        assert app.connection.state == "connected"


async def test_stream_update_changes_the_row_in_place_and_the_cursor_stays(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        shown = table(app)
        shown.focus()
        for _ in range(3):
            await pilot.press("down")
        assert shown.cursor_row == 3
        selected = shown.selected
        assert selected == "staging-2"

        await fleet.put(fleet.report("dev-1", "dev", failing=True))
        await until(
            pilot, lambda: cell(app, "dev-1", "health") == "✖ Degraded", "dev-1 to turn Degraded"
        )

        assert shown.cursor_row == 3
        assert shown.selected == selected
        assert cell(app, "dev-1", "units") == "1/2"
        assert app.counts.degraded == 2
        assert rows(app) == [name for name, _ in FLEET]


async def test_a_new_cluster_is_inserted_in_its_wave_and_the_cursor_keeps_its_cluster(
    fleet: Fleet,
) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        shown = table(app)
        shown.focus()
        shown.move_cursor(row=4)
        assert shown.selected == "prod-1"

        await fleet.put(fleet.report("dev-0", "dev"))
        await until(pilot, lambda: "dev-0" in rows(app), "dev-0 to appear")

        assert rows(app)[0] == "dev-0"
        assert shown.selected == "prod-1"
        assert app.counts.clusters == 8


async def test_filter_matches_name_label_and_health(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")

        await pilot.press("slash", *"prod")
        assert rows(app) == ["prod-1", "prod-2", "prod-3"]

        await pilot.press(*" 2")
        assert rows(app) == ["prod-2"]

        for _ in "prod 2":
            await pilot.press("backspace")
        await pilot.press(*"degraded", "enter")
        assert rows(app) == ["staging-2"]
        assert "1 of 7 shown" in str(table(app).border_title)

        # A change arriving while filtered: a cluster that now matches appears.
        await fleet.put(fleet.report("prod-3", "prod", failing=True))
        await until(pilot, lambda: rows(app) == ["staging-2", "prod-3"], "prod-3 to match")

        await pilot.press("slash", "escape")
        assert len(rows(app)) == 7


async def test_sort_key_orders_within_each_wave(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        await fleet.put(fleet.report("dev-2", "dev", failing=True))
        await until(pilot, lambda: cell(app, "dev-2", "health") == "✖ Degraded", "dev-2 degraded")
        table(app).focus()

        await pilot.press("s")

        assert table(app).sort_by == "health"
        assert rows(app)[:2] == ["dev-2", "dev-1"]
        assert rows(app)[2:4] == ["staging-2", "staging-1"]


async def test_hub_going_away_shows_reconnecting_and_recovers_with_a_resync(
    fleet: Fleet,
) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "connected")

        await anyio.to_thread.run_sync(fleet.hub.stop)
        await until(
            pilot,
            lambda: app.connection.state in ("reconnecting", "unreachable"),
            "the app to notice",
        )
        await until(pilot, lambda: app.connection.state == "unreachable", "hub unreachable")
        header = app.screen.query_one("ConnectionStatus")
        assert "hub unreachable" in str(header.render())

        await anyio.to_thread.run_sync(fleet.hub.start)
        await until(pilot, lambda: app.connection.state == "connected", "reconnected")

        await fleet.put(fleet.report("prod-2", "prod", revision=NEW))
        await until(pilot, lambda: cell(app, "prod-2", "revision") == NEW[:8], "prod-2 at NEW")


async def test_reconcile_key_queues_a_command_for_the_selected_cluster(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        table(app).focus()
        await pilot.press("down", "r")

        command = await anyio.to_thread.run_sync(first_command, fleet, "dev-2")

        assert command["command"] == "reconcile"
        assert command["unit"] is None
        assert "alice" in command["reason"]


def first_command(fleet: Fleet, cluster: str) -> dict[str, object]:
    """The first command on the cluster's stream, read as its agent would."""
    import json

    parser = sse.EventStreamParser()
    with httpx.stream(
        "GET",
        f"{fleet.hub.url}/api/v1/clusters/{cluster}/commands?after=0",
        headers={"Authorization": f"Bearer {fleet.token(cluster)}"},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            event = parser.feed(line)
            if event is not None and event.event == "command":
                data: dict[str, object] = json.loads(event.data)
                return data
    raise AssertionError("the command stream ended without a command")


async def test_cluster_detail_shows_units_conditions_and_events(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        table(app).focus()
        table(app).move_cursor(row=3)
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, ClusterScreen) and app.screen.loaded,
            "the cluster screen",
        )
        units = app.screen.query_one(KeyedTable)
        assert [str(row.key.value) for row in units.ordered_rows] == [
            "flux-system/infra",
            "apps/web",
        ]
        assert str(units.get_cell("apps/web", "ready")) == "✖ False"
        assert str(units.get_cell("apps/web", "reason")) == "HealthCheckFailed"
        assert str(units.get_cell("apps/web", "inventory")) == "7"
        units.move_cursor(row=1)
        await pilot.pause()
        assert "0/3 replicas" in str(app.screen.query_one("#unit-detail").render())
        events = app.screen.query_one(EventTable)
        assert events.row_count == 2

        # A new report for this cluster updates the unit in place.
        await fleet.put(fleet.report("staging-2", "staging"))
        await until(
            pilot, lambda: str(units.get_cell("apps/web", "ready")) == "✔ True", "apps/web Ready"
        )

        units.focus()
        await pilot.press("down", "r")
        command = await anyio.to_thread.run_sync(first_command, fleet, "staging-2")
        assert command["unit"] == "apps/web"

        await pilot.press("escape")
        assert not isinstance(app.screen, ClusterScreen)


async def test_event_log_tails_new_events_and_filters(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        await pilot.press("e")
        assert isinstance(app.screen, EventsScreen)
        events = app.screen.query_one(EventTable)
        assert events.row_count == 2

        await fleet.put(fleet.report("prod-1", "prod", drift_minutes_ago=(1,)))
        await until(pilot, lambda: events.row_count == 3, "the new event")
        assert events.cursor_row == 2

        await pilot.press("slash", *"prod-1")
        assert events.row_count == 1
        assert str(events.get_cell_at(events.cursor_coordinate)) != ""


async def test_pipeline_says_when_the_hub_has_no_promoter(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        await pilot.press("w")
        await until(pilot, lambda: app.promotions_read > 0, "the promotion state")
        await pilot.pause()
        message = str(app.screen.query_one("#pipeline-message").render())
        assert "promotion not configured on this hub" in message

        await pilot.press("a")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "PipelineScreen"


async def test_read_only_mode_follows_the_status_branch(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    clone = served_repo(served, "fleet.git")
    clone.commit({"clusters/dev/kustomization.yaml": "resources: []\n"}, message="fleet")
    clone.push("main")
    with git_daemon(served) as daemon:
        url = daemon.url("fleet.git")
        reporters = {
            name: GitStatusReporter(url, name, cache_dir=tmp_path / name)
            for name in ("dev", "prod")
        }
        t0 = datetime.datetime.now(datetime.UTC)
        for name, reporter in reporters.items():
            await anyio.to_thread.run_sync(reporter.publish, cluster_report(name, name, t0))
        app = FleetApp(StatusBranchSource.for_repo(url, "fleet-status", interval=0.3))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.loaded, "the status branch")
            assert rows(app) == ["dev", "prod"]
            assert app.connection.state == "read-only"

            failing = cluster_report("prod", "prod", t0, failing=True)
            await anyio.to_thread.run_sync(reporters["prod"].publish, failing)
            await until(pilot, lambda: cell(app, "prod", "health") == "✖ Degraded", "prod degraded")

            table(app).focus()
            await pilot.press("r")
            await pilot.pause()
            # Textual keeps its toasts private; the message is what the user reads.
            assert any("read-only" in n.message for n in app._notifications)


async def test_a_cluster_moving_to_another_wave_moves_to_its_group(fleet: Fleet) -> None:
    app = tui_app(fleet.hub, fleet.clock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        shown = table(app)
        shown.focus()
        shown.move_cursor(row=2)
        assert shown.selected == "staging-1"

        await fleet.put(fleet.report("dev-2", "prod"))
        await until(pilot, lambda: cell(app, "dev-2", "wave") == "prod", "dev-2 in prod")

        assert rows(app) == [
            "dev-1",
            "staging-1",
            "staging-2",
            "dev-2",
            "prod-1",
            "prod-2",
            "prod-3",
        ]
        assert shown.selected == "staging-1"


async def test_a_revoked_token_shows_as_refused(hub: RunningHub) -> None:
    token = create_token(hub.config.database, "mallory", role="read-only")
    revoke_tokens(hub.config.database, "mallory")
    app = FleetApp(HubSource(HubClient(hub.url, token, timeout=5), label="hub.test"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connection.state == "refused", "refused")
        assert "401" in app.connection.detail
        assert "refused by the hub" in str(app.screen.query_one("ConnectionStatus").render())


async def test_approving_a_pending_wave_opens_its_gate(tmp_path: Path) -> None:
    with promoting_hub(tmp_path) as promoting:
        first = await promoting.to_approval()
        app = tui_app(promoting.fleet.hub)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("w")
            await until(
                pilot,
                lambda: (
                    (w := app.state.wave("prod")) is not None
                    and w.reason.startswith("approval pending")
                ),
                "prod to wait for an approval",
                timeout=30,
            )
            assert isinstance(app.screen, PipelineScreen)
            card = app.screen.query_one("#wave-prod", WaveCard)
            assert "approval pending for" in str(card.render())

            await pilot.press("right", "right")
            assert app.screen.selected == "prod"
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
            assert promoting.ref("prod") is None
            await pilot.press("y")

            await promoting.wait_ref("prod", first)
            await until(
                pilot,
                lambda: view.same_commit(app.state.wave("prod").revision, first),  # type: ignore[union-attr]
                "the pipeline to show prod at the approved revision",
            )
            history = await promoting.fleet.hub_history("prod")
            assert [(h["action"], h["who"]) for h in history] == [
                ("approve", "alice"),
                ("promote", "hub"),
            ]


async def test_pause_resume_and_roll_back_from_the_pipeline(tmp_path: Path) -> None:
    with promoting_hub(tmp_path) as promoting:
        first = await promoting.to_approval()
        app = tui_app(promoting.fleet.hub)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("w")
            await until(
                pilot, lambda: app.state.wave("staging") is not None, "the waves", timeout=30
            )
            await pilot.press("right")
            assert app.screen.selected == "staging"

            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
            await pilot.press("y")
            await until(pilot, lambda: app.state.wave("staging").paused, "staging paused")  # type: ignore[union-attr]

            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
            await pilot.press("n")
            await pilot.pause(0.5)
            assert app.state.wave("staging").paused  # type: ignore[union-attr]

            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
            await pilot.press("y")
            await until(pilot, lambda: not app.state.wave("staging").paused, "staging resumed")  # type: ignore[union-attr]

            # A second commit reaches staging; rolling back returns it to the first.
            second = promoting.repo.commit({"note.txt": "second"}, message="second")
            promoting.repo.push("main")
            await promoting.wait_ref("dev", second)
            await promoting.report_wave("dev", second)
            await promoting.wait_ref("staging", second)
            await promoting.report_wave("staging", second)
            await until(
                pilot,
                lambda: view.same_commit(app.state.wave("staging").last_good, second),  # type: ignore[union-attr]
                "staging good at the second commit",
                timeout=30,
            )

            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
            assert first[:8] in str(app.screen.query_one("#dialog-question").render())
            await pilot.press("y")
            await promoting.wait_ref("staging", first)
