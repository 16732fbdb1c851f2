"""``HelpScreen``: every key of the screen underneath, with what it does."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "Health: ✔ Ready  ✖ Degraded  ⧗ Stale  ⏸ Suspended  ? Unknown.  "
    "REVISION shows '(target)' when a cluster runs its wave's revision, '→ sha' when behind.\n"
    "Filter with '/': every word must match the name, a label (env=prod), the health or "
    "the wave. The mouse works: click a row, a header to sort, a wave to select it."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss_help", "Close")
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None, padding=(0, 2))
        table.add_column(style="bold cyan")
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        with Vertical(id="help"):
            yield Static("fleet — keys", id="help-title")
            yield Static(table)
            yield Static(INTRO, id="help-intro")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
