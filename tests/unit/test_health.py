from __future__ import annotations

from typing import Any

import pytest

from fleet.core.health import HealthStatus, assess

CURRENT, PROGRESS, FAILED = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.FAILED


def deployment(wanted: int = 2, generation: int = 1, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": wanted},
        "status": {"observedGeneration": 1, **status},
    }


AVAILABLE = [{"type": "Available", "status": "True"}]

CASES: list[tuple[str, dict[str, Any] | None, HealthStatus]] = [
    ("missing object", None, HealthStatus.NOT_FOUND),
    (
        "deployment fully rolled out",
        deployment(
            replicas=2,
            updatedReplicas=2,
            readyReplicas=2,
            availableReplicas=2,
            conditions=AVAILABLE,
        ),
        CURRENT,
    ),
    ("deployment not yet observed", deployment(generation=2), PROGRESS),
    (
        "deployment with too few updated replicas",
        deployment(
            wanted=3, updatedReplicas=1, readyReplicas=1, availableReplicas=1, conditions=AVAILABLE
        ),
        PROGRESS,
    ),
    (
        "deployment past its progress deadline",
        deployment(
            conditions=[
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ]
        ),
        FAILED,
    ),
    (
        "deployment scaled to zero, seen by its controller",
        deployment(
            wanted=0,
            conditions=[
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        )
        | {"spec": {"replicas": 0, "progressDeadlineSeconds": 600}},
        CURRENT,
    ),
    (
        # kstatus (Flux's wait): a Deployment its controller has not processed is not
        # Current, even with nothing to run.
        "deployment scaled to zero, not yet seen by its controller",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 0, "progressDeadlineSeconds": 600},
        },
        PROGRESS,
    ),
    (
        "deployment whose new ReplicaSet is not available yet",
        deployment(
            replicas=2,
            updatedReplicas=2,
            readyReplicas=2,
            availableReplicas=2,
            conditions=[
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
            ],
        )
        | {"spec": {"replicas": 2, "progressDeadlineSeconds": 600}},
        PROGRESS,
    ),
    (
        "deployment with old replicas still terminating",
        deployment(replicas=3, updatedReplicas=2, availableReplicas=2, readyReplicas=2),
        PROGRESS,
    ),
    (
        "statefulset mid update",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"generation": 1},
            "spec": {"replicas": 1},
            "status": {
                "observedGeneration": 1,
                "replicas": 1,
                "readyReplicas": 1,
                "currentRevision": "a",
                "updateRevision": "b",
            },
        },
        PROGRESS,
    ),
    (
        "daemonset with a pod not ready",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "status": {
                "desiredNumberScheduled": 2,
                "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
                "numberReady": 1,
            },
        },
        PROGRESS,
    ),
    (
        "failed job",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "status": {
                "conditions": [
                    {"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}
                ]
            },
        },
        FAILED,
    ),
    (
        "complete job",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "status": {"conditions": [{"type": "Complete", "status": "True"}]},
        },
        CURRENT,
    ),
    (
        "pending pvc",
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}},
        PROGRESS,
    ),
    (
        "bound pvc",
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}},
        CURRENT,
    ),
    (
        "clusterip service",
        {"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}},
        CURRENT,
    ),
    (
        "loadbalancer without address",
        {"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}},
        PROGRESS,
    ),
    (
        "established crd",
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        },
        CURRENT,
    ),
    (
        "custom resource not ready",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "Broken", "message": "no"}
                ]
            },
        },
        PROGRESS,
    ),
    (
        "custom resource stalled",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "status": {"conditions": [{"type": "Stalled", "status": "True", "message": "gave up"}]},
        },
        FAILED,
    ),
    ("custom resource without status", {"apiVersion": "example.com/v1", "kind": "Widget"}, CURRENT),
    ("configmap", {"apiVersion": "v1", "kind": "ConfigMap", "data": {}}, CURRENT),
    (
        "object being deleted",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
        },
        HealthStatus.TERMINATING,
    ),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_health_follows_kstatus_rules(obj: dict[str, Any] | None, expected: HealthStatus) -> None:
    assert assess(obj).status is expected


def test_health_message_names_what_is_missing() -> None:
    health = assess(deployment(wanted=3, replicas=3, updatedReplicas=1, conditions=AVAILABLE))
    assert health.message == "Updated: 1/3"
    assert not health.ready
