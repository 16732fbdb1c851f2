"""Who changed a drifted field, from managedFields."""

from __future__ import annotations

from typing import Any

from fleet.core import managedfields

AGENT = "fleet-agent"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "managedFields": [
                {
                    "manager": AGENT,
                    "operation": "Apply",
                    "time": "2026-12-04T10:00:00Z",
                    "fieldsV1": {
                        "f:spec": {
                            "f:template": {
                                "f:spec": {
                                    "f:containers": {
                                        'k:{"name":"app"}': {".": {}, "f:name": {}},
                                    }
                                }
                            }
                        }
                    },
                },
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "subresource": "scale",
                    "time": "2026-12-04T10:05:00Z",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                },
                {
                    "manager": "kubectl-set",
                    "operation": "Update",
                    "time": "2026-12-04T10:06:00Z",
                    "fieldsV1": {
                        "f:spec": {
                            "f:template": {
                                "f:spec": {"f:containers": {'k:{"name":"app"}': {"f:image": {}}}}
                            }
                        }
                    },
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "subresource": "status",
                    "time": "2026-12-04T10:07:00Z",
                    "fieldsV1": {"f:status": {"f:replicas": {}}},
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "time": "2026-12-04T10:07:00Z",
                    "fieldsV1": {
                        "f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}
                    },
                },
            ],
        },
        "spec": {
            "replicas": 5,
            "template": {
                "spec": {"containers": [{"name": "side"}, {"name": "app", "image": "x:2"}]}
            },
        },
    }


def test_the_manager_of_a_scaled_field_is_kubectl_not_the_last_writer() -> None:
    live = deployment()
    assert managedfields.who_changed(live, ["/spec/replicas"], exclude=[AGENT]) == "kubectl"
    assert managedfields.last_writer(live, exclude=[AGENT]) == "kube-controller-manager"


def test_a_keyed_list_element_is_found_by_its_key_not_its_position() -> None:
    live = deployment()
    pointer = "/spec/template/spec/containers/1/image"
    assert managedfields.managers_of(live, [pointer], exclude=[AGENT]) == ["kubectl-set"]
    assert managedfields.managers_of(live, ["/spec/template/spec/containers/0/image"]) == []


def test_an_atomic_owner_owns_what_is_inside() -> None:
    fields = {"f:spec": {"f:args": {}}}
    assert managedfields.owns(fields, {"spec": {"args": ["a", "b"]}}, "/spec/args/1")


def test_a_removed_field_falls_back_to_the_last_writer() -> None:
    live = deployment()
    assert (
        managedfields.who_changed(live, ["/metadata/labels/team"], exclude=[AGENT])
        == "kube-controller-manager"
    )


def test_nobody_but_the_agent_means_no_name() -> None:
    live = {"metadata": {"managedFields": [{"manager": AGENT, "fieldsV1": {"f:spec": {}}}]}}
    assert managedfields.who_changed(live, ["/spec/x"], exclude=[AGENT]) is None
