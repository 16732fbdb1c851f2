"""HelmRelease v2 carried out by the agent with the real helm binary, against a real
cluster: charts packaged by ``helm package``, served over HTTP with an index made by
``helm repo index``, the fleet repository served by git daemon."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from agent.loop import Agent
from agent.units import HELMRELEASE, UnitKey, unit_resource_name
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube import toolchain
from fleet.localkube.cluster import LocalCluster
from fleet.models import NamespacedName
from tests.agentkit import (
    eventually,
    ready_condition,
    reconciled_again,
    running_agent,
    unit_status,
)
from tests.fluxcli import run_flux
from tests.gitservers import GitDaemon, WorkingClone
from tests.objects import kustomization, manifest

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("flux_system_namespace")]

UNSCHEDULABLE = {"fleet.dev/no-such-node": "true"}

TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  color: {{ .Values.color | quote }}
  chartVersion: {{ .Chart.Version | quote }}
  note: {{ .Values.note | default "none" | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      nodeSelector: {{ toJson .Values.nodeSelector }}
      containers:
        - name: app
          image: nginx:1.27
          resources:
            limits: {cpu: "0.1"}
{{- if .Values.boom }}
{{ fail (printf "boom is set to %v" .Values.boom) }}
{{- end }}
"""

SMOKE_TEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-smoke
  annotations:
    helm.sh/hook: test
spec:
  restartPolicy: Never
  containers:
    - name: smoke
      image: busybox:1.36
