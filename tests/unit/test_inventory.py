from __future__ import annotations

from typing import Any

from fleet.core import inventory
from fleet.core.inventory import InventoryEntry, plan_prune


def obj(kind: str, name: str, namespace: str = "apps", api_version: str = "v1") -> dict[str, Any]:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def entries(*objects: dict[str, Any]) -> list[InventoryEntry]:
    return inventory.inventory_of(objects)


def test_inventory_round_trips_through_status_in_flux_format() -> None:
    owned = entries(obj("Namespace", "apps", ""), obj("Deployment", "web", api_version="apps/v1"))
    status = inventory.inventory_to_status(owned)
    assert status == {
        "entries": [
            {"id": "_apps__Namespace", "v": "v1"},
            {"id": "apps_web_apps_Deployment", "v": "v1"},
        ]
    }
    assert inventory.inventory_from_status({"inventory": status}) == owned


def test_malformed_stored_entries_are_skipped() -> None:
    stored = {
        "inventory": {"entries": [{"id": "garbage"}, {"id": "apps_web_apps_Deployment", "v": "v1"}]}
    }
    assert [e.key.name for e in inventory.inventory_from_status(stored)] == ["web"]


def test_stale_objects_are_deleted_workloads_first_namespaces_last() -> None:
    before = entries(
        obj("Namespace", "apps", ""),
        obj("ClusterRole", "reader", "", "rbac.authorization.k8s.io/v1"),
        obj("Deployment", "web", api_version="apps/v1"),
        obj("ConfigMap", "kept"),
    )
    after = entries(obj("ConfigMap", "kept"))
    decision = plan_prune(before, after)
    assert decision.refused is None
    assert [e.key.kind for e in decision.delete] == ["Deployment", "ClusterRole", "Namespace"]


def test_an_api_version_change_is_not_a_prune() -> None:
    before = entries(obj("HorizontalPodAutoscaler", "web", api_version="autoscaling/v1"))
    after = entries(obj("HorizontalPodAutoscaler", "web", api_version="autoscaling/v2"))
    assert plan_prune(before, after).delete == []


def test_empty_render_never_prunes_everything_by_default() -> None:
    before = entries(obj("ConfigMap", "a"))
    decision = plan_prune(before, [])
    assert decision.delete == []
    assert decision.refused and "renders no objects" in decision.refused
    assert [e.key.name for e in plan_prune(before, [], allow_mass_prune=True).delete] == ["a"]


def test_losing_most_of_a_large_unit_is_refused() -> None:
    before = entries(*(obj("ConfigMap", f"c{i}") for i in range(20)))
    after = before[:5]
    decision = plan_prune(before, after)
    assert decision.delete == [] and decision.refused and "15 of 20" in decision.refused
    assert len(plan_prune(before, before[:12]).delete) == 8


def test_prune_opt_out_and_apply_policy_annotations() -> None:
    kept = obj("ConfigMap", "a") | {
        "metadata": {"name": "a", "annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"}}
    }
    assert inventory.prune_disabled(kept)
    assert not inventory.prune_disabled(obj("ConfigMap", "b"))
    assert not inventory.prune_disabled(None)
    ignored = {"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}}}
    assert inventory.apply_policy(ignored) == "Ignore"
    assert inventory.apply_policy(obj("ConfigMap", "c")) == "Override"
