"""How Units read on a terminal: names, table rows, ages, event rows and ownership trees.

Pure: Unit and Event objects (plain dicts, as the API returns them) in, strings and
rows out, so every format is tested without a cluster.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleet.api import unit as unit_api
from fleet.core.inventory import InventoryEntry, inventory_from_status

Object = Mapping[str, Any]

UNIT_KIND_LABEL = "Kustomization"
"""Most units stand for Flux Kustomizations, so trees and events name them as flux does."""
HELMRELEASE_KIND = "HelmRelease"
_HELMRELEASE_PREFIX = "helmrelease."
"""A HelmRelease's Unit is ``helmrelease.<namespace>.<name>`` (agent.units)."""


class UnitLookupError(LookupError):
    """A NAME given on the command line matches no unit, or more than one."""


def format_age(seconds: float) -> str:
    """kubectl's HumanDuration: ``45s``, ``3m12s``, ``25m``, ``4h10m``, ``3d2h``, ``2y``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(text: str | None) -> datetime.datetime | None:
    """An API timestamp (RFC 3339, ``Z`` or offset, optional fraction); None if unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def age(timestamp: str | None, now: datetime.datetime) -> str:
    when = parse_time(timestamp)
    return format_age((now - when).total_seconds()) if when else "<unknown>"


def _helmrelease(resource_name: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a HelmRelease's Unit object name, else None."""
    if not resource_name.startswith(_HELMRELEASE_PREFIX):
        return None
    namespace, dot, name = resource_name.removeprefix(_HELMRELEASE_PREFIX).partition(".")
    return (namespace, name) if dot else None


def display_name(resource_name: str) -> str:
    """The name people use for a Unit object: ``root``, the Kustomization's
    ``namespace/name`` (the object is ``namespace.name``; namespaces never hold a dot),
    or ``helmrelease/namespace/name`` for a HelmRelease (as ``flux get all`` prefixes it)."""
    if resource_name == unit_api.ROOT_UNIT:
        return resource_name
    release = _helmrelease(resource_name)
    if release is not None:
        return f"helmrelease/{release[0]}/{release[1]}"
    namespace, dot, name = resource_name.partition(".")
    return f"{namespace}/{name}" if dot else resource_name


def unit_label(resource_name: str) -> str:
    """Flux's ``Kind/namespace/name`` of the object a Unit stands for."""
    release = _helmrelease(resource_name)
    if release is not None:
        return f"{HELMRELEASE_KIND}/{release[0]}/{release[1]}"
    return f"{UNIT_KIND_LABEL}/{display_name(resource_name)}"


def unit_name(unit: Object) -> str:
    return display_name(str((unit.get("metadata") or {}).get("name", "")))


def unit_key(unit: Object) -> str:
    """``namespace/name`` of the Kustomization, as children name their parent in spec.parent."""
    spec = unit.get("spec") or {}
    if spec.get("namespace") and spec.get("name"):
        return f"{spec['namespace']}/{spec['name']}"
    return unit_name(unit)


def is_suspended(unit: Object) -> bool:
    """Suspended as the agent reports it, or as asked and not yet seen by the agent."""
    annotations = (unit.get("metadata") or {}).get("annotations") or {}
    spec = unit.get("spec") or {}
    return bool(spec.get("suspend")) or annotations.get(unit_api.SUSPEND_ANNOTATION) == "true"


def sort_units(units: Iterable[Object]) -> list[Object]:
    """Root first, then by name: the order of ``fleet get units``."""
    return sorted(units, key=lambda u: (unit_name(u) != unit_api.ROOT_UNIT, unit_name(u)))


def find_unit(units: Sequence[Object], name: str, namespace: str) -> Object:
    """The unit a person means by ``name``: ``root``, ``namespace/name``, the Unit object's
    own name, or a bare Kustomization name when only one unit has it."""
    for unit in units:
        resource = str(unit["metadata"]["name"])
        if name in (resource, display_name(resource), unit_key(unit)):
            return unit
    by_name = [u for u in units if (u.get("spec") or {}).get("name") == name]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        choices = ", ".join(sorted(unit_name(u) for u in by_name))
        raise UnitLookupError(
            f"unit name '{name}' is ambiguous in namespace {namespace}: {choices}"
        )
    if not units:
        raise UnitLookupError(
            f"unit '{name}' not found: namespace {namespace} has no units; "
            "is the agent running there? (-n/--namespace names the agent's namespace)"
        )
    raise UnitLookupError(
        f"unit '{name}' not found in namespace {namespace}; `fleet get units` lists them"
    )


@dataclasses.dataclass(frozen=True)
class UnitRow:
    """One line of ``fleet get units``."""

    name: str
    ready: str
    revision: str
    suspended: bool
    objects: int
    drift: int
    age: str
    message: str

    HEADERS = ("name", "ready", "revision", "suspended", "objects", "drift", "age", "message")

    @classmethod
    def of(cls, unit: Object, now: datetime.datetime) -> UnitRow:
        status = unit.get("status") or {}
        ready = unit_api.ready_condition(status) or {}
        return cls(
            name=unit_name(unit),
            ready=str(ready.get("status", "Unknown")),
            revision=unit_api.short_revision(status.get("lastAppliedRevision")),
            suspended=is_suspended(unit),
            objects=int(status.get("inventorySize") or 0),
            drift=int(status.get("driftCount") or 0),
            age=age((unit.get("metadata") or {}).get("creationTimestamp"), now),
            message=_one_line(str(ready.get("message", ""))),
        )

    def cells(self) -> list[str]:
        return [
            self.name,
            self.ready,
            self.revision,
            str(self.suspended),
            str(self.objects),
            str(self.drift),
            self.age,
            self.message,
        ]


def unit_summary(unit: Object) -> dict[str, Any]:
    """``-o json|yaml`` of one unit: the table's facts, unabridged, for scripts."""
    status = unit.get("status") or {}
    spec = unit.get("spec") or {}
    ready = unit_api.ready_condition(status) or {}
    summary: dict[str, Any] = {
        "name": unit_name(unit),
        "unit": unit["metadata"]["name"],
        "path": spec.get("path"),
        "parent": spec.get("parent"),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason"),
        "message": ready.get("message", ""),
        "lastAppliedRevision": status.get("lastAppliedRevision"),
        "lastAttemptedRevision": status.get("lastAttemptedRevision"),
        "suspended": is_suspended(unit),
        "objects": int(status.get("inventorySize") or 0),
        "driftCount": int(status.get("driftCount") or 0),
        "lastDriftAt": status.get("lastDriftAt"),
        "warnings": list(status.get("warnings") or []),
        "createdAt": (unit.get("metadata") or {}).get("creationTimestamp"),
    }
    if "source" in status:
        summary["source"] = status["source"]
    return summary


def _one_line(text: str) -> str:
    return " ".join(text.split())


def event_time(event: Object) -> str:
    """When an Event last happened, whichever of the API's time fields is set."""
    series = event.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def is_unit_event(event: Object, resource_name: str | None = None) -> bool:
    involved = event.get("involvedObject") or {}
    if involved.get("kind") != unit_api.KIND:
        return False
    if not str(involved.get("apiVersion", "")).startswith(f"{unit_api.GROUP}/"):
        return False
    return resource_name is None or involved.get("name") == resource_name


def event_row(event: Object, now: datetime.datetime) -> list[str]:
    """LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""
    involved = event.get("involvedObject") or {}
    return [
        age(event_time(event), now),
        str(event.get("type", "")),
        str(event.get("reason", "")),
        unit_label(str(involved.get("name", ""))),
        _one_line(str(event.get("message", ""))),
    ]


EVENT_HEADERS = ("last seen", "type", "reason", "object", "message")


def event_summary(event: Object) -> dict[str, Any]:
    involved = event.get("involvedObject") or {}
    return {
        "time": event_time(event),
        "type": event.get("type"),
        "reason": event.get("reason"),
        "unit": display_name(str(involved.get("name", ""))),
        "message": event.get("message", ""),
        "count": event.get("count", 1),
    }


def object_label(kind: str, namespace: str, name: str) -> str:
    """``Deployment/apps/web``, ``Namespace/apps``: Flux's way of naming an object."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def entry_label(entry: InventoryEntry) -> str:
    return object_label(entry.key.kind, entry.key.namespace, entry.key.name)


@dataclasses.dataclass(frozen=True)
class TreeNode:
    label: str
    children: tuple[TreeNode, ...] = ()


def unit_tree(unit: Object, units: Sequence[Object]) -> TreeNode:
    """What ``unit`` owns (its inventory) and, nested, the child units it defines."""
    children_of: dict[str, list[Object]] = {}
    for other in units:
        parent = (other.get("spec") or {}).get("parent")
        if parent:
            children_of.setdefault(str(parent), []).append(other)

    def label(node: Object) -> str:
        return unit_label(str((node.get("metadata") or {}).get("name", "")))

    def build(node: Object, seen: frozenset[str]) -> TreeNode:
        mine = label(node)
        owned = [TreeNode(entry_label(e)) for e in inventory_from_status(node.get("status"))]
        # Only Kustomizations define child units; a HelmRelease may share their key.
        parent = mine.startswith(f"{UNIT_KIND_LABEL}/")
        nested = [
            build(child, seen | {mine})
            for child in sort_units(children_of.get(unit_key(node), []) if parent else [])
            if label(child) not in seen | {mine}
        ]
        return TreeNode(mine, tuple(owned + nested))

    return build(unit, frozenset())


def render_tree(root: TreeNode) -> list[str]:
    """``tree``-style lines: ``├──``, ``└──`` and ``│`` guides, as ``flux tree`` prints."""
    lines = [root.label]

    def walk(node: TreeNode, prefix: str) -> None:
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child.label}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")
    return lines