"""
"""A test hook pod; on kwok it runs and never completes, so ``helm test`` fails."""

SCHEMA = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "color": {"type": "string", "enum": ["blue", "green", "red"]},
        "replicas": {"type": "integer", "minimum": 0},
    },
}


def helm_binary() -> str:
    return str(toolchain.binary("helm"))


class ChartRepository:
    """A real Helm repository: packages made by ``helm package``, an index made by
    ``helm repo index``, served by an HTTP server on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.served = root / "served"
        self.served.mkdir(parents=True)
        handler = functools.partial(_QuietHandler, directory=str(self.served))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, version: str) -> None:
        source = self.root / "src" / version / "demo"
        (source / "templates").mkdir(parents=True)
        (source / "Chart.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v2", "name": "demo", "version": version})
        )
        (source / "values.yaml").write_text(
            yaml.safe_dump({"color": "blue", "replicas": 1, "nodeSelector": {}})
        )
        (source / "values.schema.json").write_text(json.dumps(SCHEMA))
        (source / "templates" / "all.yaml").write_text(TEMPLATE)
        (source / "templates" / "tests").mkdir()
        (source / "templates" / "tests" / "smoke.yaml").write_text(SMOKE_TEST)
        run_helm("package", str(source), "--destination", str(self.served))
        run_helm("repo", "index", str(self.served), "--url", self.url)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def run_helm(*args: str, kubeconfig: Path | None = None) -> str:
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/fleet-test-helm/cache"}
    env["HELM_CONFIG_HOME"] = "/tmp/fleet-test-helm/config"
    env["HELM_DATA_HOME"] = "/tmp/fleet-test-helm/data"
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    done = subprocess.run([helm_binary(), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise HelmFailed(f"helm {' '.join(args)} failed: {done.stderr}", done.stderr)
    return done.stdout


class HelmFailed(AssertionError):
    """A helm command exited non-zero; ``stderr`` says why."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def release_history(cluster: LocalCluster, release: str, namespace: str) -> list[dict[str, Any]]:
    output = run_helm(
        "history", release, "-n", namespace, "-o", "json", kubeconfig=cluster.kubeconfig_path
    )
    found: list[dict[str, Any]] = json.loads(output)
    return found


def helm_repository(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": "flux-system"},
        "spec": {"url": url, "interval": "1s"},
    }


def helm_release(
    name: str, target: str, *, version: str = "*", values: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": "2s",
            "timeout": "20s",
            "targetNamespace": target,
            "chart": {
                "spec": {
                    "chart": "demo",
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                }
            },
            **({"values": values} if values is not None else {}),
            **spec,
        },
    }


def unit_name(name: str) -> str:
    return unit_resource_name(release_key(name))


def release_key(name: str) -> UnitKey:
    return UnitKey(HELMRELEASE, "flux-system", name)


def index_versions(agent: Agent) -> set[str]:
    """The demo chart's versions in the index the agent last read of ``charts``."""
    tracked = agent.charts.get(NamespacedName("flux-system", "charts"))
    listed = (tracked.charts or {}).get("demo", []) if tracked else []
    return {v.version for v in listed}


@pytest.fixture
def charts(tmp_path: Path) -> Iterator[ChartRepository]:
    repository = ChartRepository(tmp_path / "charts")
    try:
        yield repository
    finally:
        repository.close()


async def release_status(
    kube: KubeClient,
    agent: Agent,
    name: str,
    *,
    reason: str | None = None,
    ready: str | None = None,
    timeout: float = 45,
    where: Any = None,
) -> dict[str, Any]:
    """The HelmRelease unit's status once its Ready condition has ``reason``/``ready``
    (and ``where(status)`` holds)."""

    async def check() -> dict[str, Any] | None:
        status = await unit_status(kube, agent, unit_name(name))
        condition = ready_condition(status)
        if reason is not None and condition.get("reason") != reason:
            return None
        if ready is not None and condition.get("status") != ready:
            return None
        if where is not None and not where(status):
            return None
        return status

    found: dict[str, Any] = await eventually(
        check, timeout=timeout, what=f"HelmRelease {name}: reason={reason} ready={ready}"
    )
    return found


async def settings_of(kube: KubeClient, namespace: str, release: str) -> dict[str, str]:
    found = await kube.get("v1", "ConfigMap", f"{release}-settings", namespace)
    return dict((found or {}).get("data") or {})


async def test_installs_and_follows_new_chart_versions_within_the_constraint(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/web.yaml": manifest(
                helm_release(
                    "web",
                    namespace,
                    version="1.x",
                    values={"color": "green"},
                    postRenderers=[{"kustomize": {"images": [{"name": "nginx"}]}}],
                )
            ),
        }
    )
    repo.push("main")
    release = f"{namespace}-web"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        status = await release_status(kube, agent, "web", reason="InstallSucceeded")
        assert ready_condition(status)["status"] == "True"
        assert (
            f"release {namespace}/{release}.v1 with chart demo@1.0.0"
            in (ready_condition(status)["message"])
        )
        assert status["lastAppliedRevision"].startswith("1.0.0@values:")
        assert status["lastAppliedRevision"] == status["lastAttemptedRevision"]
        assert status["release"]["revision"] == 1 and status["release"]["chart"] == "demo-1.0.0"
        assert status["inventorySize"] == 2
        assert "fields not supported, ignored: spec.postRenderers" in status["warnings"]
        assert (await settings_of(kube, namespace, release))["color"] == "green"
        unit = await kube.get(
            unit_api.API_VERSION, unit_api.KIND, unit_name("web"), agent.settings.namespace
        )
        assert unit is not None and unit["spec"]["kind"] == "HelmRelease"
        assert unit["spec"]["chart"] == "demo" and unit["spec"]["releaseName"] == release
        live = await kube.get("apps/v1", "Deployment", release, namespace)
        assert live is not None
        assert live["metadata"]["labels"][unit_api.UNIT_KIND_LABEL] == "HelmRelease"

        charts.publish("1.1.0")
        charts.publish("2.0.0")
        status = await release_status(
            kube,
            agent,
            "web",
            reason="UpgradeSucceeded",
            where=lambda s: s.get("release", {}).get("chart") == "demo-1.1.0",
        )
        assert status["lastAppliedRevision"].startswith("1.1.0@")
        assert (await settings_of(kube, namespace, release))["chartVersion"] == "1.1.0"
        # Not a fixed sleep: the agent read an index that lists 2.0.0, then reconciled the
        # release twice more; 2.0.0 is outside 1.x, so it stays on 1.1.0.
        await eventually(
            lambda: "2.0.0" in index_versions(agent),
            what="the agent to read an index listing 2.0.0",
        )
        await reconciled_again(agent, release_key("web"))
        history = release_history(cluster, release, namespace)
        assert [h["chart"] for h in history] == ["demo-1.0.0", "demo-1.1.0"]

        # The HelmRelease leaves Git: its release is uninstalled and its Unit goes.
        repo.commit({"clusters/dev/web.yaml": None})
        repo.push("main")

        async def gone() -> bool:
            unit = await kube.get(
                unit_api.API_VERSION, unit_api.KIND, unit_name("web"), agent.settings.namespace
            )
            deployment = await kube.get("apps/v1", "Deployment", release, namespace)
            return unit is None and deployment is None

        await eventually(gone, what="the release uninstalled and its unit removed")
        assert release_history_or_none(cluster, release, namespace) is None


