"""``FleetState``: the TUI's copy of the fleet, changed only by ``feed`` updates.

Applying an update says which clusters changed, so the screens touch only those rows;
an update equal to what is held changes nothing (a replayed stream event after a
reconnect, a Git poll that found nothing new).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from fleet.report import ClusterSummary
from hub.api import EventRecord
from hub.tui import view
from hub.tui.client import WaveStatus
from hub.tui.feed import ClusterChanged, EventArrived, Resync

MAX_EVENTS = 5000
"""Events kept for the log: enough to scroll back through an incident, bounded in memory."""


@dataclass
class Changes:
    clusters: set[str] = field(default_factory=set)
    events: list[EventRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.clusters or self.events)


@dataclass
class FleetState:
    clusters: dict[str, ClusterSummary] = field(default_factory=dict)
    waves: view.Waves = field(default_factory=view.Waves)
    promotions: list[WaveStatus] | None = None
    """None until read, or when the hub has no promoter (see ``promotion_problem``)."""
    promotion_problem: str = ""
    events: deque[EventRecord] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    _event_ids: set[int] = field(default_factory=set)

    def apply(self, update: Resync | ClusterChanged | EventArrived) -> Changes:
        changes = Changes()
        if isinstance(update, Resync):
            fresh = {cluster.name: cluster for cluster in update.clusters}
            changes.clusters = {
                name
                for name in fresh.keys() | self.clusters.keys()
                if fresh.get(name) != self.clusters.get(name)
            }
            self.clusters = fresh
            changes.events = self._add_events(update.events)
        elif isinstance(update, ClusterChanged):
            name = update.cluster.name
            if self.clusters.get(name) != update.cluster:
                self.clusters[name] = update.cluster
                changes.clusters.add(name)
        else:
            changes.events = self._add_events([update.event])
        return changes

    def _add_events(self, events: Iterable[EventRecord]) -> list[EventRecord]:
        added = []
        for event in events:
            if event.id in self._event_ids:
                continue
            if len(self.events) == self.events.maxlen:
                self._event_ids.discard(self.events[0].id)
            self.events.append(event)
            self._event_ids.add(event.id)
            added.append(event)
        return added

    def set_promotions(self, waves: list[WaveStatus] | None, problem: str = "") -> bool:
        """Record the promoter's view; True when the overview's wave columns change."""
        self.promotions = waves
        self.promotion_problem = problem
        derived = view.Waves.of(waves or [])
        if derived == self.waves:
            return False
        self.waves = derived
        return True

    def wave(self, name: str) -> WaveStatus | None:
        return next((w for w in self.promotions or [] if w.name == name), None)

    def wave_of_cluster(self, cluster: str) -> str:
        summary = self.clusters.get(cluster)
        return view.wave_of(summary, self.waves.members) if summary else ""
