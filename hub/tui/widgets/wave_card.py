"""``WaveCard``: one wave of the promotion pipeline, with its gate and why it waits."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from fleet import untrusted
from hub.tui import view
from hub.tui.client import WaveStatus


class WaveCard(Widget, can_focus=True):
    """Focus one with the arrow keys or the mouse; the pipeline acts on the focused wave."""

    wave: reactive[WaveStatus | None] = reactive(None)
    health: reactive[str] = reactive("")
    """The wave's clusters by health, e.g. ``✔ 3 ✖ 1``."""

    class Selected(Message):
        def __init__(self, wave: str) -> None:
            super().__init__()
            self.wave = wave

    def __init__(self, wave: WaveStatus, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="wave-card")
        self.set_reactive(WaveCard.wave, wave)

    def render(self) -> Text:
        wave = self.wave
        if wave is None:
            return Text()
        self.set_class(wave.action in ("halt", "rollback"), "-failing")
        self.set_class(wave.paused, "-paused")
        lines = [
            untrusted.literal(wave.name, style="bold"),
            Text.assemble(("current   ", "bright_black"), view.short_sha(wave.revision) or "—"),
            Text.assemble(
                ("candidate ", "bright_black"),
                (
                    view.short_sha(wave.candidate) or "—",
                    "" if view.same_commit(wave.candidate, wave.revision) else "cyan",
                ),
            ),
            Text.assemble(("last good ", "bright_black"), view.short_sha(wave.last_good) or "—"),
            view.action_cell(wave.action),
            untrusted.literal(wave.reason, style="italic"),
            Text(""),
            Text(" ".join(flag for flag in _flags(wave)), style="magenta"),
            Text(f"{len(wave.clusters)} clusters  {self.health}", style="bright_black"),
        ]
        return Text("\n").join(lines)

    def on_focus(self) -> None:
        if self.wave is not None:
            self.post_message(self.Selected(self.wave.name))

    def on_click(self) -> None:
        self.focus()


def _flags(wave: WaveStatus) -> list[str]:
    flags = []
    if wave.paused:
        flags.append("⏸ paused")
    if wave.approval_required:
        flags.append("✔ approved" if wave.approved else "approval required")
    return flags
