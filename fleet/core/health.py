"""Is an object healthy? kstatus rules, as Flux's ``wait`` and ``healthChecks`` use them.

A pure function of the live object: built-in workloads by their status counters,
everything else by the generic conventions (observedGeneration, ``Ready``, ``Stalled`` and
``Reconciling`` conditions). Mirrors sigs.k8s.io/cli-utils/pkg/kstatus.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

Object = Mapping[str, Any]


class HealthStatus(enum.StrEnum):
    CURRENT = "Current"
    """The object has reached its desired state."""
    IN_PROGRESS = "InProgress"
    """Still converging; waiting longer may help."""
    FAILED = "Failed"
    """Converging has failed (e.g. progress deadline exceeded); waiting will not help."""
    TERMINATING = "Terminating"
    NOT_FOUND = "NotFound"


@dataclasses.dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str

    @property
    def ready(self) -> bool:
        return self.status is HealthStatus.CURRENT


def _current(message: str) -> Health:
    return Health(HealthStatus.CURRENT, message)


def _progress(message: str) -> Health:
    return Health(HealthStatus.IN_PROGRESS, message)


def _failed(message: str) -> Health:
    return Health(HealthStatus.FAILED, message)


def conditions(obj: Object) -> dict[str, Mapping[str, Any]]:
    """The object's status conditions by type."""
    found = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in found if isinstance(c, Mapping) and "type" in c}


