"""The agent against a real cluster and a real Git transport (git daemon)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

from agent.loop import Agent
from agent.reporting import Reporting
from agent.units import ROOT_KEY
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests.agentkit import (
    eventually,
    ready_condition,
    reconciled_again,
    running_agent,
    unit_status,
)
from tests.gitservers import GitDaemon, WorkingClone
from tests.objects import configmap, deployment, manifest

pytestmark = pytest.mark.anyio


async def test_commits_are_applied_and_pruned_with_the_revision_on_status(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    first = repo.commit(
        {
            "clusters/dev/app.yaml": manifest(
                configmap(namespace, "settings", color="blue"), deployment(namespace, "web")
            )
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        status = await eventually(
            lambda: _applied(kube, agent, first), what="first revision applied"
        )
        assert ready_condition(status)["status"] == "True"
        assert status["inventorySize"] == 2
        live = await kube.get("v1", "ConfigMap", "settings", namespace)
        assert live is not None and live["data"] == {"color": "blue"}
        assert live["metadata"]["labels"]["fleet.dev/unit-name"] == "root"

        second = repo.commit(
            {
                "clusters/dev/app.yaml": manifest(
                    configmap(namespace, "settings", color="green"),
                    configmap(namespace, "extra", k="v"),
                )
            }
        )
        repo.push("main")
        status = await eventually(
            lambda: _applied(kube, agent, second), what="second revision applied"
        )
        assert status["inventorySize"] == 2
        changed = await kube.get("v1", "ConfigMap", "settings", namespace)
        assert changed is not None and changed["data"] == {"color": "green"}
        assert await kube.get("v1", "ConfigMap", "extra", namespace) is not None
        assert await eventually(
            lambda: _gone(kube, "apps/v1", "Deployment", "web", namespace), what="deployment pruned"
        )


async def _applied(kube: KubeClient, agent: object, sha: str) -> dict[str, object] | None:
    status = await unit_status(kube, agent)  # type: ignore[arg-type]
    if (
        str(status.get("lastAppliedRevision", "")).endswith(sha)
        and ready_condition(status).get("status") == "True"
    ):
        return status
    return None


async def _gone(kube: KubeClient, api_version: str, kind: str, name: str, namespace: str) -> bool:
    return await kube.get(api_version, kind, name, namespace) is None


async def test_out_of_band_changes_are_reverted_without_waiting_for_an_interval(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    sha = repo.commit(
        {
            "clusters/dev/app.yaml": manifest(
                deployment(namespace, "web", replicas=2), configmap(namespace, "cfg", a="1")
            )
        }
    )
    repo.push("main")
    async with running_agent(
        cluster,
        daemon.url("fleet.git"),
        tmp_path / "agent",
        interval=datetime.timedelta(minutes=10),
    ) as agent:
        await eventually(lambda: _applied(kube, agent, sha), what="applied")

        scaled = await kube.get("apps/v1", "Deployment", "web", namespace)
        assert scaled is not None
        started = time.monotonic()
        await kube.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale",
            body={"spec": {"replicas": 5}},
            content_type="application/merge-patch+json",
            query={"fieldManager": "kubectl-scale"},
        )

        async def healed() -> bool:
            live = await kube.get("apps/v1", "Deployment", "web", namespace)
            return bool(live and live["spec"]["replicas"] == 2)

        # A minute is far below the 10 minute interval: only the drift watch can do it.
        await eventually(healed, timeout=60, what="scale reverted")
        heal_scale = time.monotonic() - started

        started = time.monotonic()
        await kube.delete("v1", "ConfigMap", "cfg", namespace)

        async def recreated() -> bool:
            live = await kube.get("v1", "ConfigMap", "cfg", namespace)
            return bool(live and not live["metadata"].get("deletionTimestamp"))

        await eventually(recreated, timeout=60, what="deleted configmap recreated")
        heal_delete = time.monotonic() - started

        started = time.monotonic()
        await kube.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/cfg",
            body={"data": {"a": "edited"}},
            content_type="application/merge-patch+json",
            query={"fieldManager": "kubectl-edit"},
        )

        async def reverted() -> bool:
            live = await kube.get("v1", "ConfigMap", "cfg", namespace)
            return bool(live and live["data"]["a"] == "1")

        await eventually(reverted, timeout=60, what="edit reverted")
        heal_edit = time.monotonic() - started

        status = await eventually(
            lambda: _drifts(kube, agent, 3), what="three drift corrections recorded"
        )
        assert status["driftCount"] >= 3
    print(
        f"heal latency: scale {heal_scale:.3f}s, delete {heal_delete:.3f}s, edit {heal_edit:.3f}s"
    )


async def _drifts(kube: KubeClient, agent: object, count: int) -> dict[str, object] | None:
    status = await unit_status(kube, agent)  # type: ignore[arg-type]
    return status if int(status.get("driftCount", 0)) >= count else None


async def test_a_resync_of_unchanged_units_writes_nothing(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    objects = [configmap(namespace, f"cm-{i}", i=str(i)) for i in range(10)]
    sha = repo.commit({"clusters/dev/app.yaml": manifest(deployment(namespace, "web"), *objects)})
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await eventually(lambda: _applied(kube, agent, sha), what="applied")
        # The first round's own watch events settle while the agent goes round twice more.
        await reconciled_again(agent, ROOT_KEY)
        before = dict(agent.client.requests)
        count_before = _histogram_count(agent)
        # Not a fixed sleep: the agent finished three more reconciles of the root unit.
        await reconciled_again(agent, ROOT_KEY, times=3)
        assert _histogram_count(agent) - count_before >= 2, "the unit was not resynced"
        sent = {
            k: v - before.get(k, 0)
            for k, v in agent.client.requests.items()
            if v != before.get(k, 0)
        }
        writes = {k: v for k, v in sent.items() if k.is_write}
        dry_runs = {k: v for k, v in sent.items() if k.dry_run}
        assert writes == {} and dry_runs == {}, sent


def _histogram_count(agent: Agent) -> float:
    """Reconciles of the root unit so far, read from the agent's Prometheus registry."""
    text = b"".join(agent.metrics.scrape()).decode()
    for line in text.splitlines():
        if line.startswith("fleet_reconcile_duration_seconds_count") and 'name="root"' in line:
            return float(line.split()[-1])
    return 0.0


async def test_a_first_start_warns_of_nothing_and_reports_when_each_unit_last_ran(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    # A unit that reconciles before its source's first fetch finished is waiting, not
    # failing: an operator must not learn to ignore Warning events (the demo's finding).
    daemon, repo = git
    first = repo.commit({"clusters/dev/app.yaml": manifest(configmap(namespace, "settings"))})
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await eventually(lambda: _applied(kube, agent, first), what="first revision applied")
        report = Reporting(agent).build()
        assert report.units, "the agent reports its units"
        for unit in report.units:
            assert unit.last_reconcile_at is not None, f"{unit.key} reports no last run"
            assert unit.last_reconcile_seconds is not None
        items, _ = await kube.list("v1", "Event", agent.settings.namespace)
        warnings = [f"{e['reason']}: {e['message']}" for e in items if e["type"] == "Warning"]
        assert warnings == []
