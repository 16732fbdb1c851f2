"""Flux's "mean time to production" workload: N apps, each a Kustomization of a Deployment
scaled to zero, a ServiceAccount, a Service and an Ingress (fluxcd/flux-benchmark)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from fleet.localkube.gitserver import git_env

NAMESPACE = "mttp"


def _dump(*objects: dict[str, object]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def app_objects(index: int) -> list[dict[str, object]]:
    name = f"app-{index:04d}"
    labels = {"app": name}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": "app",
                                "image": "ghcr.io/stefanprodan/podinfo:6.7.1",
                                "ports": [{"name": "http", "containerPort": 9898}],
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name},
            "spec": {
                "rules": [
                    {
                        "host": f"{name}.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": name, "port": {"name": "http"}}
                                    },
                                }
                            ]
                        },
                    }
                ]
            },
        },
    ]


def kustomization(index: int, interval: str) -> dict[str, object]:
    name = f"app-{index:04d}"
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": interval,
            "retryInterval": "10s",
            "path": f"./apps/{name}",
            "prune": True,
            "wait": True,
            "timeout": "5m",
            "targetNamespace": NAMESPACE,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }


def write_repository(
    root: Path, apps: int, *, cluster: str = "bench", interval: str = "60m"
) -> None:
    """Write the workload into a working tree at ``root`` (files only, no Git)."""
    cluster_dir = root / "clusters" / cluster
    cluster_dir.mkdir(parents=True, exist_ok=True)
    (cluster_dir / "namespace.yaml").write_text(
        _dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    )
    (cluster_dir / "apps.yaml").write_text(
        _dump(*(kustomization(i, interval) for i in range(apps)))
    )
    for index in range(apps):
        app_dir = root / "apps" / f"app-{index:04d}"
        app_dir.mkdir(parents=True, exist_ok=True)
        (app_dir / "app.yaml").write_text(_dump(*app_objects(index)))


def git(work: Path, *args: str) -> str:
    """Run git in a working clone of the workload repository; its output."""
    return subprocess.run(
        ["git", *args], cwd=work, check=True, env=git_env(), capture_output=True, text=True
    ).stdout.strip()


def commit_apps(work: Path, apps: int, interval: str) -> str:
    """Write ``apps`` apps into the working clone and commit them (not pushed: the caller
    starts its clock at the push); the commit's SHA."""
    write_repository(work, apps, interval=interval)
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", f"{apps} apps")
    return git(work, "rev-parse", "HEAD")
