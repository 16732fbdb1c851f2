"""The units the agent tracks: each one's state between reconciles, and lookups over them.

This is the agent's registry of Flux objects: one :class:`UnitState` per unit (its
definition from Git, its typed status, its locks), and a :class:`UnitIndex` of children,
dependents and dependency problems rebuilt only when the set changes.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

import anyio

from agent import status as unit_status
from agent.releases import ReleaseMemory
from agent.units import UnitDefinition, UnitKey
from fleet.core import plan
from fleet.core.inventory import InventoryEntry


@dataclasses.dataclass
class UnitState:
    """Everything the agent remembers about one unit between reconciles."""

    definition: UnitDefinition
    status: unit_status.UnitStatus = dataclasses.field(default_factory=unit_status.UnitStatus)
    """What the unit's status says; replaced by ``status.fold`` after each reconcile."""
    stalled_on: str | None = None
    """``revision|spec digest`` of a terminal failure: not retried until either changes."""
    failures: int = 0
    last_reconcile_at: datetime.datetime | None = None
    """When a reconcile of this unit last finished (reported as the TUI's LAST RUN)."""
    last_reconcile_seconds: float | None = None
    suspended_by_request: bool = False
    """``fleet suspend`` (an annotation on the Unit)."""
    suspended_in_cluster: bool = False
    """``flux suspend``: ``spec.suspend`` set on the unit's Flux object in the cluster."""
    requested: str | None = None
    """A requestedAt not yet picked up: the next reconcile to start reports it handled, so
    ``fleet reconcile`` never takes a reconcile that began before its request for its own."""
    fetching_for: str | None = None
    """A ``--with-source`` requestedAt whose source fetch is still running."""
    force_next: bool = False
    folded_for: str | None = None
    """The definition digest the status was last folded for (Flux's observedGeneration):
    a status older than the definition says nothing about it yet."""
    awaiting_since: tuple[str, float] | None = None
    """(revision, monotonic time) since when the unit waits for the units its health
    depends on: the wait fails after the unit's timeout."""
    release: ReleaseMemory = dataclasses.field(default_factory=ReleaseMemory)
    """A HelmRelease unit's release: failure counters, history, drift baseline."""
    save_lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)
    lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)
    """Held for a whole reconcile, and by a removal: a unit being removed is never
    reconciled at the same time (which could re-create what the removal prunes)."""

    @property
    def key(self) -> UnitKey:
        return self.definition.key

    @property
    def ready(self) -> bool:
        return self.status.ready

    @property
    def inventory(self) -> tuple[InventoryEntry, ...]:
        return self.status.inventory

    @property
    def suspended(self) -> bool:
        return self.definition.suspend or self.suspended_by_request or self.suspended_in_cluster

    @property
    def health(self) -> unit_status.Health:
        """Current, failed or pending, as ``wait``/``healthChecks`` judge a Flux object: a
        status not yet folded for the current definition is pending."""
        if self.folded_for != self.definition.digest:
            return "pending"
        return unit_status.health(self.status)

    @property
    def ready_at_its_revision(self) -> bool:
        """Flux's test for a dependency: Ready, and not half way to a newer revision."""
        return self.status.ready_at_its_revision


@dataclasses.dataclass(frozen=True)
class UnitIndex:
    """Lookups over the unit set, rebuilt only when the set changes: scanning every unit
    after each reconcile is quadratic in the fleet's size."""

    children: Mapping[UnitKey, list[UnitKey]]
    dependents: Mapping[UnitKey, list[UnitKey]]
    by_resource_name: Mapping[str, UnitKey]
    problems: plan.DependencyProblems[UnitKey]
    """Cycles and missing dependencies."""

    @classmethod
    def of(cls, units: Mapping[UnitKey, UnitState]) -> UnitIndex:
        children: dict[UnitKey, list[UnitKey]] = {}
        dependents: dict[UnitKey, list[UnitKey]] = {}
        for key, state in units.items():
            if state.definition.parent is not None:
                children.setdefault(state.definition.parent, []).append(key)
            for dependency in state.definition.depends_on:
                dependents.setdefault(dependency, []).append(key)
        graph = {key: state.definition.depends_on for key, state in units.items()}
        return cls(
            children,
            dependents,
            {state.definition.resource_name: key for key, state in units.items()},
            plan.find_dependency_problems(graph),
        )
