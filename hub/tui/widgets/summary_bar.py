"""``SummaryBar``: the fleet in one line, N clusters and how many of each health."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from hub.tui import view


class SummaryBar(Static):
    counts: reactive[view.FleetCounts] = reactive(view.FleetCounts)
    """Kept in step with the app's ``counts``."""

    def on_mount(self) -> None:
        self.watch(self.app, "counts", self._follow, init=True)

    def _follow(self, counts: view.FleetCounts) -> None:
        self.counts = counts

    def watch_counts(self, counts: view.FleetCounts) -> None:
        self.update(render_counts(counts))


def render_counts(counts: view.FleetCounts) -> Text:
    parts: list[tuple[str, str] | str] = [(f"{counts.clusters} clusters", "bold")]
    for health, number in (
        ("Ready", counts.ready),
        ("Degraded", counts.degraded),
        ("Stale", counts.stale),
        ("Unknown", counts.unknown),
        ("Suspended", counts.suspended),
    ):
        if number == 0 and health in ("Unknown", "Suspended"):
            continue
        symbol, style = view.HEALTH_STYLE[health]
        parts += [
            "  ",
            (f"{symbol} {number} {health.lower()}", style if number else "bright_black"),
        ]
    return Text.assemble(*parts)
