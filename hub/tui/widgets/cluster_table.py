"""``ClusterTable``: the fleet overview's rows, kept in place under live updates.

Row keys are cluster names. A change to known clusters becomes ``update_cell`` calls for
the cells whose text differs, so the cursor, the scroll position and the other rows stay
where they are; only a cluster appearing or leaving (or leaving the filter) moves rows,
and then the cursor is put back on the cluster it was on. Changing the filter or the sort
is a user's request and rebuilds the rows.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from fleet.report import ClusterSummary
from hub.tui import view
from hub.tui.state import FleetState

COLUMN_KEYS = tuple(column.key for column in view.COLUMNS)
WAVE_COLUMN = COLUMN_KEYS.index("wave")


class ClusterTable(DataTable[view.Cell]):
    """One row per cluster, grouped by wave; ``sort_by`` and ``filter_text`` say which and how."""

    def __init__(self, state: FleetState, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.state = state
        self.sort_by = "name"
        self.filter_text = ""
        self._cells: dict[str, tuple[view.Cell, ...]] = {}
        """What each shown row holds now, to update only the cells that changed."""

    def on_mount(self) -> None:
        for column in view.COLUMNS:
            self.add_column(column.label, width=column.width, key=column.key)

    @property
    def selected(self) -> str | None:
        """The cluster under the cursor."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value

    def _visible(self, cluster: ClusterSummary) -> bool:
        wave = view.wave_of(cluster, self.state.waves.members)
        return view.matches(cluster, wave, self.filter_text)

    def _ordered(self, clusters: Iterable[ClusterSummary]) -> list[ClusterSummary]:
        waves = self.state.waves
        return sorted(clusters, key=lambda c: view.sort_key(c, waves, self.sort_by))

    def rebuild(self, now: datetime.datetime) -> None:
        """All rows again, in order: for a new filter or sort, never for an update."""
        keep = self.selected
        self.clear()
        self._cells.clear()
        waves = self.state.waves
        for cluster in self._ordered(c for c in self.state.clusters.values() if self._visible(c)):
            cells = view.cluster_cells(cluster, waves, now)
            self._cells[cluster.name] = cells
            self.add_row(*cells, key=cluster.name)
        self._restore_cursor(keep)

    def apply(self, names: Iterable[str], now: datetime.datetime) -> None:
        """Bring the rows of ``names`` up to date with the state, in place."""
        waves = self.state.waves
        moved = False
        keep = self.selected
        for name in names:
            cluster = self.state.clusters.get(name)
            shown = name in self._cells
            if cluster is None or not self._visible(cluster):
                if shown:
                    self.remove_row(name)
                    del self._cells[name]
                    moved = True
                continue
            cells = view.cluster_cells(cluster, waves, now)
            if not shown:
                self.add_row(*cells, key=name)
                self._cells[name] = cells
                moved = True
                continue
            old = self._cells[name]
            if old == cells:
                continue
            for key, before, after in zip(COLUMN_KEYS, old, cells, strict=True):
                if before != after:
                    self.update_cell(name, key, after)
            self._cells[name] = cells
            # A cluster that changed wave belongs in another group; other changes keep
            # the row where it is, even when the sort column changed (``s`` re-sorts).
            moved = moved or old[WAVE_COLUMN] != cells[WAVE_COLUMN]
        if moved:
            self._reorder()
            self._restore_cursor(keep)

    def refresh_ages(self, now: datetime.datetime) -> None:
        """The LAST REPORT column moves with the clock; only cells whose text changed."""
        for name, cells in self._cells.items():
            cluster = self.state.clusters.get(name)
            if cluster is None:
                continue
            text = view.age_cell(cluster, now)
            if text != cells[view.AGE_COLUMN]:
                self.update_cell(name, "age", text)
                self._cells[name] = (*cells[: view.AGE_COLUMN], text, *cells[view.AGE_COLUMN + 1 :])

    def _reorder(self) -> None:
        waves = self.state.waves
        clusters = self.state.clusters
        by = self.sort_by

        def key(name: str | Text) -> tuple[tuple[int, str], object, str]:
            return view.sort_key(clusters[str(name)], waves, by)

        self.sort("name", key=key)

    def _restore_cursor(self, name: str | None) -> None:
        if name is None:
            return
        try:
            row = self.get_row_index(name)
        except RowDoesNotExist:
            return
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False)
