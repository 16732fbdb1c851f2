"""What the live cache keeps of a watched object."""

from __future__ import annotations

from agent.livecache import LiveCache, without_field_sets
from fleet.core.manifests import ObjectKey


def test_field_sets_go_and_who_wrote_when_stays() -> None:
    live = {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "managedFields": [
                {
                    "manager": "fleet-agent",
                    "operation": "Apply",
                    "time": "2026-11-26T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                },
                {"manager": "kubectl", "operation": "Update", "time": "2026-11-26T10:05:00Z"},
            ],
        },
        "spec": {"replicas": 2},
    }
    kept = without_field_sets(live)
    assert kept["metadata"]["managedFields"] == [
        {
            "manager": "fleet-agent",
            "operation": "Apply",
            "time": "2026-11-26T10:00:00Z",
            "fieldsType": "FieldsV1",
        },
        {"manager": "kubectl", "operation": "Update", "time": "2026-11-26T10:05:00Z"},
    ]
    assert kept["spec"] is live["spec"]
    assert "fieldsV1" in live["metadata"]["managedFields"][0]  # the event itself is untouched
    assert without_field_sets({"metadata": {"name": "x"}}) == {"metadata": {"name": "x"}}


def test_cached_objects_are_copies_and_newer_versions_win() -> None:
    cache = LiveCache(client=None)  # type: ignore[arg-type]  # no watch runs here
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "7"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web"}]}}},
    }
    cache.remember(applied)
    key = ObjectKey.from_manifest(applied)
    first = cache.get(key)
    assert first == applied
    first["spec"]["replicas"] = 5  # a caller changing its copy changes nothing cached
    assert cache.get(key) == applied

    older = {**applied, "metadata": {**applied["metadata"], "resourceVersion": "6"}}
    older["spec"] = {"replicas": 1}
    cache.remember(older)
    assert cache.get(key) == applied  # an older answer never replaces a newer watch event
    newer = {**applied, "metadata": {**applied["metadata"], "resourceVersion": "8"}}
    cache.remember(newer)
    assert cache.get(key)["metadata"]["resourceVersion"] == "8"  # type: ignore[index]
    cache.forget(key)
    assert cache.get(key) is None and len(cache) == 0
