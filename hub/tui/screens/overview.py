"""``OverviewScreen``: every cluster of the fleet, grouped by wave, updated live."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from fleet import untrusted
from hub.tui import view
from hub.tui.screens.base import FleetScreen
from hub.tui.screens.cluster import ClusterScreen
from hub.tui.widgets.cluster_table import ClusterTable
from hub.tui.widgets.filter_bar import FilterBar
from hub.tui.widgets.fleet_header import FleetHeader

HEADER_SORT = {
    "name": "name",
    "wave": "name",
    "health": "health",
    "revision": "revision",
    "age": "age",
    "drift": "drift",
}


class OverviewScreen(FleetScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reconcile", "Reconcile"),
        Binding("a", "approve", "Approve"),
        Binding("b", "rollback", "Roll back"),
    ]

    def compose(self) -> ComposeResult:
        yield FleetHeader("Overview")
        yield ClusterTable(self.fleet.state, id="clusters")
        yield Static(id="selection")
        yield FilterBar(placeholder="filter: words in name, label=value, health, wave", id="filter")
        yield Footer()

    @property
    def table(self) -> ClusterTable:
        return self.query_one(ClusterTable)

    def on_mount(self) -> None:
        self.query_one(FilterBar).display = False
        self.fleet.clusters_changed.subscribe(self, self._clusters_changed, immediate=True)
        self.table.rebuild(self.fleet.clock())
        self._describe()
        self.set_interval(1.0, self._tick)

    def _clusters_changed(self, names: frozenset[str]) -> None:
        self.table.apply(names, self.fleet.clock())
        self._describe()

    def _tick(self) -> None:
        self.table.refresh_ages(self.fleet.clock())

    def _describe(self) -> None:
        """The table's title (sort, filter, rows shown) and the selected cluster's line."""
        table = self.table
        shown, total = table.row_count, len(self.fleet.state.clusters)
        title = f"sorted by {table.sort_by}"
        if table.filter_text:
            title += f" · filter “{table.filter_text}” · {shown} of {total} shown"
        table.border_title = untrusted.escape_markup(title)
        self.query_one("#selection", Static).update(self._selection_line())

    def _selection_line(self) -> Text:
        name = self.table.selected
        cluster = self.fleet.state.clusters.get(name) if name else None
        if cluster is None:
            empty = "no cluster matches the filter" if self.table.filter_text else "no clusters yet"
            return Text(empty, style="bright_black")
        shown = untrusted.printable
        labels = " ".join(f"{k}={v}" for k, v in sorted(cluster.labels.items()))
        line = Text.assemble(
            (shown(cluster.name), "bold"),
            "  ",
            view.health_cell(cluster.health),
            "  ",
            (shown(cluster.revision or "no revision"), "bright_black"),
            "  ",
            (shown(labels), "cyan"),
        )
        if cluster.message:
            message = shown(cluster.message, multiline=True)
            line.append(f"\n{message}", style="red" if cluster.health == "Degraded" else "")
        return line

    @on(DataTable.RowHighlighted, "#clusters")
    def _highlighted(self) -> None:
        self.query_one("#selection", Static).update(self._selection_line())

    @on(DataTable.RowSelected, "#clusters")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(ClusterScreen(event.row_key.value))

    @on(DataTable.HeaderSelected, "#clusters")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        by = HEADER_SORT.get(str(event.column_key.value))
        if by is not None:
            self._sort(by)

    def action_sort(self) -> None:
        keys = view.SORT_KEYS
        self._sort(keys[(keys.index(self.table.sort_by) + 1) % len(keys)])

    def _sort(self, by: str) -> None:
        self.table.sort_by = by
        self.table.rebuild(self.fleet.clock())
        self._describe()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    @on(FilterBar.QueryChanged)
    def _filter(self, event: FilterBar.QueryChanged) -> None:
        self.table.filter_text = event.query
        self.table.rebuild(self.fleet.clock())
        self._describe()

    @on(FilterBar.Closed)
    def _filter_closed(self) -> None:
        self.table.focus()

    def action_reconcile(self) -> None:
        name = self.table.selected
        if name:
            self.fleet.reconcile(name, None)

    def _selected_wave(self) -> str | None:
        name = self.table.selected
        wave = self.fleet.state.wave_of_cluster(name) if name else ""
        if not wave:
            self.notify("select a cluster that belongs to a wave", severity="warning")
            return None
        return wave

    def action_approve(self) -> None:
        wave = self._selected_wave()
        if wave:
            self.fleet.confirm_wave_action("approve", wave)

    def action_rollback(self) -> None:
        wave = self._selected_wave()
        if wave:
            self.fleet.confirm_wave_action("rollback", wave)
