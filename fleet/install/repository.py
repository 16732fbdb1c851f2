"""Commit the agent's install manifests to the fleet repository, so it manages itself.

``commit_manifests`` writes ``clusters/<name>/fleet-system/`` (the manifests and a
kustomization listing them), adds the cluster to ``fleet.yaml`` (creating it when missing)
and lists ``fleet-system`` in the cluster folder's own kustomization if it has one. It
commits only when something changed, so a re-run is a no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fleet.install import objects
from fleet.source import GitAuth
from fleet.source.push import BranchWriter, FileReader, PushResult

FLEET_FILE = "fleet.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def manifest_path(cluster: str) -> str:
    return f"clusters/{cluster}/fleet-system/fleet-agent.yaml"


def changes(read: FileReader, options: objects.InstallOptions) -> dict[str, bytes | None]:
    """The files to write at a branch tip whose files ``read`` returns (pure but for read)."""
    folder = f"clusters/{options.cluster}"
    wanted: dict[str, bytes] = {
        manifest_path(options.cluster): objects.to_yaml(objects.manifests(options)).encode(),
        f"{folder}/fleet-system/kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["fleet-agent.yaml"],
            },
            sort_keys=False,
        ).encode(),
    }
    fleet_file = with_cluster(read(FLEET_FILE), options.cluster)
    if fleet_file is not None:
        wanted[FLEET_FILE] = fleet_file
    for name in KUSTOMIZATION_FILES:
        path = f"{folder}/{name}"
        listing = with_resource(read(path), "fleet-system")
        if listing is not None:
            wanted[path] = listing
    return {path: content for path, content in wanted.items() if read(path) != content}


def with_cluster(current: bytes | None, cluster: str) -> bytes | None:
    """fleet.yaml with ``cluster`` listed; None when it already is."""
    if current is None:
        config: dict[str, Any] = {
            "apiVersion": "fleet.dev/v1alpha1",
            "kind": "Fleet",
            "metadata": {"name": "fleet"},
            "clusters": [{"name": cluster}],
        }
        return yaml.safe_dump(config, sort_keys=False).encode()
    config = yaml.safe_load(current) or {}
    clusters = config.setdefault("clusters", [])
    if any(entry.get("name") == cluster for entry in clusters):
        return None
    clusters.append({"name": cluster})
    return yaml.safe_dump(config, sort_keys=False).encode()


def with_resource(current: bytes | None, resource: str) -> bytes | None:
    """A kustomization listing ``resource``; None when absent or listing it already."""
    if current is None:
        return None
    document = yaml.safe_load(current) or {}
    resources = document.setdefault("resources", [])
    if resource in resources or f"./{resource}" in resources:
        return None
    resources.append(resource)
    return yaml.safe_dump(document, sort_keys=False).encode()


def commit_manifests(
    url: str,
    branch: str,
    auth: GitAuth,
    options: objects.InstallOptions,
    *,
    cache_dir: Path,
) -> PushResult:
    """Commit the layout and manifests on ``branch`` of ``url`` (no commit if unchanged)."""
    writer = BranchWriter(url, branch, auth, cache_dir=cache_dir)
    return writer.update(
        lambda read: changes(read, options),
        f"fleet bootstrap: agent manifests for cluster {options.cluster}",
    )
