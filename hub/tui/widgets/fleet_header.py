"""``FleetHeader``: the summary bar and the connection state, on top of every screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from fleet import untrusted
from hub.tui.widgets.connection_status import ConnectionStatus
from hub.tui.widgets.summary_bar import SummaryBar


class FleetHeader(Horizontal):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title

    def compose(self) -> ComposeResult:
        yield Static(untrusted.literal(self.title), classes="screen-title")
        yield SummaryBar()
        yield ConnectionStatus()
