"""What the live cache keeps of a watched object."""

from __future__ import annotations

from agent.livecache import without_field_sets


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
