"""The drift healer: every watched object that changes is routed to the unit that owns it
(by its labels), whose kind decides whether that was drift and corrects it; the healer
counts the correction, records its Events and has the status written."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agent import status as unit_status
from agent.kinds import DriftJob, Kind, Runtime
from agent.units import KUSTOMIZATION, UnitKey
from agent.unitstate import UnitState
from fleet.api import unit as unit_api
from fleet.core.manifests import ObjectKey

log = logging.getLogger(__name__)

Object = dict[str, Any]
SaveStatus = Callable[[UnitState], Awaitable[None]]
RecordEvent = Callable[[UnitState, str, str, str], Awaitable[None]]


def owner_of(live: Mapping[str, Any]) -> UnitKey:
    """The unit an object belongs to, from the labels the agent (or helm's post-renderer)
    put on it; objects labelled before units had kinds are a Kustomization's."""
    labels = (live.get("metadata") or {}).get("labels") or {}
    return UnitKey(
        labels.get(unit_api.UNIT_KIND_LABEL, KUSTOMIZATION),
        labels.get(unit_api.UNIT_NAMESPACE_LABEL, ""),
        labels.get(unit_api.UNIT_NAME_LABEL, ""),
    )


def count_drift(runtime: Runtime, state: UnitState) -> None:
    """One more drift correction of the unit, in its status and its metrics."""
    key = state.key
    runtime.metrics.unit((key.kind, key.namespace, key.name)).drift_corrections += 1
    state.status = unit_status.drifted(state.status)


class DriftHealer:
    def __init__(
        self,
        runtime: Runtime,
        kinds: Mapping[str, Kind],
        save: SaveStatus,
        record_event: RecordEvent,
    ) -> None:
        self.runtime = runtime
        self.kinds = kinds
        self.save = save
        self.record_event = record_event

    async def on_change(self, event: str, key: ObjectKey, live: Object) -> None:
        """The live cache's callback: a watched object changed (or was deleted)."""
        owner = owner_of(live)
        state = self.runtime.units.get(owner)
        if state is None or state.suspended:
            return
        kind = self.kinds.get(owner.kind)
        job = kind.drift(state, event, key, live) if kind is not None else None
        if job is None:
            return
        self.runtime.tasks().start_soon(self._run, state, key, job, time.monotonic())

    async def _run(self, state: UnitState, key: ObjectKey, job: DriftJob, seen: float) -> None:
        healed = await job()
        if healed.corrected:
            self.runtime.metrics.heal_duration.observe(time.monotonic() - seen)
            count_drift(self.runtime, state)
        for type_, reason, message in healed.events:
            log.info("%s: %s", reason, message, extra={"unit": state.key, "object": key})
            await self.record_event(state, type_, reason, message)
        if healed.changed or healed.corrected:
            await self.save(state)
