"""Faults a fleet must survive, on real local clusters, a real git daemon and real agents:
an agent SIGKILLed mid-apply, kube-apiserver and etcd restarted, the Git server and the
hub down, history rewritten and the branch deleted, a render that lost most objects, and
two agents pointed at the same cluster and path. Each ends converged with no object lost.

Figures (see docs/security.md): FAULTS lists every fault tried; each test asserts it was
survived with 0 objects lost or orphaned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from kubernetes import client as k8s

from agent.loop import Agent
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster, running_clusters
from hub.config import HubConfig
from tests.agentkit import eventually, ready_condition, running_agent, unit_status
from tests.conftest import api_client_for
from tests.e2e.agentprocess import hub_agent
from tests.gitservers import GitDaemon, WorkingClone
from tests.hubserver import create_token, running_hub
from tests.support import eventually as eventually_sync

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
def fresh_namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"fleet-faults-{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        with api_client_for(cluster) as api, contextlib.suppress(k8s.ApiException):
            k8s.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


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
            assert (
                "unreachable" in source["message"].lower() or "connect" in source["message"].lower()
            ), source["message"]
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
        assert "not found" in source["message"], source["message"]
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


OBJECTS = 250


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane for one test alone: it stops the API server and etcd, which must not
    disturb the tests sharing the session's clusters. Stopped (by PID) afterwards."""
    with running_clusters(("faults",), tmp_path_factory.mktemp("faults-cluster")) as started:
        yield started[0]


@pytest.mark.slow
@pytest.mark.destructive
@pytest.mark.timeout(600)
def test_agent_kill_apiserver_and_etcd_restarts_and_hub_outage_lose_nothing(
    own_cluster: LocalCluster,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    cluster = own_cluster
    ns = f"fleet-faults-{uuid.uuid4().hex[:6]}"
    agent_ns = f"fleet-agent-{uuid.uuid4().hex[:6]}"
    expected = {f"cm-{i:03d}" for i in range(OBJECTS)}
    survived: list[str] = []

    def commit(value: str) -> str:
        sha = repo.commit(
            {
                "clusters/dev/ns.yaml": namespace_doc(ns),
                "clusters/dev/cms.yaml": configmaps(ns, OBJECTS, value),
            },
            message=f"v={value}",
        )
        repo.push("main")
        return sha

    def live() -> dict[str, str]:
        with api_client_for(cluster) as api:
            try:
                found = k8s.CoreV1Api(api).list_namespaced_config_map(ns, _request_timeout=5)
            except Exception:  # the control plane is down or restarting
                return {}
            return {
                o.metadata.name: (o.data or {}).get("v", "")
                for o in found.items
                if o.metadata.name != "kube-root-ca.crt"
            }

    def root() -> dict[str, Any]:
        with api_client_for(cluster) as api:
            group, version = unit_api.API_VERSION.split("/")
            try:
                found: dict[str, Any] = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
                    group, version, agent_ns, unit_api.PLURAL, unit_api.ROOT_UNIT
                )
            except Exception:
                return {}
            return found.get("status") or {}

    def converged(sha: str, value: str) -> bool:
        agent.check_running()
        status = root()
        objects = live()
        return (
            str(status.get("lastAppliedRevision", "")).endswith(sha)
            and ready_condition(status).get("status") == "True"
            and objects == dict.fromkeys(expected, value)
        )

    def assert_inventory_complete() -> None:
        entries = (root().get("inventory") or {}).get("entries") or []
        names = {e["id"].split("_")[1] for e in entries if e["id"].endswith("_ConfigMap")}
        assert names == expected, "inventory lists every object, and nothing else"
        # No orphan: every labelled ConfigMap in the namespace is in the inventory.
        assert set(live()) == expected

    with running_hub(
        HubConfig.model_validate({"database": f"sqlite:///{tmp_path / 'hub.db'}"})
    ) as hub:
        agent = hub_agent(hub, cluster, daemon.url("fleet.git"), tmp_path, agent_ns)
        reader = create_token(hub.config.database, "reader", role="read-only")
        first = commit("1")
        agent.start()
        try:
            # 1. SIGKILL in the middle of applying the 250 objects, then start again.
            partial = eventually_sync(
                lambda: (n := len(live())) >= 25 and n, timeout=90, what="apply under way"
            )
            assert agent.pid is not None
            os.kill(agent.pid, signal.SIGKILL)
            eventually_sync(lambda: not agent.alive(), timeout=10, what="agent killed")
            # Killed in the middle: with the agent dead, part of the objects is still missing.
            at_kill = len(live())
            assert at_kill < OBJECTS, f"the agent had applied all {OBJECTS} before the kill"
            agent.start()
            eventually_sync(lambda: converged(first, "1"), timeout=120, what="converged after kill")
            assert_inventory_complete()
            survived.append(
                f"{FAULTS[0]} (killed at {at_kill}/{OBJECTS} applied, first seen {partial})"
            )

            # 2. kube-apiserver stopped and started while a new revision is being applied.
            apiserver = cluster.processes["kube-apiserver"]
            second = commit("2")
            # Stopped while the agent is half way through: some objects at 2, others at 1.
            under_way = eventually_sync(
                lambda: (values := set(live().values())) >= {"1", "2"} and values,
                timeout=60,
                what="the second revision half applied",
            )
            apiserver.stop()
            assert under_way == {"1", "2"}
            time.sleep(2)
            apiserver.start()
            eventually_sync(cluster.apiserver_ready, timeout=60, what="apiserver back")
            eventually_sync(lambda: converged(second, "2"), timeout=120, what="converged")
            assert_inventory_complete()
            survived.append(FAULTS[1])

            # 3. etcd stopped while a commit lands, then started.
            etcd = cluster.processes["etcd"]
            etcd.stop()
            third = commit("3")
            time.sleep(4)
            etcd.start()
            eventually_sync(cluster.apiserver_ready, timeout=60, what="apiserver ready on etcd")
            eventually_sync(lambda: converged(third, "3"), timeout=120, what="converged")
            assert_inventory_complete()
            survived.append(FAULTS[2])

            # 4. The hub goes down; the agent keeps reconciling; the hub catches up.
            def hub_at(sha: str) -> bool:
                try:
                    detail = httpx.get(
                        f"{hub.url}/api/v1/clusters/dev",
                        headers={"Authorization": f"Bearer {reader}"},
                        timeout=5,
                    )
                except httpx.HTTPError:
                    return False
                return detail.status_code == 200 and sha in detail.text

            eventually_sync(lambda: hub_at(third), timeout=60, what="hub at the third commit")
            hub.stop()
            fourth = commit("4")
            eventually_sync(lambda: converged(fourth, "4"), timeout=120, what="converged, no hub")
            hub.start()
            eventually_sync(lambda: hub_at(fourth), timeout=60, what="hub caught up")
            survived.append(FAULTS[3])
        finally:
            agent.stop()
            with api_client_for(cluster) as api, contextlib.suppress(k8s.ApiException):
                k8s.CoreV1Api(api).delete_namespace(agent_ns, propagation_policy="Background")
    print(f"faults survived: {len(survived)}/4 of this test; objects lost: 0", *survived, sep="\n")
