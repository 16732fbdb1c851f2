"""``fleet tui`` on a fleet where one cluster is hostile: every screen, driven with run_test.

The hostile cluster reports through the hub's API with markup in every string the schema
lets through (unit names, reasons, messages, events); and, as a hub upgraded from a
version without the schema's limits would hold, rows already stored with raw terminal
escapes (written into the hub's database directly). On every screen, dialog and
notification: no crash, the text shown literally, no escape sequence in what is drawn,
and clicking on the text runs none of the app's actions.
"""

from __future__ import annotations

import datetime
import html
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.coordinate import Coordinate
from textual.pilot import Pilot

from fleet.report import Event, UnitReport
from hub.tui.app import FleetApp
from hub.tui.screens.cluster import ClusterScreen
from hub.tui.screens.confirm import ConfirmDialog
from hub.tui.screens.events import EventsScreen
from hub.tui.screens.help import HelpScreen
from hub.tui.screens.pipeline import PipelineScreen
from hub.tui.widgets.cluster_table import ClusterTable
from hub.tui.widgets.event_table import EventTable
from hub.tui.widgets.keyed_table import KeyedTable
from tests.hubserver import RunningHub, report, running_hub
from tests.integration.tuikit import Fleet, hub_config, tui_app, until

pytestmark = [pytest.mark.timeout(300), pytest.mark.anyio]
SIZE = (160, 48)
QUIT = "[@click=app.quit]x[/]"
CLOSE = "[/oops]"
BOLD = "[bold red]loud"
TITLE = "\x1b]0;owned\x07"
CLEAR = "\x1b[2J"
RAW = ("\x1b", "\x07", "\x9b", "\x00")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningHub]:
    with running_hub(hub_config(tmp_path)) as running:
        yield running


def hostile_fleet(hub: RunningHub) -> Fleet:
    fleet = Fleet(hub)
    fleet.put_sync(fleet.report("dev-1", "dev"))
    now = fleet.t0
    units = [
        UnitReport(
            namespace="apps",
            name=CLOSE,
            ready="False",
            reason=BOLD,
            message=f"{QUIT} failed {CLEAR}{TITLE}",
        ),
        UnitReport(namespace="apps", name=QUIT, ready="True", reason="Ok", message=CLOSE),
    ]
    events = [
        Event(
            time=now - datetime.timedelta(minutes=2),
            type="Warning",
            reason="DriftCorrected",
            unit=f"apps/{CLOSE}",
            object=QUIT,
            message=f"{QUIT} drift {TITLE}",
        )
    ]
    made = report("evil", units=units, events=events, labels={"env": "dev"}, reported_at=now)
    fleet.put_sync(made.model_copy(update={"agent_version": QUIT}))
    # What an older hub without the schema's limits may hold: raw escapes, stored.
    with sqlite3.connect(hub.config.database.removeprefix("sqlite:///")) as database:
        database.execute(
            "UPDATE clusters SET agent_version = ?, message = ? WHERE name = 'evil'",
            (f"v1{TITLE}", f"{CLEAR}{CLOSE}\x9b31m"),
        )
        database.execute(
            "UPDATE events SET message = ?, unit = ? WHERE cluster = 'evil'",
            (f"{TITLE}{QUIT}\x00", f"apps/{CLEAR}"),
        )
    return fleet


def drawn(app: FleetApp) -> tuple[str, str]:
    """What the terminal would show now: the screen exported as Rich renders it, and its
    text (the SVG's text runs, in order, unescaped)."""
    svg = app.export_screenshot()
    runs = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.DOTALL)
    return svg, html.unescape("".join(runs)).replace("\xa0", " ")


def assert_safe(app: FleetApp, *literal: str) -> None:
    assert app.is_running, "the app stopped"
    svg, text = drawn(app)
    for raw in RAW:
        assert raw not in svg, f"{raw!r} reached the terminal"
    for expected in literal:
        assert expected in text, f"{expected!r} is not shown literally"


