"""Flux's source-controller and kustomize-controller as local processes, for the benchmarks.

Both run out of cluster against a local control plane, as its admin: they have no
``--kubeconfig`` flag (v1.9.6), so the kubeconfig is passed as ``KUBECONFIG``, which
controller-runtime reads before trying in-cluster config. No leader election, no event
recorder address, every port on 127.0.0.1; started by ``fleet.localkube.process.
ManagedProcess`` so they die with the benchmark. The CRDs come from the controllers' own
module source (``crds.yaml`` beside each binary, written by ``python -m
fleet.localkube.toolchain flux-controllers``).

Flags, and why:

- ``--concurrent``: source-controller 10, kustomize-controller 20, as fluxcd/flux-benchmark
  sets them (Flux's defaults are 2 and 4). Override with ``FLUX_SC_CONCURRENT`` and
  ``FLUX_KC_CONCURRENT``.
- ``--requeue-dependency=5s`` (default 30s): the workload has no ``dependsOn``, so this only
  matters if an apply fails and is retried.
- ``--log-level=error``: the fleet agent runs at ``warning`` in the benchmark; neither pays
  for a log line per reconcile.
- kube API client: Flux's defaults (``--kube-api-qps=50``, ``--kube-api-burst=300``).
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.localkube import toolchain
from fleet.localkube.gitserver import free_port
from fleet.localkube.process import ManagedProcess, wait_until

NAMESPACE = "flux-system"
SOURCE_CONCURRENT = int(os.environ.get("FLUX_SC_CONCURRENT", "10"))
KUSTOMIZE_CONCURRENT = int(os.environ.get("FLUX_KC_CONCURRENT", "20"))
REQUEUE_DEPENDENCY = "5s"
LOG_LEVEL = "error"


def crds() -> list[dict[str, Any]]:
    """Flux's CustomResourceDefinitions: source-controller's, then kustomize-controller's."""
    documents: list[dict[str, Any]] = []
    for tool in toolchain.FLUX_TOOLS:
        text = tool.path("crds.yaml").read_text()
        documents.extend(d for d in yaml.safe_load_all(text) if d)
    return documents


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class FluxControllers:
    source: ManagedProcess
    kustomize: ManagedProcess
    artifact_port: int
    health_ports: dict[str, int]
    metrics_ports: dict[str, int]

    @property
    def processes(self) -> tuple[ManagedProcess, ManagedProcess]:
        return (self.source, self.kustomize)

    def pids(self) -> dict[str, int]:
        found = {p.name: p.pid for p in self.processes}
        return {name: pid for name, pid in found.items() if pid is not None}

    def ready(self) -> bool:
        return all(
            _http_ok(f"http://127.0.0.1:{port}/readyz") for port in self.health_ports.values()
        )


def _common_flags(health: int, metrics: int, concurrent: int) -> list[str]:
    return [
        "--watch-all-namespaces=true",
        "--events-addr=",
        f"--health-addr=127.0.0.1:{health}",
        f"--metrics-addr=127.0.0.1:{metrics}",
        f"--concurrent={concurrent}",
        f"--requeue-dependency={REQUEUE_DEPENDENCY}",
        f"--log-level={LOG_LEVEL}",
    ]


@contextlib.contextmanager
def flux_controllers(kubeconfig: Path, state_dir: Path) -> Iterator[FluxControllers]:
    """Start both controllers against ``kubeconfig``; stop them (by PID) on exit.

    The Flux CRDs and the ``flux-system`` namespace must exist already: the controllers'
    informers fail to start without their CRDs.
    """
    for tool in toolchain.FLUX_TOOLS:
        toolchain.build(tool)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE}
    artifact = free_port()
    health = {"source-controller": free_port(), "kustomize-controller": free_port()}
    metrics = {"source-controller": free_port(), "kustomize-controller": free_port()}
    storage = state_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    source = ManagedProcess(
        "source-controller",
        [
            str(toolchain.SOURCE_CONTROLLER.path()),
            *_common_flags(
                health["source-controller"],
                metrics["source-controller"],
                SOURCE_CONCURRENT,
            ),
            f"--storage-path={storage}",
            f"--storage-addr=127.0.0.1:{artifact}",
            f"--storage-adv-addr=127.0.0.1:{artifact}",
        ],
        state_dir,
        env,
    )
    kustomize = ManagedProcess(
        "kustomize-controller",
        [
            str(toolchain.KUSTOMIZE_CONTROLLER.path()),
            *_common_flags(
                health["kustomize-controller"],
                metrics["kustomize-controller"],
                KUSTOMIZE_CONCURRENT,
            ),
        ],
        state_dir,
        env,
    )
    controllers = FluxControllers(source, kustomize, artifact, health, metrics)
    try:
        source.start()
        kustomize.start()
        wait_until(
            controllers.ready,
            timeout=120,
            what="source-controller and kustomize-controller /readyz",
            processes=controllers.processes,
            interval=0.2,
        )
        yield controllers
    finally:
        kustomize.stop()
        source.stop()


def git_repository(url: str, *, interval: str = "1s") -> dict[str, Any]:
    """The ``flux-system`` GitRepository that ``flux bootstrap`` would create."""
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": NAMESPACE},
        "spec": {"interval": interval, "url": url, "ref": {"branch": "main"}, "timeout": "60s"},
    }


def root_kustomization(path: str, *, interval: str = "10m") -> dict[str, Any]:
    """The ``flux-system`` Kustomization that syncs the cluster folder, as bootstrap does."""
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "flux-system", "namespace": NAMESPACE},
        "spec": {
            "interval": interval,
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }


def ready_at(obj: dict[str, Any], sha: str, *, revision_field: str = "lastAppliedRevision") -> bool:
    """Ready=True and the given revision field names commit ``sha`` (``main@sha1:<sha>``)."""
    status = obj.get("status") or {}
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    if revision_field == "artifact":
        revision = (status.get("artifact") or {}).get("revision", "")
    else:
        revision = status.get(revision_field, "")
    return ready.get("status") == "True" and str(revision).endswith(sha)