async def test_values_are_patched_per_environment_through_an_overlay(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    base = helm_release("web", namespace, values={"color": "blue", "replicas": 1})
    base["spec"]["valuesFrom"] = [
        {"kind": "ConfigMap", "name": "web-values"},
        {"kind": "ConfigMap", "name": "web-note", "valuesKey": "note", "targetPath": "note"},
        {"kind": "Secret", "name": "absent", "optional": True},
    ]
    apps = kustomization("apps", "./apps/dev", interval="1m", retryInterval="1s")
    values_maps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-values", "namespace": "flux-system"},
            "data": {"values.yaml": "replicas: 2\ncolor: red\n"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-note", "namespace": "flux-system"},
            "data": {"note": "from dev"},
        },
    ]
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/apps.yaml": manifest(apps),
            "apps/base/web/release.yaml": manifest(base),
            "apps/base/web/kustomization.yaml": yaml.safe_dump({"resources": ["release.yaml"]}),
            "apps/dev/values.yaml": manifest(*values_maps),
            "apps/dev/kustomization.yaml": yaml.safe_dump(
                {
                    "resources": ["../base/web", "values.yaml"],
                    "patches": [
                        {
                            "target": {"kind": "HelmRelease", "name": "web"},
                            "patch": "- op: replace\n  path: /spec/values/color\n  value: green\n",
                        }
                    ],
                }
            ),
        }
    )
    repo.push("main")
    release = f"{namespace}-web"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await release_status(kube, agent, "web", reason="InstallSucceeded")
        settings = await settings_of(kube, namespace, release)
        # valuesFrom in order, the targetPath value, then the overlay's patched values.
        assert settings["color"] == "green"
        assert settings["note"] == "from dev"
        live = await kube.get("apps/v1", "Deployment", release, namespace)
        assert live is not None and live["spec"]["replicas"] == 1
        unit = await kube.get(
            unit_api.API_VERSION, unit_api.KIND, unit_name("web"), agent.settings.namespace
        )
        assert unit is not None and unit["spec"]["parent"] == "flux-system/apps"


async def test_a_failing_upgrade_is_rolled_back_and_the_previous_release_keeps_serving(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    remediated = {"remediation": {"retries": 1}}
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/web.yaml": manifest(
                helm_release("web", namespace, timeout="3s", upgrade=remediated)
            ),
        }
    )
    repo.push("main")
    release = f"{namespace}-web"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        installed = await release_status(kube, agent, "web", reason="InstallSucceeded")
        good_revision = installed["lastAppliedRevision"]
        # Pods that can never be scheduled: helm --wait times out, the upgrade fails.
        repo.commit(
            {
                "clusters/dev/web.yaml": manifest(
                    helm_release(
                        "web",
                        namespace,
                        timeout="3s",
                        upgrade=remediated,
                        values={"nodeSelector": UNSCHEDULABLE, "color": "red"},
                    )
                )
            }
        )
        repo.push("main")
        status = await release_status(
            kube,
            agent,
            "web",
            reason="RollbackSucceeded",
            where=lambda s: any(
                c["type"] == "Stalled" and c["status"] == "True" for c in s["conditions"]
            ),
            timeout=90,
        )
        message = ready_condition(status)["message"]
        assert f"Helm upgrade failed for release {namespace}/{release}" in message
        assert "rolled back to revision" in message and "no retries left" in message
        assert status["release"]["upgradeFailures"] == 2
        assert status["release"]["retriesLeft"] == 0
        assert status["lastAppliedRevision"] == good_revision
        assert status["lastAttemptedRevision"] != good_revision
        history = release_history(cluster, release, namespace)
        assert [h["status"] for h in history] == [
            "superseded",
            "failed",
            "superseded",
            "failed",
            "deployed",
        ]
        assert history[-1]["description"].startswith("Rollback to")
        live = await kube.get("apps/v1", "Deployment", release, namespace)
        assert live is not None and not live["spec"]["template"]["spec"].get("nodeSelector")
        assert live["status"].get("readyReplicas") == 1
        assert (await settings_of(kube, namespace, release))["color"] == "blue"


