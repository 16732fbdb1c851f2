from __future__ import annotations

from fleet.core.plan import (
    apply_stages,
    blocking_dependencies,
    dependency_order,
    find_dependency_problems,
)


def test_dependencies_come_first_and_otherwise_input_order_wins() -> None:
    graph = {"apps": ["infra", "crds"], "infra": ["crds"], "crds": [], "monitoring": []}
    assert dependency_order(graph) == ["crds", "infra", "apps", "monitoring"]


def test_cycle_is_reported_on_every_member_only() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": [], "e": ["a"]}
    problems = find_dependency_problems(graph)
    assert set(problems.cycles) == {"a", "b", "c"}
    assert problems.message("a") == "dependency cycle: a -> b -> c"
    assert problems.message("d") is None
    assert problems.message("e") is None  # e is blocked by a, not itself broken
    assert dependency_order(graph)[:1] == ["d"]


def test_self_dependency_is_a_cycle() -> None:
    problems = find_dependency_problems({"a": ["a"]})
    assert problems.message("a") == "dependency cycle: a"


def test_missing_dependency_is_named() -> None:
    problems = find_dependency_problems({"apps": ["infra", "ghost"], "infra": []})
    assert problems.message("apps") == "dependency not found: ghost"
    assert bool(problems)


def test_long_chain_does_not_recurse_too_deep() -> None:
    graph = {i: [i + 1] for i in range(5000)} | {5000: []}
    assert not find_dependency_problems(graph)
    assert dependency_order(graph)[0] == 5000


def test_blocking_dependencies_are_those_not_ready() -> None:
    graph = {"apps": ["infra", "crds"]}
    assert blocking_dependencies("apps", graph, {"infra": True, "crds": False}) == ["crds"]


def test_crds_and_namespaces_are_applied_before_what_needs_them() -> None:
    objects = [
        {"apiVersion": "example.com/v1", "kind": "Widget"},
        {"apiVersion": "apps/v1", "kind": "Deployment"},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"},
        {"apiVersion": "v1", "kind": "Namespace"},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"},
    ]
    stages = apply_stages(objects)
    assert [[o["kind"] for o in stage] for stage in stages] == [
        ["Namespace", "CustomResourceDefinition"],
        ["ClusterRole"],
        ["Widget", "Deployment"],
    ]
