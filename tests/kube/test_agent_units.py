"""Flux Kustomization semantics carried out by the agent: dependsOn, health checks,
suspend, force, impersonation, a Flux repository layout, and bad input."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.loop import Agent
from agent.units import ROOT_KEY
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests import objects
from tests.agentkit import (
    eventually,
    ready_condition,
    running_agent,
    source_settled_on,
    unit_status,
)
from tests.gitservers import GitDaemon, WorkingClone
from tests.objects import configmap, deployment, manifest

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("flux_system_namespace")]

# A unit here retries a failure every second: a test sees a failure and its fix at once.
kustomization = functools.partial(objects.kustomization, interval="1m", retryInterval="1s")


def unit_name(name: str) -> str:
    return unit_api.unit_resource_name("flux-system", name)


async def attempted(kube: KubeClient, agent: Agent, unit: str, sha: str) -> dict[str, Any] | None:
    """The unit's status once it has tried ``sha`` (whatever the outcome)."""
    status = await unit_status(kube, agent, unit)
    if str(status.get("lastAttemptedRevision", "")).endswith(sha):
        return status
    return None


async def settled(
    kube: KubeClient, agent: Agent, unit: str, sha: str, ready: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = await attempted(kube, agent, unit, sha)
        if status and ready_condition(status).get("status") == ready:
            return status
        return None

    result: dict[str, Any] = await eventually(
        check, timeout=45, what=f"unit {unit} Ready={ready} at {sha[:7]}"
    )
    return result


async def test_depends_on_waits_for_a_healthy_dependency(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    unschedulable = deployment(namespace, "db", nodeSelector={"fleet.dev/no-such-node": "true"})
    sha = repo.commit(
        {
            "clusters/dev/infra.yaml": manifest(
                kustomization(
                    "infra",
                    "./infra",
                    timeout="4s",
                    healthChecks=[
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": "db",
                            "namespace": namespace,
                        }
                    ],
                )
            ),
            "clusters/dev/apps.yaml": manifest(
                kustomization(
                    "apps", "./apps", dependsOn=[{"name": "infra"}], targetNamespace=namespace
                )
            ),
            "infra/db.yaml": manifest(unschedulable),
            "apps/app.yaml": manifest(configmap(None, "app-config", color="blue")),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        infra = await settled(kube, agent, unit_name("infra"), sha, "False")
        assert ready_condition(infra)["reason"] == "HealthCheckFailed"
        assert f"Deployment.apps/{namespace}/db" in ready_condition(infra)["message"]
        apps = await unit_status(kube, agent, unit_name("apps"))
        assert ready_condition(apps)["reason"] == "DependencyNotReady"
        assert "flux-system/infra" in ready_condition(apps)["message"]
        assert await kube.get("v1", "ConfigMap", "app-config", namespace) is None

        fixed = repo.commit({"infra/db.yaml": manifest(deployment(namespace, "db"))})
        repo.push("main")
        await settled(kube, agent, unit_name("infra"), fixed, "True")
        await settled(kube, agent, unit_name("apps"), fixed, "True")
        assert await kube.get("v1", "ConfigMap", "app-config", namespace) is not None


async def test_suspended_unit_holds_back_changes_until_resumed(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    first = repo.commit({"clusters/dev/cm.yaml": manifest(configmap(namespace, "held", v="1"))})
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_api.ROOT_UNIT, first, "True")
        await _annotate(kube, agent, {unit_api.SUSPEND_ANNOTATION: "true"})
        await eventually(lambda: agent.units[ROOT_KEY].suspended, what="agent saw suspend")
        held = repo.commit({"clusters/dev/cm.yaml": manifest(configmap(namespace, "held", v="2"))})
        repo.push("main")
        # Not a fixed sleep: the agent fetched the held commit and went round twice more.
        await source_settled_on(agent, held)
        live = await kube.get("v1", "ConfigMap", "held", namespace)
        assert live is not None and live["data"] == {"v": "1"}
        await _annotate(kube, agent, {unit_api.SUSPEND_ANNOTATION: None})
        await settled(kube, agent, unit_api.ROOT_UNIT, held, "True")
        live = await kube.get("v1", "ConfigMap", "held", namespace)
        assert live is not None and live["data"] == {"v": "2"}


async def _annotate(
    kube: KubeClient, agent: Agent, annotations: dict[str, str | None], unit: str = "root"
) -> None:
    await kube.request(
        "PATCH",
        f"/apis/{unit_api.API_VERSION}/namespaces/{agent.settings.namespace}/{unit_api.PLURAL}/{unit}",
        body={"metadata": {"annotations": annotations}},
        content_type="application/merge-patch+json",
    )


async def test_force_recreates_an_object_whose_immutable_field_changed(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    frozen = configmap(namespace, "frozen", v="1") | {"immutable": True}
    sha = repo.commit(
        {
            "clusters/dev/plain.yaml": manifest(kustomization("plain", "./plain")),
            "clusters/dev/forced.yaml": manifest(kustomization("forced", "./forced", force=True)),
            "plain/cm.yaml": manifest(
                frozen | {"metadata": {"name": "frozen-plain", "namespace": namespace}}
            ),
            "forced/cm.yaml": manifest(frozen),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_name("forced"), sha, "True")
        await settled(kube, agent, unit_name("plain"), sha, "True")
        before = await kube.get("v1", "ConfigMap", "frozen", namespace)
        assert before is not None
        changed = frozen | {"data": {"v": "2"}}
        sha = repo.commit(
            {
                "plain/cm.yaml": manifest(
                    changed | {"metadata": {"name": "frozen-plain", "namespace": namespace}}
                ),
                "forced/cm.yaml": manifest(changed),
            }
        )
        repo.push("main")
        await settled(kube, agent, unit_name("forced"), sha, "True")
        after = await kube.get("v1", "ConfigMap", "frozen", namespace)
        assert after is not None and after["data"] == {"v": "2"}
        assert after["metadata"]["uid"] != before["metadata"]["uid"]
        plain = await settled(kube, agent, unit_name("plain"), sha, "False")
        assert "immutable" in ready_condition(plain)["message"]
        kept = await kube.get("v1", "ConfigMap", "frozen-plain", namespace)
        assert kept is not None and kept["data"] == {"v": "1"}


async def test_a_unit_is_denied_what_its_service_account_may_not_do(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "limited", "namespace": "flux-system"},
        },
        field_manager="test",
    )
    sha = repo.commit(
        {
            "clusters/dev/limited.yaml": manifest(
                kustomization(
                    "limited", "./limited", serviceAccountName="limited", targetNamespace=namespace
                )
            ),
            "limited/cm.yaml": manifest(configmap(None, "denied")),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        status = await settled(kube, agent, unit_name("limited"), sha, "False")
        message = ready_condition(status)["message"]
        assert "system:serviceaccount:flux-system:limited" in message
        assert "forbidden" in message.lower()
        assert await kube.get("v1", "ConfigMap", "denied", namespace) is None


def kustomize_file(resources: list[str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": resources,
        }
    )


FLUX_BASE = {
    "apps/base/podinfo/kustomization.yaml": kustomize_file(["deployment.yaml", "service.yaml"]),
    "apps/base/podinfo/service.yaml": manifest(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "podinfo"},
            "spec": {"selector": {"app": "podinfo"}, "ports": [{"port": 80, "targetPort": 9898}]},
        }
    ),
}


async def test_a_flux_repository_layout_reconciles_unchanged(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    podinfo = deployment("placeholder", "podinfo")
    del podinfo["metadata"]["namespace"]
    files = {
        # What `flux bootstrap` leaves, minus the controllers: the sync objects.
        "clusters/dev/flux-system/gotk-sync.yaml": manifest(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "flux-system", "namespace": "flux-system"},
                "spec": {
                    "interval": "1m",
                    "ref": {"branch": "main"},
                    "url": daemon.url("fleet.git"),
                },
            },
            kustomization("flux-system", "./clusters/dev"),
        ),
        "clusters/dev/flux-system/kustomization.yaml": kustomize_file(["gotk-sync.yaml"]),
        "clusters/dev/infrastructure.yaml": manifest(
            kustomization("infrastructure", "./infrastructure")
        ),
        "clusters/dev/apps.yaml": manifest(
            kustomization(
                "apps",
                "./apps/dev",
                dependsOn=[{"name": "infrastructure"}],
                targetNamespace=namespace,
                wait=True,
                timeout="60s",
            )
        ),
        "infrastructure/limits.yaml": manifest(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": f"{namespace}-apps"},
                "value": 1000,
            }
        ),
        "apps/base/podinfo/deployment.yaml": manifest(podinfo),
        **FLUX_BASE,
        "apps/dev/kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../base/podinfo"],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "podinfo"},
                        "patch": "- op: replace\n  path: /spec/replicas\n  value: 2\n",
                    }
                ],
            }
        ),
    }
    sha = repo.commit(files)
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_api.ROOT_UNIT, sha, "True")
        await settled(kube, agent, unit_name("infrastructure"), sha, "True")
        apps = await settled(kube, agent, unit_name("apps"), sha, "True")
        assert apps["inventorySize"] == 2
        live = await kube.get("apps/v1", "Deployment", "podinfo", namespace)
        assert live is not None and live["spec"]["replicas"] == 2
        assert live["status"].get("readyReplicas") == 2
        assert (
            await kube.get("scheduling.k8s.io/v1", "PriorityClass", f"{namespace}-apps") is not None
        )
        # The bootstrap Kustomization stands for the cluster path: no unit of its own.
        assert (
            await kube.get(
                unit_api.API_VERSION,
                unit_api.KIND,
                unit_name("flux-system"),
                agent.settings.namespace,
            )
            is None
        )