async def test_depends_on_holds_a_release_until_its_dependency_is_ready(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    db_broken = helm_release("db", namespace, timeout="2s", values={"nodeSelector": UNSCHEDULABLE})
    web = helm_release("web", namespace, dependsOn=[{"name": "db"}])
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/releases.yaml": manifest(db_broken, web),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        db = await release_status(kube, agent, "db", reason="InstallFailed", timeout=60)
        assert f"{namespace}/{namespace}-db" in ready_condition(db)["message"]
        waiting = await release_status(kube, agent, "web", reason="DependencyNotReady")
        assert "flux-system/db" in ready_condition(waiting)["message"]
        assert release_history_or_none(cluster, f"{namespace}-web", namespace) is None

        repo.commit({"clusters/dev/releases.yaml": manifest(helm_release("db", namespace), web)})
        repo.push("main")
        await release_status(kube, agent, "db", ready="True", timeout=60)
        await release_status(kube, agent, "web", reason="InstallSucceeded", timeout=60)
        assert [h["status"] for h in release_history(cluster, f"{namespace}-db", namespace)] == [
            "deployed"
        ]


def release_history_or_none(
    cluster: LocalCluster, release: str, namespace: str
) -> list[dict[str, Any]] | None:
    """The release's history, or None when helm says there is no such release (any other
    helm failure, a wrong kubeconfig say, fails the test rather than passing as "gone")."""
    try:
        return release_history(cluster, release, namespace)
    except HelmFailed as failed:
        if "release: not found" in failed.stderr:
            return None
        raise


async def test_suspend_holds_an_upgrade_back_until_resumed(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/web.yaml": manifest(helm_release("web", namespace)),
            # Not suspended: the evidence that the agent saw a new chart version.
            "clusters/dev/canary.yaml": manifest(helm_release("canary", namespace)),
        }
    )
    repo.push("main")
    release = f"{namespace}-web"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await release_status(kube, agent, "web", reason="InstallSucceeded")
        await release_status(kube, agent, "canary", reason="InstallSucceeded")
        held = helm_release("web", namespace, suspend=True, values={"color": "red"})
        repo.commit({"clusters/dev/web.yaml": manifest(held)})
        repo.push("main")

        async def suspended() -> bool:
            unit = await kube.get(
                unit_api.API_VERSION, unit_api.KIND, unit_name("web"), agent.settings.namespace
            )
            return bool(unit and unit["spec"].get("suspend"))

        await eventually(suspended, what="the unit to show suspend")
        charts.publish("1.1.0")
        # Not a fixed sleep: the canary beside it upgraded to 1.1.0 and was reconciled twice
        # more, so the agent knew of 1.1.0 and had its chances to act on web too.
        await release_status(
            kube,
            agent,
            "canary",
            reason="UpgradeSucceeded",
            where=lambda s: s.get("release", {}).get("chart") == "demo-1.1.0",
        )
        await reconciled_again(agent, release_key("canary"))
        assert (await settings_of(kube, namespace, release))["color"] == "blue"
        assert len(release_history(cluster, release, namespace)) == 1

        repo.commit(
            {
                "clusters/dev/web.yaml": manifest(
                    helm_release("web", namespace, values={"color": "red"})
                )
            }
        )
        repo.push("main")
        await release_status(
            kube,
            agent,
            "web",
            reason="UpgradeSucceeded",
            where=lambda s: s.get("release", {}).get("chart") == "demo-1.1.0",
        )
        settings = await settings_of(kube, namespace, release)
        assert settings["color"] == "red" and settings["chartVersion"] == "1.1.0"


