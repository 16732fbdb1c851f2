"""``EventsScreen``: the live tail of fleet events, filtered as you type."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input

from hub.api import EventRecord
from hub.tui.screens.base import FleetScreen
from hub.tui.widgets.event_table import EventTable
from hub.tui.widgets.fleet_header import FleetHeader


class EventsScreen(FleetScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
    ]

    def compose(self) -> ComposeResult:
        yield FleetHeader("Events")
        yield Input(placeholder="filter: cluster, reason, unit or message words", id="event-filter")
        yield EventTable(id="events")
        yield Footer()

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    def on_mount(self) -> None:
        self.fleet.events_arrived.subscribe(self, self._arrived, immediate=True)
        self.table.replace(self.fleet.state.events, self.fleet.clock())
        self.table.focus()
        self.set_interval(1.0, self._tick)

    def _arrived(self, events: list[EventRecord]) -> None:
        self.table.append(events, self.fleet.clock())

    def _tick(self) -> None:
        self.table.refresh_ages(self.fleet.clock())

    def action_filter(self) -> None:
        self.query_one("#event-filter", Input).focus()

    @on(Input.Changed, "#event-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value
        self.table.replace(self.fleet.state.events, self.fleet.clock())

    @on(Input.Submitted, "#event-filter")
    def _done(self) -> None:
        self.table.focus()
