"""``PipelineScreen``: the promotion waves left to right, their gates, and the actions.

Each wave shows what it runs, what would enter next, the gate's action and the reason
it waits, in the hub's words (soak remaining, approval pending, blocked by a cluster).
Approve, pause, resume and roll back each ask for confirmation first. A hub without a
promoter says so here instead of failing.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Static

from fleet import untrusted
from hub.tui import view
from hub.tui.client import WaveStatus
from hub.tui.screens.base import FleetScreen
from hub.tui.widgets.fleet_header import FleetHeader
from hub.tui.widgets.wave_card import WaveCard

MAX_LISTED_CLUSTERS = 40


class PipelineScreen(FleetScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("left", "step(-1)", "Previous wave", show=False),
        Binding("right", "step(1)", "Next wave", show=False),
        Binding("a", "wave('approve')", "Approve"),
        Binding("p", "wave('pause')", "Pause"),
        Binding("u", "wave('resume')", "Resume"),
        Binding("b", "wave('rollback')", "Roll back"),
    ]

    selected: str | None = None
    """The wave the actions apply to: the focused card's."""
    shown = False
    """True once the promotion state (or why there is none) is on screen."""

    def compose(self) -> ComposeResult:
        yield FleetHeader("Promotion pipeline")
        yield Horizontal(id="waves")
        yield Static(id="pipeline-message")
        yield Static(id="wave-detail")
        yield Footer()

    async def on_mount(self) -> None:
        self.fleet.promotions_changed.subscribe(self, self._promotions_changed, immediate=True)
        self.fleet.clusters_changed.subscribe(self, self._clusters_changed, immediate=True)
        await self._show()
        self.fleet.refresh_promotions()

    def _promotions_changed(self, _: None) -> None:
        self.run_worker(self._show(), exclusive=True, group="pipeline-show")

    def _clusters_changed(self, names: frozenset[str]) -> None:
        for card in self.query(WaveCard):
            if card.wave is not None and names & set(card.wave.clusters):
                card.health = self._health(card.wave)
        self._describe()

    async def _show(self) -> None:
        state = self.fleet.state
        message = self.query_one("#pipeline-message", Static)
        waves = state.promotions
        container = self.query_one("#waves", Horizontal)
        container.display = waves is not None
        if waves is None:
            await container.remove_children()
            self.selected = None
            message.update(
                untrusted.literal(
                    state.promotion_problem or "reading the promotion state…", style="yellow"
                )
            )
            self.query_one("#wave-detail", Static).update("")
            self.shown = state.promotion_problem != ""
            return
        if state.promotion_problem:
            message.update(untrusted.literal(state.promotion_problem, style="bold red"))
        else:
            message.update("" if waves else Text("no waves in fleet.yaml", style="yellow"))
        cards = list(self.query(WaveCard))
        if [c.wave.name for c in cards if c.wave] == [w.name for w in waves]:
            for card, wave in zip(cards, waves, strict=True):
                card.wave = wave
                card.health = self._health(wave)
        else:
            await container.remove_children()
            widgets: list[Static | WaveCard] = []
            for index, wave in enumerate(waves):
                if index:
                    widgets.append(Static("→", classes="wave-arrow"))
                card = WaveCard(wave, id=f"wave-{wave.name}")
                card.health = self._health(wave)
                widgets.append(card)
            await container.mount_all(widgets)
            names = [wave.name for wave in waves]
            target = self.selected if self.selected in names else (names[0] if names else None)
            if target is not None:
                self.query_one(f"#wave-{target}", WaveCard).focus()
                self.selected = target
        self._describe()
        self.shown = True

    def _health(self, wave: WaveStatus) -> str:
        clusters = self.fleet.state.clusters
        counts = view.count(clusters[name] for name in wave.clusters if name in clusters)
        parts = [
            f"{view.HEALTH_STYLE[health][0]} {number}"
            for health, number in (
                ("Ready", counts.ready),
                ("Degraded", counts.degraded),
                ("Stale", counts.stale),
                ("Unknown", counts.unknown),
                ("Suspended", counts.suspended),
            )
            if number
        ]
        return " ".join(parts)

    @on(WaveCard.Selected)
    def _selected(self, event: WaveCard.Selected) -> None:
        self.selected = event.wave
        self._describe()

    def _describe(self) -> None:
        """The selected wave's clusters: where each one is against the wave's revision."""
        wave = self.fleet.state.wave(self.selected) if self.selected else None
        detail = self.query_one("#wave-detail", Static)
        if wave is None:
            detail.update("")
            return
        shown = untrusted.printable
        text = Text.assemble(("wave ", "bright_black"), (shown(wave.name), "bold"))
        if wave.depends_on:
            text.append(shown(f"  after {', '.join(wave.depends_on)}"), style="bright_black")
        text.append("\n")
        text.append_text(view.action_cell(wave.action))
        text.append(f"  {shown(wave.reason)}\n")
        clusters = self.fleet.state.clusters
        for name in wave.clusters[:MAX_LISTED_CLUSTERS]:
            cluster = clusters.get(name)
            health = view.health_cell(cluster.health if cluster else "Unknown")
            revision = view.revision_cell(cluster.revision if cluster else None, wave.revision)
            text.append_text(Text.assemble(f"  {shown(name):<24} ", health, "  ", revision, "\n"))
        if len(wave.clusters) > MAX_LISTED_CLUSTERS:
            text.append(f"  … and {len(wave.clusters) - MAX_LISTED_CLUSTERS} more\n")
        detail.update(text)

    def action_step(self, delta: int) -> None:
        cards = [card for card in self.query(WaveCard) if card.wave is not None]
        if not cards:
            return
        names = [card.wave.name for card in cards if card.wave]
        index = names.index(self.selected) if self.selected in names else 0
        cards[max(0, min(len(cards) - 1, index + delta))].focus()

    def action_wave(self, action: str) -> None:
        if self.selected is None:
            self.notify(
                self.fleet.state.promotion_problem or "no wave selected", severity="warning"
            )
            return
        self.fleet.confirm_wave_action(action, self.selected)
