"""What the agent deletes when things leave Git, and units fed by a second GitRepository,
against a real cluster and real Git transport (git daemon).

Flux's semantics: a Kustomization that leaves Git takes its objects with it per its
``deletionPolicy`` (``Delete`` always, ``Orphan`` never, ``MirrorPrune`` as ``prune`` says);
an object annotated ``kustomize.toolkit.fluxcd.io/prune: disabled`` survives its removal
from Git; a Kustomization may follow any GitRepository, not only the bootstrap one.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.loop import Agent
from fleet.api import unit as unit_api
from fleet.core.inventory import PRUNE_ANNOTATION
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests import objects
from tests.agentkit import eventually, ready_condition, running_agent, unit_status
from tests.gitservers import GitDaemon, WorkingClone, served_repo
from tests.objects import configmap, manifest

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("flux_system_namespace")]

kustomization = functools.partial(objects.kustomization, interval="1m", retryInterval="1s")


def unit_name(name: str) -> str:
    return unit_api.unit_resource_name("flux-system", name)


async def settled(kube: KubeClient, agent: Agent, unit: str, sha: str) -> dict[str, Any]:
    """The unit's status once it applied ``sha`` and is Ready."""

    async def check() -> dict[str, Any] | None:
        status = await unit_status(kube, agent, unit)
        applied = str(status.get("lastAppliedRevision", "")).endswith(sha)
        return status if applied and ready_condition(status).get("status") == "True" else None

    found: dict[str, Any] = await eventually(check, timeout=60, what=f"{unit} Ready at {sha[:8]}")
    return found


async def unit_gone(kube: KubeClient, agent: Agent, unit: str) -> bool:
    found = await kube.get(unit_api.API_VERSION, unit_api.KIND, unit, agent.settings.namespace)
    return found is None


async def test_deletion_policy_decides_what_a_removed_unit_takes_with_it(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    tag = uuid.uuid4().hex[:5]
    # name -> (spec, whether its ConfigMap outlives the unit)
    cases = {
        f"orphan-{tag}": ({"deletionPolicy": "Orphan", "prune": True}, True),
        f"delete-{tag}": ({"deletionPolicy": "Delete", "prune": False}, False),
        f"mirror-noprune-{tag}": ({"deletionPolicy": "MirrorPrune", "prune": False}, True),
        f"mirror-prune-{tag}": ({"deletionPolicy": "MirrorPrune", "prune": True}, False),
    }
    files = {}
    for name, (spec, _) in cases.items():
        files[f"clusters/dev/{name}.yaml"] = manifest(
            kustomization(name, f"./{name}", targetNamespace=namespace, **spec)
        )
        files[f"{name}/cm.yaml"] = manifest(configmap(None, f"{name}-cm"))
    sha = repo.commit(files)
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        for name in cases:
            await settled(kube, agent, unit_name(name), sha)
            assert await kube.get("v1", "ConfigMap", f"{name}-cm", namespace) is not None
        removal = {f"clusters/dev/{name}.yaml": None for name in cases}
        repo.commit(removal | {"clusters/dev/keep.yaml": manifest(configmap(namespace, "keep"))})
        repo.push("main")
        for name in cases:
            # The Unit goes last, after whatever its policy deletes: then look.
            await eventually(
                lambda name=name: unit_gone(kube, agent, unit_name(name)),
                timeout=60,
                what=f"unit {name} removed",
            )
        for name, (_, survives) in cases.items():
            live = await kube.get("v1", "ConfigMap", f"{name}-cm", namespace)
            assert (live is not None) == survives, f"{name}: ConfigMap survives={survives}"


async def test_an_object_with_prune_disabled_outlives_its_removal_from_git(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    kept = configmap(namespace, "kept", v="1")
    kept["metadata"]["annotations"] = {PRUNE_ANNOTATION: "disabled"}
    first = repo.commit(
        {"clusters/dev/cms.yaml": manifest(kept, configmap(namespace, "pruned", v="1"))}
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_api.ROOT_UNIT, first)
        second = repo.commit(
            {
                "clusters/dev/cms.yaml": None,
                "clusters/dev/other.yaml": manifest(configmap(namespace, "other")),
            }
        )
        repo.push("main")
        status = await settled(kube, agent, unit_api.ROOT_UNIT, second)
        # The same run pruned its neighbour: the prune happened, and passed this one by.
        assert await kube.get("v1", "ConfigMap", "pruned", namespace) is None
        live = await kube.get("v1", "ConfigMap", "kept", namespace)
        assert live is not None and live["data"] == {"v": "1"}
        entries = (status.get("inventory") or {}).get("entries") or []
        assert not any("_kept_" in entry["id"] for entry in entries), entries


async def test_a_unit_follows_a_second_git_repository(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    tag = uuid.uuid4().hex[:5]
    source, unit = f"apps-{tag}", f"apps-{tag}"
    other = served_repo(tmp_path / "served", "apps.git")
    apps_first = other.commit({"deploy/cm.yaml": manifest(configmap(None, "from-apps", v="1"))})
    other.push("main")
    fleet_sha = repo.commit(
        {
            "clusters/dev/apps.yaml": manifest(
                {
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "GitRepository",
                    "metadata": {"name": source, "namespace": "flux-system"},
                    "spec": {
                        "interval": "1s",
                        "ref": {"branch": "main"},
                        "url": daemon.url("apps.git"),
                    },
                },
                kustomization(
                    unit,
                    "./deploy",
                    targetNamespace=namespace,
                    sourceRef={"kind": "GitRepository", "name": source},
                ),
            )
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_api.ROOT_UNIT, fleet_sha)
        status = await settled(kube, agent, unit_name(unit), apps_first)
        assert status["lastAppliedRevision"] == f"main@sha1:{apps_first}"
        live = await kube.get("v1", "ConfigMap", "from-apps", namespace)
        assert live is not None and live["data"] == {"v": "1"}

        # A commit to the second repository alone moves the unit; the root stays put.
        apps_second = other.commit(
            {"deploy/cm.yaml": manifest(configmap(None, "from-apps", v="2"))}
        )
        other.push("main")
        await settled(kube, agent, unit_name(unit), apps_second)
        live = await kube.get("v1", "ConfigMap", "from-apps", namespace)
        assert live is not None and live["data"] == {"v": "2"}
        root = await unit_status(kube, agent)
        assert str(root["lastAppliedRevision"]).endswith(fleet_sha)
