"""``FleetApp``: the Textual app behind ``fleet tui``.

One worker follows the source's updates (``feed``) and applies them to ``FleetState``;
changes are gathered and published once per turn of the event loop, as the cluster
names that changed (``clusters_changed``) and the events that arrived
(``events_arrived``), so a burst of a thousand stream events costs one pass over the
screens, each touching only its own rows. Actions (reconcile, wave actions) live here so
that every screen asks for them the same way, wave actions behind a ``ConfirmDialog``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.signal import Signal

from fleet import untrusted
from fleet.report import utc_now
from hub.api import EventRecord
from hub.tui import view
from hub.tui.client import HubClientError, HubUnreachable, PromotionNotConfigured, WaveStatus
from hub.tui.feed import Connection, FleetSource, PromotionsChanged, Resync, Update
from hub.tui.screens.confirm import ConfirmDialog
from hub.tui.screens.events import EventsScreen
from hub.tui.screens.help import HelpScreen
from hub.tui.screens.overview import OverviewScreen
from hub.tui.screens.pipeline import PipelineScreen
from hub.tui.state import FleetState

NOT_CONFIGURED = "promotion not configured on this hub"
PROMOTIONS_POLL_SECONDS = 5.0
"""The stream carries cluster changes, not gate timers (soak ends with no event)."""

NOT_IN_HELP = {"focus_next", "focus_previous", "screen.copy_text", "copy_text"}
"""Textual's own keys: they work as everywhere, the help lists fleet's."""

WAVE_ACTIONS = {
    "approve": "Approve",
    "pause": "Pause",
    "resume": "Resume",
    "rollback": "Roll back",
}


class FleetApp(App[None]):
    CSS_PATH = "fleet.tcss"
    TITLE = "fleet"
    ENABLE_COMMAND_PALETTE = False
    """Every action has its key in the footer; the palette would only add a line to learn."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("o", "show('overview')", "Overview"),
        Binding("w", "show('pipeline')", "Pipeline"),
        Binding("e", "show('events')", "Events"),
    ]

    connection: reactive[Connection] = reactive(Connection("connecting"))
    """Whether the screens are live; every screen's header shows it."""
    counts: reactive[view.FleetCounts] = reactive(view.FleetCounts)
    """Clusters per health, for the summary bar."""

    def __init__(
        self,
        source: FleetSource,
        *,
        clock: Callable[[], datetime.datetime] = utc_now,
        promotions_poll: float = PROMOTIONS_POLL_SECONDS,
    ) -> None:
        super().__init__()
        self.source = source
        self.clock = clock
        """Ages are rendered against this; tests and screenshots fix it."""
        self.promotions_poll = promotions_poll
        self.state = FleetState()
        self.loaded = False
        """True once the first full list is on screen."""
        self.clusters_changed: Signal[frozenset[str]] = Signal(self, "clusters-changed")
        self.events_arrived: Signal[list[EventRecord]] = Signal(self, "events-arrived")
        self.promotions_changed: Signal[None] = Signal(self, "promotions-changed")
        self.promotions_read = 0
        """How many promotion reads completed (tests wait on it)."""
        self._pending: set[str] = set()
        self._pending_events: list[EventRecord] = []
        self._flush_queued = False
        self._resynced = False
        self.sub_title = source.label

    def get_default_screen(self) -> Screen[None]:
        return OverviewScreen()

    def on_mount(self) -> None:
        self.follow_fleet()
        if not self.source.read_only:
            self.refresh_promotions()
            self.set_interval(self.promotions_poll, self.refresh_promotions)

    async def on_unmount(self) -> None:
        await self.source.aclose()

    @work(exclusive=True, group="feed")
    async def follow_fleet(self) -> None:
        async for update in self.source.updates():
            self.apply_update(update)

    def apply_update(self, update: Update) -> None:
        """Take one update from the feed; the screens see it at the next flush."""
        if isinstance(update, Connection):
            self.connection = update
            return
        if isinstance(update, PromotionsChanged):
            if not self.source.read_only:
                self.refresh_promotions()
            elif self.state.promotions is None and not self.state.promotion_problem:
                self.state.set_promotions(None, "read-only mode (--repo): no promotion state")
            return
        changes = self.state.apply(update)
        self._pending |= changes.clusters
        self._pending_events += changes.events
        if isinstance(update, Resync):
            self._resynced = True
        if (changes or isinstance(update, Resync)) and not self._flush_queued:
            self._flush_queued = True
            self.call_later(self.flush)

    def flush(self) -> None:
        """Publish what changed since the last flush; the screens update their rows."""
        self._flush_queued = False
        names = frozenset(self._pending)
        events = self._pending_events
        self._pending, self._pending_events = set(), []
        self.counts = view.count(self.state.clusters.values())
        if names:
            self.clusters_changed.publish(names)
        self.loaded = self._resynced
        if events:
            self.events_arrived.publish(events)

    @work(exclusive=True, group="promotions")
    async def refresh_promotions(self) -> None:
        try:
            status = await self.source.promotions()
        except PromotionNotConfigured:
            changed = self.state.set_promotions(None, NOT_CONFIGURED)
        except HubUnreachable:
            return
        except HubClientError as error:
            changed = self.state.set_promotions(None, f"promotion state unavailable: {error}")
        else:
            problem = f"promotion halted: {status.error}" if status.error else ""
            changed = self.state.set_promotions(status.waves, problem)
        self.promotions_read += 1
        self.promotions_changed.publish(None)
        if changed:
            # The wave column and the target marks of the overview depend on the waves.
            self.clusters_changed.publish(frozenset(self.state.clusters))

    def reconcile(self, cluster: str, unit: str | None) -> None:
        self._reconcile(cluster, unit)

    @work(group="actions")
    async def _reconcile(self, cluster: str, unit: str | None) -> None:
        what = f"{unit} on {cluster}" if unit else cluster
        try:
            command = await self.source.reconcile(cluster, unit)
        except HubClientError as error:
            self.notify(f"reconcile {what}: {error}", severity="error")
            return
        self.notify(f"reconcile of {what} queued (command {command.id})")

    def confirm_wave_action(self, action: str, wave_name: str) -> None:
        """Ask first; on yes, call the hub. Says plainly when there is nothing to do."""
        if self.source.read_only:
            self.notify("read-only mode (--repo): connect to a hub to act", severity="warning")
            return
        wave = self.state.wave(wave_name)
        if wave is None:
            self.notify(
                self.state.promotion_problem or f"no wave {wave_name!r}", severity="warning"
            )
            return
        self._confirm_wave_action(action, wave)

    @work(group="actions")
    async def _confirm_wave_action(self, action: str, wave: WaveStatus) -> None:
        argument = ""
        if action == "approve":
            if not wave.candidate or view.same_commit(wave.candidate, wave.revision):
                self.notify(f"{wave.name}: no candidate revision to approve", severity="warning")
                return
            argument = wave.candidate
            question = (
                f"Approve {view.short_sha(wave.candidate)} for wave {wave.name}?\n"
                f"Now: {wave.reason or wave.action}"
            )
        elif action == "rollback":
            target = await self._rollback_target(wave)
            if target is None:
                self.notify(f"{wave.name}: no earlier revision to roll back to", severity="warning")
                return
            argument = target
            question = (
                f"Roll wave {wave.name} back from {view.short_sha(wave.revision)} to "
                f"{view.short_sha(target)}?\n"
                f"Its {len(wave.clusters)} clusters will follow {view.short_sha(target)}; "
                f"{view.short_sha(wave.revision)} is not promoted here again without a new "
                "commit or an approval."
            )
        elif action == "pause":
            question = f"Pause promotions into wave {wave.name}?\nNow: {wave.reason or wave.action}"
        else:
            question = f"Resume promotions into wave {wave.name}?"
        label = WAVE_ACTIONS[action]
        dialog = ConfirmDialog(f"{label} — wave {wave.name}", question, confirm_label=label)
        if await self.push_screen_wait(dialog):
            await self._wave_action(action, wave.name, argument)

    async def _rollback_target(self, wave: WaveStatus) -> str | None:
        """The last good revision; when that is what runs, where the wave last came from."""
        if wave.last_good and not view.same_commit(wave.last_good, wave.revision):
            return wave.last_good
        try:
            history = await self.source.promotion_history(wave.name)
        except HubClientError as error:
            self.notify(f"{wave.name}: cannot read the promotion history: {error}")
            return None
        moves = [r.from_ for r in history if r.action in ("promote", "rollback") and r.from_]
        return next((sha for sha in moves if not view.same_commit(sha, wave.revision)), None)

    async def _wave_action(self, action: str, wave: str, argument: str) -> None:
        try:
            if action == "approve":
                await self.source.approve(wave, argument)
            elif action == "rollback":
                await self.source.rollback(wave, argument)
            elif action == "pause":
                await self.source.pause(wave)
            else:
                await self.source.resume(wave)
        except HubClientError as error:
            self.notify(f"{WAVE_ACTIONS[action]} {wave}: {error}", severity="error")
        else:
            self.notify(f"{WAVE_ACTIONS[action]} {wave}: done")
        self.refresh_promotions()

    def action_show(self, name: str) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        wanted = {"pipeline": PipelineScreen, "events": EventsScreen}.get(name)
        if wanted is not None and isinstance(self.screen, wanted):
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if wanted is not None:
            self.push_screen(wanted())

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification of this app quotes the hub (names, errors): shown as text,
        never parsed as markup, whatever a caller passes for ``markup``."""
        super().notify(
            untrusted.printable(message, multiline=True),
            title=untrusted.printable(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def action_help(self) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        keys: dict[str, str] = {}
        for _, binding, enabled, _tooltip in self.screen.active_bindings.values():
            key = binding.key_display or self.get_key_display(binding)
            textual_own = binding.action in NOT_IN_HELP or binding.key.startswith("ctrl+")
            if enabled and binding.description and not textual_own:
                keys.setdefault(binding.description, key)
        self.push_screen(HelpScreen([(key, what) for what, key in keys.items()]))
