"""``EventTable``: fleet events, newest at the bottom, following the tail like ``tail -f``."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from fleet import untrusted
from hub.api import EventRecord
from hub.tui import view

MAX_ROWS = 2000
"""Rows kept on screen; older events stay in the app's state for a new filter."""


def event_cells(event: EventRecord, now: datetime.datetime, *, cluster: bool) -> list[view.Cell]:
    style = "yellow" if event.type == "Warning" else ""
    cells: list[view.Cell] = [Text(view.since(event.time, now), style="bright_black")]
    if cluster:
        cells.append(untrusted.literal(event.cluster))
    cells += [
        untrusted.literal(event.reason, style=style or "green"),
        untrusted.literal(event.unit),
        untrusted.literal(event.message or event.object, style=style),
    ]
    return cells


class EventTable(DataTable[view.Cell]):
    """Row keys are event ids; a filter rebuilds, an arrival appends."""

    def __init__(self, *, show_cluster: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.show_cluster = show_cluster
        self.filter_text = ""
        self._times: dict[str, str] = {}
        self._ages: dict[str, str] = {}

    def on_mount(self) -> None:
        self.add_column("AGE", width=5, key="age")
        if self.show_cluster:
            self.add_column("CLUSTER", width=16, key="cluster")
        self.add_column("REASON", width=20, key="reason")
        self.add_column("UNIT", width=22, key="unit")
        self.add_column("MESSAGE", key="message")

    def replace(self, events: Iterable[EventRecord], now: datetime.datetime) -> None:
        self.clear()
        self._times.clear()
        self._ages.clear()
        self.append(events, now)

    def refresh_ages(self, now: datetime.datetime) -> None:
        for key, time in self._times.items():
            text = view.since(time, now)
            if text != self._ages[key]:
                self._ages[key] = text
                self.update_cell(key, "age", Text(text, style="bright_black"))

    def append(self, events: Iterable[EventRecord], now: datetime.datetime) -> None:
        """Add at the bottom; follow the tail if the cursor was on the last row."""
        following = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        added = False
        for event in events:
            if not view.event_matches(event, self.filter_text) or str(event.id) in self.rows:
                continue
            key = str(event.id)
            cells = event_cells(event, now, cluster=self.show_cluster)
            self.add_row(*cells, key=key)
            self._times[key] = event.time
            self._ages[key] = str(cells[0])
            added = True
        while self.row_count > MAX_ROWS:
            oldest = self.coordinate_to_cell_key(Coordinate(0, 0))[0]
            self.remove_row(oldest)
            self._times.pop(str(oldest.value), None)
            self._ages.pop(str(oldest.value), None)
        if added and following:
            self.move_cursor(row=self.row_count - 1, animate=False)
