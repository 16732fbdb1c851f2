"""The kinds the agent reconciles, each one object behind one interface, registered here.

The loop, the healer and the status writer never ask "is this a HelmRelease?": they
look the unit's kind up in :func:`registry` and call through :class:`Kind`. Adding a
kind is a new module implementing :class:`Kind` and one line in :func:`registry`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

import anyio.abc

from agent.applier import Applier
from agent.livecache import LiveCache
from agent.metrics import AgentMetrics
from agent.reconciler import Outcome
from agent.settings import AgentSettings
from agent.sources import Sources
from agent.store import UnitStore
from agent.units import FLUX_ROOT_SOURCE_NAME, ROOT_SOURCE, UnitDefinition, UnitKey
from agent.unitstate import UnitState
from agent.workqueue import WorkQueue
from fleet.core.manifests import ObjectKey
from fleet.kube import KubeClient
from fleet.models import NamespacedName

Object = dict[str, Any]
DependencyGate = Callable[[UnitState, str], Awaitable[Outcome | bool]]
"""dependsOn: the outcome of a broken graph, True while a dependency is not ready (the
gate wrote that and requeued the unit), False when the unit may run."""


@dataclasses.dataclass
class Healed:
    """What one drift check of one object did."""

    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    """Events to record (type, reason, message)."""
    corrected: bool = False
    """A change was reverted: counted as a drift correction."""
    changed: bool = False
    """The unit's status changed (drift seen or gone): write it."""


DriftJob = Callable[[], Awaitable[Healed]]


@dataclasses.dataclass
class Runtime:
    """What every kind shares of one agent: its API client, caches, sources, queue."""

    settings: AgentSettings
    client: KubeClient
    applier: Applier
    cache: LiveCache
    sources: Sources
    store: UnitStore
    metrics: AgentMetrics
    queue: WorkQueue[UnitKey]
    units: MutableMapping[UnitKey, UnitState]
    tasks: Callable[[], anyio.abc.TaskGroup]
    """The agent's task group, once it runs."""


class Kind(Protocol):
    """One served kind: how its units reconcile, heal, report and leave."""

    name: str
    recheck_stalled: bool
    """Whether a stalled unit is looked at again every interval (its desired state can
    change without a commit, like a HelmRelease's chart version); else a stall holds
    until the revision or the spec changes."""

    def source(self, definition: UnitDefinition) -> NamespacedName | None:
        """The Git source the unit reads, None when it reads none."""
        ...

    async def reconcile(
        self, state: UnitState, *, forced: bool, gate: DependencyGate
    ) -> Outcome | None:
        """One reconcile; None when there was nothing to do. May raise: the loop's error
        boundary turns that into the outcome."""
        ...

    async def remove(self, state: UnitState) -> None:
        """The unit left Git: delete what it owns, per its spec."""
        ...

    def forget(self, state: UnitState) -> None:
        """The unit is no longer managed: drop what is kept for it."""
        ...

    def prunes_children(self, definition: UnitDefinition) -> bool:
        """Whether the units it defined go with it (or are left running)."""
        ...

    def restore(self, state: UnitState, stored: Mapping[str, Any]) -> None:
        """Pick up what a previous agent stored of the kind's own (beyond UnitStatus)."""
        ...

    def extra_status(self, state: UnitState) -> dict[str, Any]:
        """The kind's own part of the unit's status."""
        ...

    def spec_summary(self, definition: UnitDefinition) -> dict[str, Any]:
        """What ``fleet get units`` shows of the kind's spec."""
        ...

    def flux_status(self, state: UnitState, generation: int) -> dict[str, Any]:
        """The unit's status in Flux's format, for its Flux object (``agent/mirror.py``)."""
        ...

    def drift(self, state: UnitState, event: str, key: ObjectKey, live: Object) -> DriftJob | None:
        """A watched object of the unit changed: the check (and correction) to run, or
        None when it is not drift (the agent's own write, not the unit's object)."""
        ...


def resolve_source(
    sources: Sources, definition: UnitDefinition, namespace: str | None, name: str
) -> NamespacedName:
    """A sourceRef as a tracked source's key; Flux's ``flux-system`` GitRepository means
    the fleet repository unless the fleet defines one of that name itself."""
    key = NamespacedName(namespace or definition.key.namespace, name)
    if sources.get(key) is None and name == FLUX_ROOT_SOURCE_NAME:
        return ROOT_SOURCE
    return key


def registry(kinds: list[Kind]) -> dict[str, Kind]:
    """The kinds by name; each name once."""
    found: dict[str, Kind] = {}
    for kind in kinds:
        if kind.name in found:
            raise ValueError(f"kind {kind.name} registered twice")
        found[kind.name] = kind
    return found