def tree_summary(unit: Object, units: Sequence[Object]) -> list[dict[str, Any]]:
    """``fleet tree -o json|yaml``: each unit of the tree once, with its parent and objects."""
    children_of: dict[str, list[Object]] = {}
    for other in units:
        parent = (other.get("spec") or {}).get("parent")
        if parent:
            children_of.setdefault(str(parent), []).append(other)
    flat: list[dict[str, Any]] = []
    pending: list[tuple[Object, str | None]] = [(unit, None)]
    seen: set[str] = set()
    while pending:
        node, parent = pending.pop(0)
        label = unit_label(str((node.get("metadata") or {}).get("name", "")))
        if label in seen:
            continue
        seen.add(label)
        flat.append(
            {
                "unit": unit_name(node),
                "parent": parent,
                "objects": [
                    {
                        "id": e.key.to_inventory_id(),
                        "apiVersion": e.api_version,
                        "kind": e.key.kind,
                        "namespace": e.key.namespace or None,
                        "name": e.key.name,
                    }
                    for e in inventory_from_status(node.get("status"))
                ],
            }
        )
        if label.startswith(f"{UNIT_KIND_LABEL}/"):  # only Kustomizations define units
            children = sort_units(children_of.get(unit_key(node), []))
            pending.extend((child, unit_name(node)) for child in children)
    return flat
