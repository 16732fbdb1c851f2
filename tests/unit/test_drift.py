from __future__ import annotations

import copy
from typing import Any

import pytest

from fleet.core import drift

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "500m"}},
                    }
                ]
            }
        },
    },
}


def live_from(desired: dict[str, Any], **changes: Any) -> dict[str, Any]:
    live = copy.deepcopy(desired)
    live["metadata"] |= {"resourceVersion": "42", "uid": "u", "managedFields": [{"manager": "x"}]}
    live["metadata"]["labels"]["pod-template-hash"] = "abc"
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 2}
    for key, value in changes.items():
        live["spec"][key] = value
    return live


def test_fields_the_agent_does_not_set_are_not_drift() -> None:
    live = live_from(DESIRED)
    applied = drift.fingerprint(live, DESIRED)
    later = live_from(DESIRED)
    later["metadata"]["resourceVersion"] = "43"
    later["status"] = {"replicas": 2, "readyReplicas": 2}
    assert drift.fingerprint(later, DESIRED) == applied
    assert list(drift.changed_fields(later, DESIRED)) == []


def test_a_changed_field_is_drift_and_is_named() -> None:
    applied = drift.fingerprint(live_from(DESIRED), DESIRED)
    scaled = live_from(DESIRED, replicas=5)
    assert drift.fingerprint(scaled, DESIRED) != applied
    assert [str(c) for c in drift.changed_fields(scaled, DESIRED)] == ["/spec/replicas: 2 -> 5"]


def test_server_normalization_is_not_drift_once_fingerprinted() -> None:
    normalized = live_from(DESIRED)
    normalized["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "0.5"
    assert not drift.contains(normalized, DESIRED)
    assert drift.fingerprint(normalized, DESIRED) == drift.fingerprint(normalized, DESIRED)


def test_an_added_list_element_is_drift() -> None:
    live = live_from(DESIRED)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert drift.fingerprint(live, DESIRED) != drift.fingerprint(live_from(DESIRED), DESIRED)
    changes = list(drift.changed_fields(live, DESIRED))
    assert [c.path for c in changes] == ["/spec/template/spec/containers/1"]


def test_contains_is_a_subset_check() -> None:
    assert drift.contains(live_from(DESIRED), DESIRED)
    assert not drift.contains(live_from(DESIRED, replicas=1), DESIRED)
    assert not drift.contains(None, DESIRED)


def test_ignored_paths_take_the_live_value() -> None:
    live = live_from(DESIRED, replicas=7)
    kept = drift.keep_live_values(DESIRED, live, ["/spec/replicas", "/spec/absent/field"])
    assert kept["spec"]["replicas"] == 7
    assert DESIRED["spec"]["replicas"] == 2
    assert drift.keep_live_values(DESIRED, None, ["/spec/replicas"])["spec"]["replicas"] == 2


def test_ignore_paths_must_be_json_pointers() -> None:
    with pytest.raises(ValueError, match="JSON pointer"):
        drift.keep_live_values(DESIRED, live_from(DESIRED), ["spec.replicas"])


def test_a_secrets_changed_values_are_named_by_path_but_never_shown() -> None:
    desired = {"apiVersion": "v1", "kind": "Secret", "data": {"password": "c2VjcmV0LXZhbHVl"}}
    live = {"apiVersion": "v1", "kind": "Secret", "data": {"password": "dGFtcGVyZWQ="}}
    (change,) = drift.changed_fields(live, desired)
    assert str(change) == "/data/password: (Secret value hidden)"
    assert "c2VjcmV0" not in str(change) and "dGFtcGVy" not in str(change)
    configmap = {**desired, "kind": "ConfigMap"}
    assert "c2VjcmV0" in str(next(drift.changed_fields({**live, "kind": "ConfigMap"}, configmap)))