async def test_drift_is_corrected_when_enabled_and_only_reported_in_warn_mode(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    ignore_note = {
        "paths": ["/data/note"],
        "target": {"kind": "ConfigMap"},
    }
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/releases.yaml": manifest(
                helm_release(
                    "fixed",
                    namespace,
                    driftDetection={"mode": "enabled", "ignore": [ignore_note]},
                ),
                helm_release("watched", namespace, driftDetection={"mode": "warn"}),
            ),
        }
    )
    repo.push("main")
    fixed, watched = f"{namespace}-fixed", f"{namespace}-watched"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await release_status(kube, agent, "fixed", reason="InstallSucceeded")
        await release_status(kube, agent, "watched", reason="InstallSucceeded")

        for release in (fixed, watched):
            await scale(kube, namespace, release, 3)
            await patch_settings(kube, namespace, release, {"color": "purple", "note": "mine"})

        async def reverted() -> bool:
            live = await kube.get("apps/v1", "Deployment", fixed, namespace)
            settings = await settings_of(kube, namespace, fixed)
            return bool(live and live["spec"]["replicas"] == 1 and settings["color"] == "blue")

        await eventually(reverted, timeout=20, what="drift of the enabled release reverted")
        assert (await settings_of(kube, namespace, fixed))["note"] == "mine"  # ignored path
        status = await release_status(
            kube, agent, "fixed", ready="True", where=lambda s: s.get("driftCount", 0) >= 2
        )
        events = await unit_events(kube, agent, unit_name("fixed"))
        corrected = [e["message"] for e in events if e["reason"] == "DriftCorrected"]
        assert any(
            f"Deployment.apps/{namespace}/{fixed}" in m and "intruder" in m for m in corrected
        )
        live = await kube.get("apps/v1", "Deployment", fixed, namespace)
        assert live is not None
        managers = {m["manager"] for m in live["metadata"]["managedFields"]}
        assert not any(m.startswith("fleet-agent") for m in managers), managers

        await kube.delete("v1", "ConfigMap", f"{fixed}-settings", namespace)
        await eventually(
            lambda: settings_of(kube, namespace, fixed), timeout=20, what="ConfigMap re-created"
        )

        status = await release_status(
            kube, agent, "watched", where=lambda s: len(s.get("release", {}).get("drift", [])) >= 2
        )
        assert ready_condition(status)["status"] == "True"
        assert any("/spec/replicas: 1 -> 3" in d for d in status["release"]["drift"])
        # Not a fixed sleep: two more reconciles of the warn-mode release saw the drift.
        await reconciled_again(agent, release_key("watched"))
        live = await kube.get("apps/v1", "Deployment", watched, namespace)
        assert live is not None and live["spec"]["replicas"] == 3
        events = await unit_events(kube, agent, unit_name("watched"))
        assert any(e["reason"] == "DriftDetected" for e in events)
        assert status.get("driftCount", 0) == 0


async def scale(kube: KubeClient, namespace: str, name: str, replicas: int) -> None:
    await kube.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        body={"spec": {"replicas": replicas}},
        query={"fieldManager": "intruder"},
        content_type="application/merge-patch+json",
    )


async def patch_settings(
    kube: KubeClient, namespace: str, release: str, data: dict[str, str]
) -> None:
    await kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/{release}-settings",
        body={"data": data},
        query={"fieldManager": "intruder"},
        content_type="application/merge-patch+json",
    )


async def unit_events(kube: KubeClient, agent: Agent, unit: str) -> list[dict[str, Any]]:
    items, _ = await kube.list("v1", "Event", agent.settings.namespace)
    return [e for e in items if e["involvedObject"]["name"] == unit]


async def test_bad_values_name_the_release_and_the_problem_and_keep_the_last_release(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/web.yaml": manifest(helm_release("web", namespace)),
        }
    )
    repo.push("main")
    release = f"{namespace}-web"
    cases = [
        ({"color": "purple"}, "value must be one of"),
        ({"boom": "yes"}, "boom is set to yes"),
    ]
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        installed = await release_status(kube, agent, "web", reason="InstallSucceeded")
        for values, problem in cases:
            repo.commit(
                {"clusters/dev/web.yaml": manifest(helm_release("web", namespace, values=values))}
            )
            repo.push("main")
            status = await release_status(
                kube,
                agent,
                "web",
                reason="UpgradeFailed",
                where=lambda s, p=problem: p in ready_condition(s).get("message", ""),
            )
            message = ready_condition(status)["message"]
            assert f"Helm upgrade failed for release {namespace}/{release}" in message
            assert status["lastAppliedRevision"] == installed["lastAppliedRevision"]
            history = release_history(cluster, release, namespace)
            assert [h["status"] for h in history] == ["deployed"], history
            assert (await settings_of(kube, namespace, release))["color"] == "blue"

        repo.commit(
            {
                "clusters/dev/web.yaml": manifest(
                    helm_release("web", namespace, values={"color": "red"})
                )
            }
        )
        repo.push("main")
        await release_status(kube, agent, "web", reason="UpgradeSucceeded")
        assert (await settings_of(kube, namespace, release))["color"] == "red"


