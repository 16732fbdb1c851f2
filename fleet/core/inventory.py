"""What a unit owns: its inventory, and which owned objects to prune. Pure functions.

The inventory is stored on the unit's status as Flux stores it
(``entries: [{id: <namespace>_<name>_<group>_<kind>, v: <version>}]``) so a restarted
agent knows what it created. As in Flux, prune removes only inventory objects that the
new render no longer contains, and never runs on a render that failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleet.core import plan
from fleet.core.manifests import ObjectKey

PRUNE_ANNOTATION = "kustomize.toolkit.fluxcd.io/prune"
"""Flux's opt-out: ``disabled`` on an object keeps it when it leaves Git."""
SSA_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"
"""Flux's apply policy: ``Ignore`` (never apply), ``IfNotPresent`` (create only)."""
ALLOW_MASS_PRUNE_ANNOTATION = "fleet.dev/allow-mass-prune"
"""On a unit: ``"true"`` lets prune remove most or all of what it owns in one revision."""

MASS_PRUNE_MINIMUM = 10
"""Inventories smaller than this are never guarded: losing a few objects is ordinary."""
MASS_PRUNE_FRACTION = 0.5
"""Pruning more than this share of a guarded inventory at once needs explicit consent."""


@dataclasses.dataclass(frozen=True, order=True)
class InventoryEntry:
    """One object a unit applied: its identity and the API version it was written in."""

    key: ObjectKey
    version: str

    @property
    def api_version(self) -> str:
        return f"{self.key.group}/{self.version}" if self.key.group else self.version

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> InventoryEntry:
        api_version = str(manifest.get("apiVersion", ""))
        return cls(ObjectKey.from_manifest(manifest), api_version.rpartition("/")[2])

    def to_status(self) -> dict[str, str]:
        return {"id": self.key.to_inventory_id(), "v": self.version}

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> InventoryEntry:
        return cls(ObjectKey.from_inventory_id(str(entry["id"])), str(entry["v"]))


def inventory_of(objects: Iterable[Mapping[str, Any]]) -> list[InventoryEntry]:
    """The inventory of a set of applied objects, in apply order, without duplicates."""
    seen: dict[ObjectKey, InventoryEntry] = {}
    for obj in objects:
        entry = InventoryEntry.from_manifest(obj)
        seen.setdefault(entry.key, entry)
    return list(seen.values())


def inventory_to_status(entries: Iterable[InventoryEntry]) -> dict[str, list[dict[str, str]]]:
    return {"entries": [e.to_status() for e in entries]}


def inventory_from_status(status: Mapping[str, Any] | None) -> list[InventoryEntry]:
    """Entries of a stored inventory; malformed entries are skipped, never guessed."""
    entries = ((status or {}).get("inventory") or {}).get("entries") or []
    found = []
    for entry in entries:
        try:
            found.append(InventoryEntry.from_status(entry))
        except (KeyError, ValueError, TypeError):
            continue
    return found


def stale_entries(
    previous: Sequence[InventoryEntry], current: Sequence[InventoryEntry]
) -> list[InventoryEntry]:
    """Entries owned before and not rendered now, in the order to delete them.

    Deletion runs in reverse apply order: workloads before the namespaces, CRDs and
    cluster-wide definitions they live in or depend on.
    """
    kept = {e.key for e in current}
    stale = [e for e in previous if e.key not in kept]
    as_objects = [{"apiVersion": e.api_version, "kind": e.key.kind, "_entry": e} for e in stale]
    stages = plan.apply_stages(as_objects)
    return [obj["_entry"] for stage in reversed(stages) for obj in stage]


def prune_disabled(obj: Mapping[str, Any] | None) -> bool:
    """Whether an object (desired or live) opts out of pruning with Flux's annotation."""
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(PRUNE_ANNOTATION) == "disabled"


def apply_policy(obj: Mapping[str, Any]) -> str:
    """Flux's per-object apply policy: ``Override`` (default), ``Merge``, ``IfNotPresent`` or
    ``Ignore``."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(SSA_ANNOTATION, "Override"))


@dataclasses.dataclass(frozen=True)
class PruneDecision:
    """What prune may delete, or why it must not run at all."""

    delete: list[InventoryEntry]
    refused: str | None = None
    """Set when the whole prune is refused; nothing is deleted then."""


def plan_prune(
    previous: Sequence[InventoryEntry],
    current: Sequence[InventoryEntry],
    *,
    allow_mass_prune: bool = False,
) -> PruneDecision:
    """Stale entries to delete, guarded against a render that lost most of the unit.

    A revision that renders nothing, or drops more than half of a sizeable inventory, is
    far more often a broken path, a bad merge or a truncated fetch than an intent to
    delete production; such a prune is refused unless the unit allows it explicitly.
    """
    stale = stale_entries(previous, current)
    if not stale or allow_mass_prune:
        return PruneDecision(stale)
    if not current and previous:
        return PruneDecision(
            [],
            refused=f"the new revision renders no objects and would prune all {len(previous)}; "
            f'set the annotation {ALLOW_MASS_PRUNE_ANNOTATION}: "true" on the unit to allow it',
        )
    if len(previous) >= MASS_PRUNE_MINIMUM and len(stale) > MASS_PRUNE_FRACTION * len(previous):
        return PruneDecision(
            [],
            refused=f"the new revision would prune {len(stale)} of {len(previous)} objects; "
            f'set the annotation {ALLOW_MASS_PRUNE_ANNOTATION}: "true" on the unit to allow it',
        )
    return PruneDecision(stale)