def _is_true(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _is_false(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "False"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _deployment(obj: Object) -> Health:
    """kstatus's rules, as Flux's ``wait`` applies them: the replica counts, and then the
    controller's own verdict (Progressing with NewReplicaSetAvailable, Available), also
    for a Deployment scaled to zero; so a Deployment its controller has not yet seen is
    never Current."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    found = conditions(obj)
    progressing_condition = found.get("Progressing")
    if progressing_condition and progressing_condition.get("reason") == "ProgressDeadlineExceeded":
        message = progressing_condition.get("message", "")
        return _failed(f"progress deadline exceeded: {message}".strip())
    if spec.get("paused"):
        return _current("Deployment is paused")
    # Without a progress deadline the controller never sets Progressing (kstatus).
    progressing = "progressDeadlineSeconds" not in spec or (
        _is_true(progressing_condition)
        and progressing_condition is not None
        and progressing_condition.get("reason") == "NewReplicaSetAvailable"
    )
    wanted = _int(spec.get("replicas", 1))
    replicas = _int(status.get("replicas"))
    updated = _int(status.get("updatedReplicas"))
    ready = _int(status.get("readyReplicas"))
    available = _int(status.get("availableReplicas"))
    if wanted > replicas:
        return _progress(f"Replicas: {replicas}/{wanted}")
    if wanted > updated:
        return _progress(f"Updated: {updated}/{wanted}")
    if replicas > wanted:
        return _progress(f"Pending termination: {replicas - wanted}")
    if updated > available:
        return _progress(f"Available: {available}/{updated}")
    if wanted > ready:
        return _progress(f"Ready: {ready}/{wanted}")
    if not progressing:
        return _progress("ReplicaSet not Available")
    if not _is_true(found.get("Available")):
        return _progress("Deployment not Available")
    return _current(f"Deployment is available. Replicas: {replicas}")


def _statefulset(obj: Object) -> Health:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return _current("StatefulSet is using the OnDelete strategy")
    wanted = spec.get("replicas", 1)
    ready = _int(status.get("readyReplicas"))
    replicas = _int(status.get("replicas"))
    if replicas < wanted:
        return _progress(f"Replicas: {replicas}/{wanted}")
    if ready < wanted:
        return _progress(f"Ready: {ready}/{wanted}")
    partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0)
    updated = _int(status.get("updatedReplicas"))
    if partition:
        if updated < wanted - partition:
            return _progress(f"Partitioned roll out: {updated}/{wanted - partition}")
        return _current(f"Partitioned roll out complete: {updated} updated")
    if status.get("currentRevision") != status.get("updateRevision"):
        return _progress(f"Updated: {updated}/{wanted}")
    return _current(f"All replicas scheduled as expected. Replicas: {replicas}")


def _daemonset(obj: Object) -> Health:
    status = obj.get("status") or {}
    desired = _int(status.get("desiredNumberScheduled"))
    for field, label in (
        ("currentNumberScheduled", "Scheduled"),
        ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"),
        ("numberReady", "Ready"),
    ):
        value = _int(status.get(field))
        if value < desired:
            return _progress(f"{label}: {value}/{desired}")
    return _current(f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: Object) -> Health:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = spec.get("replicas", 1)
    for field, label in (
        ("replicas", "Replicas"),
        ("readyReplicas", "Ready"),
        ("availableReplicas", "Available"),
    ):
        value = _int(status.get(field))
        if value < wanted:
            return _progress(f"{label}: {value}/{wanted}")
    return _current(f"ReplicaSet is available. Replicas: {wanted}")


def _job(obj: Object) -> Health:
    found = conditions(obj)
    if _is_true(found.get("Failed")):
        return _failed(f"Job failed: {found['Failed'].get('message', '')}".strip())
    if _is_true(found.get("Complete")):
        return _current("Job completed")
    status = obj.get("status") or {}
    active, succeeded = _int(status.get("active")), _int(status.get("succeeded"))
    return _progress(f"Job in progress: active {active}, succeeded {succeeded}")


def _pod(obj: Object) -> Health:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return _current("Pod has completed successfully")
    if phase == "Failed":
        return _failed("Pod has failed")
    if phase == "Running" and _is_true(conditions(obj).get("Ready")):
        return _current("Pod is Ready")
    return _progress(f"Pod phase: {phase or 'Pending'}")


def _pvc(obj: Object) -> Health:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return _current("PVC is Bound")
    return _progress(f"PVC is not Bound, phase: {phase or 'Pending'}")


def _service(obj: Object) -> Health:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("type") == "LoadBalancer" and not (status.get("loadBalancer") or {}).get("ingress"):
        return _progress("LoadBalancer has no ingress address yet")
    return _current("Service is ready")


def _crd(obj: Object) -> Health:
    found = conditions(obj)
    if _is_false(found.get("NamesAccepted")):
        return _failed(
            f"CRD names not accepted: {found['NamesAccepted'].get('message', '')}".strip()
        )
    if _is_true(found.get("Established")):
        return _current("CRD is established")
    return _progress("CRD is not established yet")


def _pdb(obj: Object) -> Health:
    status = obj.get("status") or {}
    healthy, desired = _int(status.get("currentHealthy")), _int(status.get("desiredHealthy"))
    if healthy < desired:
        return _progress(f"Healthy: {healthy}/{desired}")
    return _current(f"Budget is met. Healthy: {healthy}")


_BY_KIND: dict[tuple[str, str], Callable[[Object], Health]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("policy", "PodDisruptionBudget"): _pdb,
}


def _group(obj: Object) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def assess(obj: Object | None) -> Health:
    """The health of one live object (``None`` when it does not exist)."""
    if obj is None:
        return Health(HealthStatus.NOT_FOUND, "object not found")
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return Health(HealthStatus.TERMINATING, "object is being deleted")
    status = obj.get("status") or {}
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return _progress(f"observed generation {observed} is behind generation {generation}")
    found = conditions(obj)
    if _is_true(found.get("Stalled")):
        return _failed(str(found["Stalled"].get("message") or "Stalled"))
    if _is_true(found.get("Reconciling")):
        return _progress(str(found["Reconciling"].get("message") or "Reconciling"))
    specific = _BY_KIND.get((_group(obj), str(obj.get("kind", ""))))
    if specific:
        return specific(obj)
    ready = found.get("Ready")
    if _is_false(ready):
        assert ready is not None
        return _progress(
            f"{ready.get('reason', 'NotReady')}: {ready.get('message', '')}".rstrip(": ")
        )
    if ready is not None and ready.get("status") == "Unknown":
        return _progress(str(ready.get("message") or "Ready condition is Unknown"))
    return _current("Resource is current")