async def test_a_chart_folder_in_the_fleet_repository_is_released(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")  # only to have the chart's files at hand
    folder = charts.root / "src" / "1.0.0" / "demo"
    chart_files = {
        f"charts/demo/{p.relative_to(folder)}": p.read_text()
        for p in folder.rglob("*")
        if p.is_file()
    }
    from_git = helm_release("web", namespace, values={"color": "red"})
    from_git["spec"]["chart"]["spec"] = {
        "chart": "./charts/demo",
        "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
    }
    repo.commit({**chart_files, "clusters/dev/web.yaml": manifest(from_git)})
    repo.push("main")
    release = f"{namespace}-web"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        status = await release_status(kube, agent, "web", reason="InstallSucceeded")
        assert status["lastAppliedRevision"].startswith("1.0.0@")
        assert (await settings_of(kube, namespace, release))["color"] == "red"
        unit = await kube.get(
            unit_api.API_VERSION, unit_api.KIND, unit_name("web"), agent.settings.namespace
        )
        assert unit is not None and unit["spec"]["source"] == "GitRepository/fleet-system/fleet"


async def test_a_release_is_denied_what_its_service_account_may_not_do(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "limited", "namespace": "flux-system"},
        },
        field_manager="test",
    )
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/web.yaml": manifest(
                helm_release("web", namespace, serviceAccountName="limited")
            ),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        status = await release_status(
            kube,
            agent,
            "web",
            ready="False",
            timeout=30,
            where=lambda s: "forbidden" in ready_condition(s).get("message", "").lower(),
        )
        assert "system:serviceaccount:flux-system:limited" in ready_condition(status)["message"]
        assert await kube.get("apps/v1", "Deployment", f"{namespace}-web", namespace) is None


