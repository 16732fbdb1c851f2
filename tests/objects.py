"""Kubernetes and Flux objects as plain dicts, and the YAML a test commits them as."""

from __future__ import annotations

from typing import Any

import yaml


def manifest(*objects: dict[str, Any]) -> str:
    """The objects as one multi-document YAML file, keys in the order written."""
    return yaml.safe_dump_all(objects, sort_keys=False)


def configmap(namespace: str | None, name: str, **data: str) -> dict[str, Any]:
    """A ConfigMap; without a namespace, so that a unit's targetNamespace can place it."""
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def deployment(
    namespace: str,
    name: str,
    *,
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
    **pod_spec: Any,
) -> dict[str, Any]:
    """A one-container Deployment; pod annotations and pod_spec fields change its pods."""
    labels = {"app": name}
    pod_metadata: dict[str, Any] = {"labels": labels}
    if annotations is not None:
        pod_metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": pod_metadata,
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **pod_spec},
            },
        },
    }


def kustomization(name: str, path: str, *, interval: str = "10m", **spec: Any) -> dict[str, Any]:
    """A Flux Kustomization from the bootstrap repository: a child unit for the agent."""
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": interval,
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            **spec,
        },
    }