async def click_everywhere(pilot: Pilot[None], selector: str, lines: int) -> None:
    """Click every cell of a widget's first lines: a parsed @click would run an action."""
    for y in range(lines):
        for x in range(48):
            await pilot.click(selector, offset=(x, y))


async def test_every_screen_shows_hostile_text_literally(hub: RunningHub) -> None:
    fleet = hostile_fleet(hub)
    app = tui_app(fleet.hub, fleet.clock())
    quits: list[str] = []

    # A spy on the action the hostile markup names: clicking its text must not run it.
    async def spy_quit() -> None:
        quits.append("quit")

    app.action_quit = spy_quit  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded, "the first load")
        overview = app.screen
        table = overview.query_one(ClusterTable)
        table.focus()
        rows = [str(row.key.value) for row in table.ordered_rows]
        table.move_cursor(row=rows.index("evil"))
        await pilot.pause()
        assert str(table.get_cell("evil", "agent")) == "v1\ufffd]0;owned\ufffd"
        assert_safe(app, CLOSE)
        await click_everywhere(pilot, "#selection", 3)
        assert app.screen is overview and quits == []

        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, ClusterScreen) and app.screen.loaded,
            "the cluster screen",
        )
        screen = app.screen
        units = screen.query_one(KeyedTable)
        assert [str(row.key.value) for row in units.ordered_rows] == [
            f"apps/{CLOSE}",
            f"apps/{QUIT}",
        ]
        assert str(units.get_cell(f"apps/{CLOSE}", "unit")) == f"apps/{CLOSE}"
        assert str(units.get_cell(f"apps/{CLOSE}", "reason")) == BOLD
        units.focus()
        units.move_cursor(row=0)
        await pilot.pause()
        detail = str(screen.query_one("#unit-detail").render())
        assert f"{QUIT} failed \ufffd[2J\ufffd]0;owned\ufffd" in detail
        events = screen.query_one(EventTable)
        assert events.row_count == 1
        assert str(events.get_cell_at(Coordinate(0, 3))) == "\ufffd]0;owned\ufffd" + QUIT + "\ufffd"
        assert_safe(app, f"apps/{CLOSE}", QUIT, BOLD)
        await click_everywhere(pilot, "#unit-detail", 3)
        await click_everywhere(pilot, "#cluster-info", 4)
        assert app.screen is screen and quits == []

        # A notification quoting the unit's name.
        units.focus()
        units.move_cursor(row=1)
        await pilot.pause()
        assert units.selected == f"apps/{QUIT}"
        await pilot.press("r")
        await until(pilot, lambda: list(app._notifications), "the reconcile notification")
        await pilot.pause()
        note = next(iter(app._notifications))
        assert note.message.startswith(f"reconcile of apps/{QUIT} on evil queued")
        assert not note.markup
        assert_safe(app)

        await pilot.press("escape")
        await pilot.press("e")
        assert isinstance(app.screen, EventsScreen)
        log = app.screen.query_one(EventTable)
        await until(pilot, lambda: log.row_count == 1, "the event log")
        assert str(log.get_cell_at(Coordinate(0, 3))) == "apps/\ufffd[2J"
        assert_safe(app, "apps/\ufffd[2J", QUIT)

        await pilot.press("w")
        assert isinstance(app.screen, PipelineScreen)
        await until(pilot, lambda: app.promotions_read > 0, "the promotion state")
        assert_safe(app)

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert_safe(app)
        await pilot.press("escape")

        answers: list[bool | None] = []
        app.push_screen(
            ConfirmDialog(f"Approve {CLOSE}{TITLE}", f"wave {QUIT}\n{BOLD}{CLEAR}"),
            answers.append,
        )
        await pilot.pause()
        assert_safe(app, f"Approve {CLOSE}\ufffd]0;owned\ufffd", f"wave {QUIT}", BOLD)
        await click_everywhere(pilot, "#dialog-question", 2)
        assert quits == [], "a click on the dialog's text ran app.quit"
        await pilot.press("n")
        assert answers == [False]
        assert app.is_running