async def test_a_release_left_pending_by_an_interrupted_helm_is_recovered(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/web.yaml": manifest(helm_release("web", namespace)),
        }
    )
    repo.push("main")
    release = f"{namespace}-web"
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await release_status(kube, agent, "web", reason="InstallSucceeded")
    # A helm upgrade killed while it waits, as if the agent's pod died mid-upgrade.
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)}
    env["HELM_CACHE_HOME"] = str(tmp_path / "helm-cache")
    interrupted = subprocess.Popen(
        [
            helm_binary(),
            "upgrade",
            release,
            str(charts.served / "demo-1.0.0.tgz"),
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "60s",
            "--set-json",
            f"nodeSelector={json.dumps(UNSCHEDULABLE)}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await eventually(
            lambda: release_history(cluster, release, namespace)[-1]["status"] == "pending-upgrade",
            what="the upgrade to be pending",
        )

        async def upgrade_applied() -> bool:
            live = await kube.get("apps/v1", "Deployment", release, namespace)
            spec = (live or {}).get("spec", {}).get("template", {}).get("spec", {})
            return bool(spec.get("nodeSelector") == UNSCHEDULABLE)

        # Killed once helm has written the upgrade's objects and waits on them, so the
        # recovery below has something to undo.
        await eventually(upgrade_applied, what="the pending upgrade's Deployment applied")
    finally:
        interrupted.kill()
        interrupted.wait()
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await release_status(kube, agent, "web", ready="True")
        history = release_history(cluster, release, namespace)
        assert [h["status"] for h in history] == ["superseded", "pending-upgrade", "deployed"]
        assert history[-1]["description"] == "Rollback to 1"
        events = await unit_events(kube, agent, unit_name("web"))
        recovered = [e["message"] for e in events if e["reason"] == "ReleaseRecovered"]
        assert recovered and "stuck in pending-upgrade" in recovered[0]
        live = await kube.get("apps/v1", "Deployment", release, namespace)
        assert live is not None and not live["spec"]["template"]["spec"].get("nodeSelector")


async def test_a_failing_helm_test_fails_the_release_unless_ignored(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    charts.publish("1.0.0")
    repo.commit(
        {
            "clusters/dev/charts.yaml": manifest(helm_repository(charts.url)),
            "clusters/dev/releases.yaml": manifest(
                helm_release("strict", namespace, test={"enable": True, "timeout": "2s"}),
                helm_release(
                    "lenient",
                    namespace,
                    test={"enable": True, "timeout": "2s", "ignoreFailures": True},
                ),
            ),
        }
    )
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        strict = await release_status(kube, agent, "strict", reason="TestFailed", timeout=60)
        message = ready_condition(strict)["message"]
        assert f"Helm test failed for release {namespace}/{namespace}-strict" in message
        assert "no retries left" in message
        assert strict["release"]["installFailures"] == 1
        lenient = await release_status(kube, agent, "lenient", reason="InstallSucceeded")
        assert "timed out" in lenient["release"]["ignoredTestFailure"]


async def test_a_waiting_kustomization_is_ready_only_once_its_helmrelease_is(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    charts: ChartRepository,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    """Flux's most common layout, infra-controllers -> apps: a Kustomization with
    ``wait: true`` renders a HelmRelease; the Kustomization that depends on it starts only
    once the release is Ready, not as soon as the HelmRelease object was read."""
    daemon, repo = git
    charts.publish("1.0.0")
    broken = helm_release("db", namespace, timeout="2s", values={"nodeSelector": UNSCHEDULABLE})
    repo.commit(
        {
            "clusters/dev/layers.yaml": manifest(
                kustomization("infra", "./infra", wait=True, timeout="10m"),
                kustomization(
                    "apps", "./apps", dependsOn=[{"name": "infra"}], targetNamespace=namespace
                ),
            ),
            "infra/charts.yaml": manifest(helm_repository(charts.url)),
            "infra/db.yaml": manifest(broken),
            "apps/app.yaml": manifest(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "app-config"},
                    "data": {"color": "blue"},
                }
            ),
        }
    )
    repo.push("main")
    infra_unit = unit_resource_name(UnitKey("Kustomization", "flux-system", "infra"))
    apps_unit = unit_resource_name(UnitKey("Kustomization", "flux-system", "apps"))
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await release_status(kube, agent, "db", reason="InstallFailed", timeout=60)

        async def infra_waits() -> dict[str, Any] | None:
            status = await unit_status(kube, agent, infra_unit)
            message = ready_condition(status).get("message", "")
            return status if "HelmRelease/flux-system/db" in message else None

        infra = await eventually(infra_waits, timeout=30, what="infra waits for the release")
        assert ready_condition(infra)["status"] != "True"
        apps = await unit_status(kube, agent, apps_unit)
        assert ready_condition(apps)["reason"] == "DependencyNotReady"
        assert await kube.get("v1", "ConfigMap", "app-config", namespace) is None

        repo.commit({"infra/db.yaml": manifest(helm_release("db", namespace))})
        repo.push("main")
        await release_status(kube, agent, "db", ready="True", timeout=60)

        async def apps_ready() -> bool:
            status = await unit_status(kube, agent, apps_unit)
            return ready_condition(status).get("status") == "True"

        await eventually(apps_ready, timeout=60, what="apps Ready after the release")
        infra = await unit_status(kube, agent, infra_unit)
        assert ready_condition(infra)["status"] == "True"
        assert await kube.get("v1", "ConfigMap", "app-config", namespace) is not None

        async def listed() -> dict[str, str] | None:
            result = await anyio.to_thread.run_sync(
                lambda: run_flux(cluster, "get", "helmreleases", "-A")
            )
            rows = result.check().table()
            row = next(
                (r for r in rows if (r["NAMESPACE"], r["NAME"]) == ("flux-system", "db")), None
            )
            return row if row is not None and row["READY"] == "True" else None

        row = await eventually(listed, timeout=30, what="flux get helmreleases shows db Ready")
        assert row["REVISION"] == "1.0.0", "the chart version of the newest release"
