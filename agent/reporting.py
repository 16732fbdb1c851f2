"""The agent's reports: its whole state as a ``ClusterReport``, sent to the hub and/or the
Git status branch after every change (debounced) and as a heartbeat (by the reporters).

Changes are noticed at the one place every change passes through: the unit store writing
a Unit or recording an Event. Commands the hub sends down the agent's own outbound
connection (a webhook announced a push; a person pressed "reconcile") become reconcile
requests.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import anyio

from agent.loop import Agent
from agent.status import READY
from agent.units import ROOT_SOURCE, UnitDefinition
from fleet import __version__
from fleet import report as report_schema
from fleet.models.common import NamespacedName
from fleet.report import ClusterReport, Event, HubCommand, SourceReport, UnitReport

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.2
"""Changes closer together than this are sent in one report."""


class Reporter(Protocol):
    def submit(self, report: ClusterReport) -> None: ...


class Reporting:
    def __init__(
        self,
        agent: Agent,
        reporters: Sequence[Reporter] = (),
        *,
        labels: dict[str, str] | None = None,
        heartbeat_seconds: int = report_schema.DEFAULT_HEARTBEAT_SECONDS,
    ) -> None:
        self.agent = agent
        self.reporters = list(reporters)
        self.labels = labels or {}
        self.heartbeat_seconds = heartbeat_seconds
        self.events: collections.deque[Event] = collections.deque(maxlen=report_schema.MAX_EVENTS)
        self._changed = anyio.Event()
        agent.store.listeners.append(self._on_store_change)

    def add(self, reporter: Reporter) -> None:
        self.reporters.append(reporter)
        self._changed.set()

    def _on_store_change(self, unit_name: str, event: dict[str, Any] | None) -> None:
        if event is not None:
            self.events.append(
                Event(
                    time=report_schema.utc_now(),
                    type=event["type"],
                    reason=event["reason"],
                    unit=self._unit_key(unit_name),
                    message=report_schema.clip_message(event["message"]),
                )
            )
        self._changed.set()

    def _unit_key(self, unit_name: str) -> str:
        state = self.agent.unit_named(unit_name)
        return f"{state.key.namespace}/{state.key.name}" if state else unit_name

    def build(self) -> ClusterReport:
        agent = self.agent
        tracked = agent.sources.get(ROOT_SOURCE)
        source = SourceReport(
            url=tracked.url if tracked else agent.settings.repo,
            ref=agent.settings.ref.describe(),
            revision=tracked.revision.display if tracked and tracked.revision else None,
            ready=bool(tracked and tracked.error is None and tracked.revision),
            message=report_schema.clip_message(
                (tracked.error or "fetched") if tracked else "not fetched yet"
            ),
        )
        units = []
        for state in agent.units.values():
            status = state.status
            ready = status.condition(READY)
            units.append(
                UnitReport(
                    kind=getattr(state.definition, "kind", "Kustomization"),
                    namespace=state.key.namespace,
                    name=state.key.name,
                    ready=ready.status if ready else "Unknown",
                    reason=ready.reason if ready else "",
                    message=report_schema.clip_message(ready.message if ready else ""),
                    suspended=state.suspended,
                    last_applied_revision=status.last_applied_revision,
                    last_attempted_revision=status.last_attempted_revision,
                    inventory_size=len(status.inventory),
                    drift_count=status.drift_count,
                    depends_on=[f"{d.namespace}/{d.name}" for d in state.definition.depends_on],
                    source=_other_source(agent.source_of(state.definition), state.definition),
                    last_reconcile_at=state.last_reconcile_at,
                    last_reconcile_seconds=state.last_reconcile_seconds,
                )
            )
        return ClusterReport(
            cluster=agent.settings.cluster,
            agent_version=__version__,
            reported_at=report_schema.utc_now(),
            labels=self.labels,
            source=source,
            units=units[: report_schema.MAX_UNITS],
            events=list(self.events),
            heartbeat_seconds=self.heartbeat_seconds,
        )

    async def run(self) -> None:
        """Send a report after every change, a little debounced, until cancelled."""
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            await anyio.sleep(DEBOUNCE_SECONDS)
            try:
                report = self.build()
            except ValueError as error:  # a bug or an oversized fleet; never stop reconciling
                log.error("cannot build the status report: %s", error)
                continue
            for reporter in self.reporters:
                reporter.submit(report)

    async def on_command(self, command: HubCommand) -> None:
        """A command from the hub: reconcile a unit (or all), fetching the source first if asked."""
        target = None
        if command.unit:
            namespace, _, name = command.unit.rpartition("/")
            target = next(
                (
                    state.key
                    for state in self.agent.units.values()
                    if state.key.name == name and state.key.namespace in (namespace, "")
                ),
                None,
            )
            if target is None:
                log.warning("hub asked to reconcile unknown unit %s", command.unit)
                return
        log.info(
            "hub asked for a reconcile of %s%s (%s)",
            command.unit or "every unit",
            " with a source fetch" if command.source else "",
            command.reason or "no reason given",
        )
        self.agent.request_reconcile(target, with_source=command.source)


def _other_source(source: NamespacedName | None, definition: UnitDefinition) -> str:
    """``GitRepository/<ns>/<name>`` for a Kustomization of another Git repository than
    the cluster's own, so the hub keeps it out of the fleet commit; else empty."""
    if source is None or source == ROOT_SOURCE or definition.kind != "Kustomization":
        return ""
    return f"GitRepository/{source.namespace}/{source.name}"
