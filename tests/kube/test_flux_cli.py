"""The real flux CLI against a cluster run by the agent: Flux's own objects are in the
cluster with Flux-format status, and flux's commands work on them."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agent.units import KUSTOMIZATION, ROOT_KEY, UnitKey
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests.agentkit import eventually, running_agent
from tests.fluxcli import FluxResult, run_flux
from tests.gitservers import GitDaemon, WorkingClone
from tests.objects import configmap, kustomization, manifest

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("flux_system_namespace")]


async def flux(cluster: LocalCluster, *args: str) -> FluxResult:
    """flux in a thread: the agent under test runs in this event loop and must answer."""
    return await anyio.to_thread.run_sync(lambda: run_flux(cluster, *args))


async def test_flux_get_reconcile_suspend_and_resume_a_kustomization(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    name = f"apps-{namespace[-4:]}"
    sha = repo.commit(
        {
            "clusters/dev/apps.yaml": manifest(
                kustomization(name, "./apps", interval="1h", targetNamespace=namespace)
            ),
            "apps/app.yaml": manifest(configmap(None, "app-config", color="blue")),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:

        async def listed(suspended: str = "False") -> dict[str, str] | None:
            rows = (await flux(cluster, "get", "kustomizations", "-A")).check().table()
            row = next((r for r in rows if r["NAME"] == name), None)
            # flux shortens a revision to 8 digits in its tables (as in fleet's own)
            revision = f"main@sha1:{sha[:8]}"
            ready = row is not None and row["READY"] == "True" and row["REVISION"] == revision
            return row if ready and row["SUSPENDED"] == suspended else None

        row = await eventually(listed, timeout=60, what=f"flux get ks shows {name} Ready")
        assert row["NAMESPACE"] == "flux-system"
        assert f"Applied revision: main@sha1:{sha[:8]}" in row["MESSAGE"]
        rows = (
            await flux(cluster, "get", "kustomizations", "-n", agent.settings.namespace)
        ).table()
        assert [r["NAME"] for r in rows] == ["root"], "the agent's own root Kustomization"

        async def recorded() -> list[dict[str, str]] | None:
            found = await flux(
                cluster, "events", "-n", "flux-system", "--for", f"Kustomization/{name}"
            )
            rows = found.check().table() if found.stdout.strip() else []
            mine = [r for r in rows if r["OBJECT"] == f"Kustomization/{name}"]
            return mine if any(r["REASON"] == "ReconciliationSucceeded" for r in mine) else None

        events = await eventually(recorded, timeout=30, what="flux events shows the reconcile")
        assert all(r["TYPE"] == "Normal" for r in events)

        async def source() -> dict[str, str] | None:
            result = await flux(cluster, "get", "sources", "git", "-n", agent.settings.namespace)
            rows = result.check().table()
            return rows[0] if rows and rows[0]["READY"] == "True" else None

        fleet = await eventually(source, timeout=30, what="flux get sources git shows fleet")
        assert fleet["NAME"] == "fleet"
        assert fleet["REVISION"] == f"main@sha1:{sha[:8]}"

        reconciled = (await flux(cluster, "reconcile", "kustomization", name)).check()
        assert f"applied revision main@sha1:{sha[:8]}" in reconciled.stderr
        assert agent.units[ROOT_KEY].ready

        key = UnitKey(KUSTOMIZATION, "flux-system", name)
        (await flux(cluster, "suspend", "kustomization", name)).check()
        await eventually(lambda: agent.units[key].suspended, what="the agent saw flux suspend")
        await eventually(lambda: listed("True"), what="flux get ks shows it suspended")
        refused = await flux(cluster, "reconcile", "kustomization", name)
        assert refused.returncode != 0 and "resource is suspended" in refused.stderr

        repo.commit({"apps/app.yaml": manifest(configmap(None, "app-config", color="green"))})
        repo.push("main")
        (await flux(cluster, "resume", "kustomization", name)).check()
        assert not agent.units[key].suspended

        async def green() -> bool:
            found = await kube.get("v1", "ConfigMap", "app-config", namespace)
            return bool(found and found["data"]["color"] == "green")

        await eventually(green, timeout=60, what="the change pushed while suspended applied")