BAD_INPUTS = [
    (
        "invalid YAML",
        {"clusters/dev/bad.yaml": "kind: ConfigMap\nmetadata: [unclosed\n"},
        "root",
        "bad.yaml",
    ),
    (
        "unknown kind",
        {
            "clusters/dev/bad.yaml": manifest(
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Gizmo",
                    "metadata": {"name": "g", "namespace": "default"},
                }
            )
        },
        "root",
        'no matches for kind "Gizmo"',
    ),
    (
        "kustomize error",
        {
            "clusters/dev/broken.yaml": manifest(kustomization("broken", "./broken")),
            "broken/kustomization.yaml": "resources:\n  - missing.yaml\n",
        },
        "flux-system.broken",
        "missing.yaml",
    ),
    (
        "path escape",
        {"clusters/dev/escape.yaml": manifest(kustomization("escape", "../../../etc"))},
        "flux-system.escape",
        "path escapes the repository",
    ),
    (
        "dependency cycle",
        {
            "clusters/dev/a.yaml": manifest(kustomization("a", "./a", dependsOn=[{"name": "b"}])),
            "clusters/dev/b.yaml": manifest(kustomization("b", "./b", dependsOn=[{"name": "a"}])),
            "a/cm.yaml": manifest(configmap("default", "a-cm")),
            "b/cm.yaml": manifest(configmap("default", "b-cm")),
        },
        "flux-system.a",
        "dependency cycle",
    ),
    (
        "invalid Kustomization field",
        {"clusters/dev/oops.yaml": manifest(kustomization("oops", "./x", interval="5 minutes"))},
        "root",
        "spec.interval",
    ),
]


