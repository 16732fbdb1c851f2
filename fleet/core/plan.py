"""Ordering: which units may run (dependsOn) and in which stages objects are applied.

Pure functions over plain data. A unit is identified by any hashable key (the agent uses
``namespace/name``); objects are manifests as dicts.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclasses.dataclass(frozen=True)
class DependencyProblems(Generic[K]):
    """Per-unit dependency errors; a unit not listed here has a valid dependency graph."""

    cycles: dict[K, tuple[K, ...]]
    """Each unit on a cycle, mapped to the members of its cycle (sorted by str)."""
    missing: dict[K, tuple[K, ...]]
    """Each unit mapped to the dependencies it names that do not exist."""

    def message(self, unit: K) -> str | None:
        if unit in self.cycles:
            members = " -> ".join(map(str, self.cycles[unit]))
            return f"dependency cycle: {members}"
        if unit in self.missing:
            names = ", ".join(map(str, self.missing[unit]))
            return f"dependency not found: {names}"
        return None

    def __bool__(self) -> bool:
        return bool(self.cycles or self.missing)


def find_dependency_problems(depends_on: Mapping[K, Sequence[K]]) -> DependencyProblems[K]:
    """Cycles (strongly connected components, self-loops included) and missing dependencies."""
    missing = {
        unit: tuple(d for d in deps if d not in depends_on)
        for unit, deps in depends_on.items()
        if any(d not in depends_on for d in deps)
    }
    cycles: dict[K, tuple[K, ...]] = {}
    for component in _strongly_connected(depends_on):
        first = next(iter(component))
        if len(component) > 1 or first in depends_on.get(first, ()):
            members = tuple(sorted(component, key=str))
            for unit in component:
                cycles[unit] = members
    return DependencyProblems(cycles, missing)


def _strongly_connected(graph: Mapping[K, Sequence[K]]) -> list[set[K]]:
    """Tarjan's algorithm, iterative so that deep chains cannot hit the recursion limit."""
    index: dict[K, int] = {}
    low: dict[K, int] = {}
    on_stack: set[K] = set()
    stack: list[K] = []
    components: list[set[K]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[K, Iterable[K]]] = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[K] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def dependency_order(depends_on: Mapping[K, Sequence[K]]) -> list[K]:
    """Units with their dependencies first; of the units free to go, the earliest in input wins.

    Units with dependency problems and those that depend on them come last.
    """
    problems = find_dependency_problems(depends_on)
    position = {unit: i for i, unit in enumerate(depends_on)}
    healthy = [u for u in depends_on if problems.message(u) is None]
    waiting_on = {u: len(set(depends_on[u])) for u in healthy}
    dependents: dict[K, list[K]] = {}
    for unit in healthy:
        for dependency in set(depends_on[unit]):
            dependents.setdefault(dependency, []).append(unit)
    ready = [(position[u], u) for u in healthy if waiting_on[u] == 0]
    heapq.heapify(ready)
    placed: dict[K, None] = {}
    while ready:
        _, unit = heapq.heappop(ready)
        placed[unit] = None
        for dependent in dependents.get(unit, ()):
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                heapq.heappush(ready, (position[dependent], dependent))
    return [*placed, *(u for u in depends_on if u not in placed)]


def blocking_dependencies(
    unit: K, depends_on: Mapping[K, Sequence[K]], ready: Mapping[K, bool]
) -> list[K]:
    """The direct dependencies of ``unit`` that are not Ready yet (Flux: DependencyNotReady)."""
    return [d for d in depends_on.get(unit, ()) if not ready.get(d, False)]


_FIRST_STAGE_KINDS = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("", "Namespace"),
}
_SECOND_STAGE_KINDS = {
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("", "ServiceAccount"),
    ("storage.k8s.io", "StorageClass"),
    ("networking.k8s.io", "IngressClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
}


def _group_kind(obj: Mapping[str, Any]) -> tuple[str, str]:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group, str(obj.get("kind", ""))


def apply_stages(objects: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Split objects into apply stages, as Flux's server-side apply does.

    Stage one holds CRDs and Namespaces (CRDs must be Established before their custom
    resources can be applied); stage two the cluster-wide definitions and access objects
    that workloads need; stage three everything else. Empty stages are left out.
    """
    stages: list[list[Mapping[str, Any]]] = [[], [], []]
    for obj in objects:
        key = _group_kind(obj)
        if key in _FIRST_STAGE_KINDS:
            stages[0].append(obj)
        elif key in _SECOND_STAGE_KINDS:
            stages[1].append(obj)
        else:
            stages[2].append(obj)
    return [stage for stage in stages if stage]
