"""``ClusterScreen``: one cluster's units with their conditions, and its recent events.

The hub keeps no object lists, so a unit shows what its report says: Ready condition,
reason and message, revisions, inventory size, drift corrections. The screen reloads
when the stream says the cluster changed; rows are updated in place.
"""

from __future__ import annotations

import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from fleet import untrusted
from fleet.report import ClusterReport, UnitReport
from hub import api
from hub.tui import view
from hub.tui.client import HubClientError
from hub.tui.screens.base import FleetScreen
from hub.tui.widgets.event_table import EventTable
from hub.tui.widgets.fleet_header import FleetHeader
from hub.tui.widgets.keyed_table import KeyedTable

RECENT_EVENTS = 50
READY_STYLE = {"True": ("✔", "green"), "False": ("✖", "bold red"), "Unknown": ("?", "yellow")}
UNIT_COLUMNS = (
    view.Column("kind", "KIND", 13),
    view.Column("unit", "UNIT", 24),
    view.Column("ready", "READY", 10),
    view.Column("reason", "REASON", 22),
    view.Column("revision", "APPLIED", 8),
    view.Column("inventory", "OBJECTS", 7),
    view.Column("drift", "DRIFT", 5),
    view.Column("run", "LAST RUN", 8),
)
"""The message is long: it goes under the table, for the unit under the cursor."""


def unit_cells(unit: UnitReport, now: datetime.datetime) -> tuple[view.Cell, ...]:
    symbol, style = READY_STYLE[unit.ready]
    if unit.suspended:
        symbol, style = "⏸", "blue"
    behind = unit.last_attempted_revision and not view.same_commit(
        unit.last_attempted_revision, unit.last_applied_revision
    )
    return (
        unit.kind,
        untrusted.literal(unit.key),
        Text(f"{symbol} {'suspended' if unit.suspended else unit.ready}", style=style),
        untrusted.literal(unit.reason),
        untrusted.literal(
            view.short_sha(unit.last_applied_revision) or "—", style="yellow" if behind else ""
        ),
        str(unit.inventory_size),
        Text(str(unit.drift_count), style="magenta" if unit.drift_count else "bright_black"),
        view.since(unit.last_reconcile_at, now) if unit.last_reconcile_at else "—",
    )


def unit_lines(unit: UnitReport) -> Text:
    """The unit's Ready condition in full, and what it depends on."""
    symbol, style = READY_STYLE[unit.ready]
    shown = untrusted.printable
    text = Text.assemble(
        (shown(unit.key), "bold"),
        f"  Ready={unit.ready} ",
        (symbol, style),
        f"  {shown(unit.reason)}",
        ("  suspended" if unit.suspended else "", "blue"),
    )
    if unit.message:
        message = shown(unit.message, multiline=True)
        text.append(f"\n{message}", style="red" if unit.ready == "False" else "")
    attempted = unit.last_attempted_revision
    if attempted and not view.same_commit(attempted, unit.last_applied_revision):
        text.append(f"\nattempted {shown(view.short_sha(attempted))}", style="yellow")
    if unit.depends_on:
        depends = shown(", ".join(unit.depends_on))
        text.append(f"\ndepends on {depends}", style="bright_black")
    return text


def cluster_lines(detail: api.ClusterDetail, now: datetime.datetime) -> Text:
    cluster = detail.cluster
    report: ClusterReport | None = detail.report
    shown = untrusted.printable
    labels = " ".join(f"{k}={v}" for k, v in sorted(cluster.labels.items())) or "no labels"
    text = Text.assemble(
        (shown(cluster.name), "bold"),
        "  ",
        view.health_cell(cluster.health),
        f"  units {cluster.units_ready}/{cluster.units_total}",
        f"  drift 24h {cluster.drift24h}",
        f"  reported {view.since(cluster.last_report_at, now)} ago",
        f"  agent {shown(cluster.agent_version or '?')}",
        "\n",
        (shown(labels), "cyan"),
    )
    if report is not None:
        source = report.source
        mark = ("✔", "green") if source.ready else ("✖", "bold red")
        text.append("\nsource ")
        text.append(mark[0], style=mark[1])
        revision = view.short_sha(source.revision) or "—"
        text.append(shown(f" {source.url} {source.ref}  {revision}"))
        if source.message:
            message = shown(source.message, multiline=True)
            text.append(f"  {message}", style="red" if not source.ready else "")
    if cluster.message:
        message = shown(cluster.message, multiline=True)
        text.append(f"\n{message}", style="red" if cluster.health == "Degraded" else "")
    return text


class ClusterScreen(FleetScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "reconcile_unit", "Reconcile unit"),
        Binding("R", "reconcile_cluster", "Reconcile cluster"),
    ]

    def __init__(self, cluster: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.detail: api.ClusterDetail | None = None

    def compose(self) -> ComposeResult:
        yield FleetHeader(f"Cluster {self.cluster}")
        yield Static(Text("loading…", style="bright_black"), id="cluster-info")
        yield KeyedTable(UNIT_COLUMNS, id="units")
        yield Static(id="unit-detail")
        yield EventTable(show_cluster=False, id="cluster-events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#units").border_title = "units"
        self.query_one("#cluster-events").border_title = "recent events"
        self.fleet.clusters_changed.subscribe(self, self._clusters_changed, immediate=True)
        self.fleet.events_arrived.subscribe(self, self._events_arrived, immediate=True)
        self.set_interval(1.0, self._tick)
        self.load()

    def _clusters_changed(self, names: frozenset[str]) -> None:
        if self.cluster in names:
            self.load()

    def _events_arrived(self, events: list[api.EventRecord]) -> None:
        mine = [event for event in events if event.cluster == self.cluster]
        if mine:
            self.query_one(EventTable).append(mine, self.fleet.clock())

    def _tick(self) -> None:
        self.query_one(EventTable).refresh_ages(self.fleet.clock())

    @work(exclusive=True, group="cluster-detail")
    async def load(self) -> None:
        try:
            detail = await self.fleet.source.cluster(self.cluster)
            events = await self.fleet.source.events(self.cluster, RECENT_EVENTS)
        except HubClientError as error:
            info = self.query_one("#cluster-info", Static)
            info.update(untrusted.literal(str(error), style="red", multiline=True))
            return
        self.show(detail, events)

    def show(self, detail: api.ClusterDetail, events: list[api.EventRecord]) -> None:
        now = self.fleet.clock()
        self.detail = detail
        self.query_one("#cluster-info", Static).update(cluster_lines(detail, now))
        units = detail.report.units if detail.report else []
        self.query_one(KeyedTable).sync([(unit.key, unit_cells(unit, now)) for unit in units])
        self._describe_unit()
        table = self.query_one(EventTable)
        if table.row_count == 0:
            table.replace(reversed(events), now)
        else:
            table.append(reversed(events), now)
        self.loaded = True

    loaded = False
    """True once the first load is on screen (tests and screenshots wait for it)."""

    def action_reconcile_unit(self) -> None:
        units = self.query_one(KeyedTable)
        self.fleet.reconcile(self.cluster, units.selected)

    def action_reconcile_cluster(self) -> None:
        self.fleet.reconcile(self.cluster, None)

    @on(DataTable.RowSelected, "#units")
    def _unit_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()

    @on(DataTable.RowHighlighted, "#units")
    def _describe_unit(self) -> None:
        key = self.query_one(KeyedTable).selected
        report = self.detail.report if self.detail else None
        unit = next((u for u in report.units if u.key == key), None) if report else None
        detail = self.query_one("#unit-detail", Static)
        detail.update(unit_lines(unit) if unit else "")