async def test_bad_input_leaves_running_objects_untouched_and_names_the_problem(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    good = {"clusters/dev/running.yaml": manifest(configmap(namespace, "running", v="1"))}
    sha = repo.commit(good)
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_api.ROOT_UNIT, sha, "True")
        running = await kube.get("v1", "ConfigMap", "running", namespace)
        assert running is not None
        for label, files, unit, expected in BAD_INPUTS:
            sha = repo.commit(files, message=label)
            repo.push("main")
            status = await settled(kube, agent, unit, sha, "False")
            message = ready_condition(status)["message"]
            assert expected in message, f"{label}: {message}"
            still = await kube.get("v1", "ConfigMap", "running", namespace)
            assert still is not None and still["metadata"]["uid"] == running["metadata"]["uid"], (
                label
            )
            assert still["data"] == {"v": "1"}, label
            # Back to the good tree before the next case.
            repo.commit({name: None for name in files}, message=f"revert {label}")
            repo.push("main")


async def test_removing_a_unit_removes_the_units_it_defined(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    sha = repo.commit(
        {
            "clusters/dev/platform.yaml": manifest(kustomization("platform", "./platform")),
            "platform/db.yaml": manifest(kustomization("db", "./db", targetNamespace=namespace)),
            "db/cm.yaml": manifest(configmap(None, "db-settings")),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_name("db"), sha, "True")
        assert await kube.get("v1", "ConfigMap", "db-settings", namespace) is not None
        gone = repo.commit(
            {
                "clusters/dev/platform.yaml": None,
                "clusters/dev/keep.yaml": manifest(configmap(namespace, "keep")),
            }
        )
        repo.push("main")
        await settled(kube, agent, unit_api.ROOT_UNIT, gone, "True")

        async def removed() -> bool:
            units = [
                await kube.get(
                    unit_api.API_VERSION, unit_api.KIND, unit_name(n), agent.settings.namespace
                )
                for n in ("platform", "db")
            ]
            return (
                units == [None, None]
                and await kube.get("v1", "ConfigMap", "db-settings", namespace) is None
            )

        await eventually(removed, timeout=30, what="platform, db and db's ConfigMap removed")


async def test_drift_ignore_rules_leave_fields_to_others(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    rules = [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment", "name": "web"}}]
    scaled = deployment(namespace, "web") | {}
    scaled["spec"] = {**scaled["spec"], "replicas": 2}
    sha = repo.commit(
        {
            "clusters/dev/apps.yaml": manifest(
                kustomization("apps", "./apps", driftIgnoreRules=rules)
            ),
            "apps/web.yaml": manifest(scaled),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await settled(kube, agent, unit_name("apps"), sha, "True")

        async def web() -> dict[str, Any]:
            live = await kube.get("apps/v1", "Deployment", "web", namespace)
            assert live is not None
            return live

        assert (await web())["spec"]["replicas"] == 2
        # An autoscaler (here: a person) scales it: left alone.
        await kube.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale",
            body={"spec": {"replicas": 5}},
            content_type="application/merge-patch+json",
            query={"fieldManager": "autoscaler"},
        )
        # Someone edits the image: reverted, and the replicas stay where the autoscaler put them.
        await kube.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/web",
            body={
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "evil:1"}]}}}
            },
            content_type="application/strategic-merge-patch+json",
            query={"fieldManager": "kubectl-edit"},
        )

        async def image_reverted() -> bool:
            live = await web()
            return live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"

        await eventually(image_reverted, timeout=10, what="the image edit reverted")
        # Not a fixed sleep: a reconcile asked for after the edits ran to its end (it
        # answered the request in the unit's status) and left the replicas alone too.
        token = "after-the-edits"
        await _annotate(kube, agent, {unit_api.REQUESTED_AT_ANNOTATION: token}, unit_name("apps"))

        async def answered() -> bool:
            status = await unit_status(kube, agent, unit_name("apps"))
            return status.get("lastHandledReconcileAt") == token

        await eventually(answered, what="the requested reconcile of apps answered")
        assert (await web())["spec"]["replicas"] == 5

        # A new revision changes the image and still keeps the replicas.
        newer = dict(scaled)
        newer["spec"] = {**scaled["spec"]}
        newer["spec"]["template"] = {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]},
        }
        sha = repo.commit({"apps/web.yaml": manifest(newer)})
        repo.push("main")
        await settled(kube, agent, unit_name("apps"), sha, "True")
        live = await web()
        assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
        assert live["spec"]["replicas"] == 5
