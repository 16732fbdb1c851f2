"""``fleet bootstrap --run-local`` against a real cluster and a fresh repository on a git
daemon: the agent it starts runs as the installed ServiceAccount and manages itself from Git."""

from __future__ import annotations

import base64
import datetime
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from fleet import install
from fleet.api import unit as unit_api
from fleet.cli.bootstrap import deploy_key
from fleet.cli.main import main
from fleet.install.local import LocalAgent
from fleet.kube import Forbidden, KubeClient
from fleet.localkube.cluster import LocalCluster
from fleet.localkube.gitserver import free_port
from hub.config import HubConfig
from tests.gitservers import (
    GitDaemon,
    WorkingClone,
    git_env,
    ssh_server,
    sshd_unavailable_reason,
)
from tests.hubserver import RunningHub, create_token, running_hub
from tests.support import eventually, require


def _commits(bare: Path) -> int:
    out = subprocess.run(
        ["git", "rev-list", "--count", "main"],
        cwd=bare,
        env=git_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


async def _get(kubeconfig: Path, api_version: str, kind: str, name: str, ns: str | None) -> Any:
    async with await KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        return await client.get(api_version, kind, name, ns)


async def _versions(kubeconfig: Path) -> dict[str, str]:
    """resourceVersion of every install object, to see that a re-run wrote nothing."""
    options = install.InstallOptions("dev", "x", least_privilege=True)
    found = {}
    async with await KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        for obj in install.manifests(options):
            meta = obj["metadata"]
            live = await client.get(
                obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")
            )
            assert live is not None, f"{obj['kind']} {meta['name']} missing"
            found[f"{obj['kind']}/{meta['name']}"] = live["metadata"]["resourceVersion"]
    return found


async def _running_agent_pod(kubeconfig: Path) -> dict[str, Any] | None:
    """The agent's Running pod once its Deployment reports it available, else None."""
    async with await KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        deployment = await client.get(
            "apps/v1", "Deployment", install.DEPLOYMENT_NAME, "fleet-system"
        )
        if deployment is None or deployment.get("status", {}).get("availableReplicas") != 1:
            return None
        selector = deployment["spec"]["selector"]["matchLabels"]
        pods, _ = await client.list(
            "v1",
            "Pod",
            "fleet-system",
            label_selector=",".join(f"{k}={v}" for k, v in selector.items()),
        )
    running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
    return running[0] if len(running) == 1 else None


def _applied_by_bootstrap(obj: dict[str, Any]) -> tuple[object, ...]:
    entries = [
        (entry["time"], entry["fieldsV1"])
        for entry in obj["metadata"]["managedFields"]
        if entry["manager"] == install.BOOTSTRAP_FIELD_MANAGER
    ]
    return obj["metadata"]["generation"], entries


async def _eventually_configmap(kubeconfig: Path, namespace: str, value: str) -> None:
    with anyio.fail_after(60):
        while True:
            live = await _get(kubeconfig, "v1", "ConfigMap", "settings", namespace)
            if live is not None and live.get("data") == {"color": value}:
                return
            await anyio.sleep(0.3)


def test_bootstrap_run_local_manages_itself_and_reconciles_commits(
    cluster: LocalCluster,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon, repo = git
    kubeconfig = cluster.kubeconfig_path
    state = tmp_path / "agents"
    metrics_port = free_port()
    bootstrap = [
        "bootstrap",
        "--cluster=dev",
        f"--repo={daemon.url('fleet.git')}",
        f"--kubeconfig={kubeconfig}",
        "--least-privilege",
        "--run-local",
        f"--state-dir={state}",
        "--interval=2s",
        f"--agent-arg=--metrics-address=127.0.0.1:{metrics_port}",
        "--timeout=120",
    ]
    local = LocalAgent("dev", state)
    try:
        assert main(bootstrap) == 0
        assert local.pid() is not None
        agent_http = f"http://127.0.0.1:{metrics_port}"
        assert urllib.request.urlopen(f"{agent_http}/readyz").status == 200
        assert b"fleet_unit_ready" in urllib.request.urlopen(f"{agent_http}/metrics").read()
        assert _commits(repo.bare) == 1
        repo.git("pull", "--quiet", "origin", "main")
        fleet_file = yaml.safe_load((repo.work / "fleet.yaml").read_text())
        assert fleet_file["clusters"] == [{"name": "dev"}]
        committed = list(
            yaml.safe_load_all(
                (repo.work / "clusters/dev/fleet-system/fleet-agent.yaml").read_text()
            )
        )
        assert {"Deployment", "ClusterRole", "ServiceAccount"} <= {o["kind"] for o in committed}
        # The agent applied its own manifests: they carry the unit labels.
        role = anyio.run(
            _get, kubeconfig, "rbac.authorization.k8s.io/v1", "ClusterRole", "fleet-agent", None
        )
        assert role["metadata"]["labels"][unit_api.UNIT_NAME_LABEL] == unit_api.ROOT_UNIT

        repo.commit(
            {
                "clusters/dev/app.yaml": yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "settings", "namespace": namespace},
                        "data": {"color": "blue"},
                    }
                )
            }
        )
        repo.push("main")
        anyio.run(_eventually_configmap, kubeconfig, namespace, "blue")

        # A second run: no commit, no object written, the same agent keeps running.
        pid = local.pid()
        before = anyio.run(_versions, kubeconfig)
        assert main(bootstrap) == 0
        assert _commits(repo.bare) == 2
        assert anyio.run(_versions, kubeconfig) == before
        assert local.pid() == pid

        # The agent's ServiceAccount reads ConfigMaps everywhere, Secrets nowhere but its own.
        anyio.run(_get, local.kubeconfig, "v1", "ConfigMap", "settings", namespace)
        with pytest.raises(Forbidden):
            anyio.run(_get, local.kubeconfig, "v1", "Secret", "any", namespace)
        anyio.run(_get, local.kubeconfig, "v1", "Secret", "any", "fleet-system")

        # `fleet agent stop-local` stops that process by its recorded PID, and says so.
        running = local.pid()
        assert running is not None
        capsys.readouterr()
        stop_local = ["agent", "stop-local", "--cluster=dev", f"--state-dir={state}"]
        assert main(stop_local) == 0
        said = capsys.readouterr().err
        assert f"local agent of cluster dev stopped (pid {running})" in said
        assert local.pid() is None
        assert not Path(f"/proc/{running}").exists(), "the agent process still exists"
        assert main(stop_local) == 0
        assert "no local agent runs for cluster dev" in capsys.readouterr().err

        # Uninstall keeps the workloads; --prune takes them too.
        assert (
            main(
                [
                    "agent",
                    "uninstall",
                    "--cluster=dev",
                    f"--state-dir={state}",
                    f"--kubeconfig={kubeconfig}",
                ]
            )
            == 0
        )
        assert local.pid() is None
        assert anyio.run(_get, kubeconfig, "v1", "ConfigMap", "settings", namespace) is not None
        crd = unit_api.unit_crd()
        assert (
            anyio.run(
                _get, kubeconfig, crd["apiVersion"], crd["kind"], crd["metadata"]["name"], None
            )
            is None
        )
        assert main(["agent", "uninstall", "--prune", f"--kubeconfig={kubeconfig}"]) == 0
        assert anyio.run(_get, kubeconfig, "v1", "ConfigMap", "settings", namespace) is None
    finally:
        local.stop()
        main(["agent", "uninstall", f"--kubeconfig={kubeconfig}"])


def test_bootstrap_over_ssh_generates_a_deploy_key_and_records_the_host_key(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    require(sshd_unavailable_reason())
    require(None if shutil.which("ssh-keyscan") else "ssh-keyscan; run `make system-deps`")
    state = tmp_path / "agents"
    # What a person does between two runs: add the key bootstrap printed to the repository.
    _, public = deploy_key(state / "bootstrap" / "dev" / "deploy-key")
    served = tmp_path / "ssh-served"
    served.mkdir()
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(served / "fleet.git")],
        check=True,
        env=git_env(),
    )
    kubeconfig = cluster.kubeconfig_path
    local = LocalAgent("dev", state)
    try:
        with ssh_server(served, public) as server:
            code = main(
                [
                    "bootstrap",
                    "--cluster=dev",
                    f"--repo={server.url('fleet.git')}",
                    f"--kubeconfig={kubeconfig}",
                    "--run-local",
                    f"--state-dir={state}",
                    "--interval=2s",
                    "--agent-arg=--metrics-address=",
                    "--timeout=120",
                ]
            )
            assert code == 0
            secret = anyio.run(
                _get, kubeconfig, "v1", "Secret", install.GIT_SECRET_NAME, "fleet-system"
            )
            data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            assert data["identity.pub"] == public
            assert "PRIVATE KEY" in data["identity"]
            assert server.known_hosts_line.split()[2] in data["known_hosts"]
            assert (local.git_secret_dir / "identity").read_text() == data["identity"]
    finally:
        local.stop()
        main(["agent", "uninstall", f"--kubeconfig={kubeconfig}"])


@pytest.fixture
def config(tmp_path: Path) -> HubConfig:
    """A hub's configuration: SQLite in the test's folder."""
    return HubConfig.model_validate(
        {"database": f"sqlite:///{tmp_path / 'hub.db'}", "staleAfter": "30s"}
    )


def test_bootstrap_with_a_hub_stores_the_cluster_token_and_the_agent_reports(
    cluster: LocalCluster,
    git: tuple[GitDaemon, WorkingClone],
    config: HubConfig,
    tmp_path: Path,
) -> None:
    daemon, _ = git
    kubeconfig = cluster.kubeconfig_path
    state = tmp_path / "agents"
    local = LocalAgent("dev", state)
    with running_hub(config) as hub:
        token_file = tmp_path / "dev.token"
        token_file.write_text(create_token(config.database, "dev") + "\n")
        admin = create_token(config.database, "alice", role="admin")
        try:
            code = main(
                _hub_bootstrap(daemon, kubeconfig, hub, state, f"--cluster-token-file={token_file}")
            )
            assert code == 0
            secret = anyio.run(
                _get, kubeconfig, "v1", "Secret", install.HUB_SECRET_NAME, "fleet-system"
            )
            assert (
                base64.b64decode(secret["data"]["token"]).decode() == token_file.read_text().strip()
            )
            deployment = anyio.run(
                _get, kubeconfig, "apps/v1", "Deployment", install.DEPLOYMENT_NAME, "fleet-system"
            )
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            assert f"--hub-url={hub.url}" in args
            eventually(lambda: _hub_health(hub, admin, "dev") == "Ready", 30, "dev Ready")
        finally:
            local.stop()
            main(["agent", "uninstall", f"--kubeconfig={kubeconfig}"])


def test_bootstrap_creates_the_hub_token_and_a_rerun_keeps_it_while_the_hub_accepts_it(
    cluster: LocalCluster,
    git: tuple[GitDaemon, WorkingClone],
    config: HubConfig,
    tmp_path: Path,
) -> None:
    daemon, _ = git
    kubeconfig = cluster.kubeconfig_path
    state = tmp_path / "agents"
    local = LocalAgent("dev", state)
    with running_hub(config) as hub:
        admin = create_token(config.database, "alice", role="admin")
        admin_file = tmp_path / "admin.token"
        admin_file.write_text(admin + "\n")
        bootstrap = _hub_bootstrap(
            daemon, kubeconfig, hub, state, f"--hub-admin-token-file={admin_file}"
        )
        try:
            assert main(bootstrap) == 0
            [created] = _cluster_tokens(hub, admin, "dev")
            assert _stored_hub_token(kubeconfig).startswith(f"fleet_{created['id']}_")
            assert local.hub_token_file.read_text() == _stored_hub_token(kubeconfig)
            eventually(lambda: _hub_health(hub, admin, "dev") == "Ready", 30, "dev Ready")

            # Re-run: the Secret's token still works, so no second token is made.
            assert main(bootstrap) == 0
            assert _cluster_tokens(hub, admin, "dev") == [created]

            # Once the hub no longer accepts it, a re-run makes a new one and restarts the
            # agent, which read the old one when it started.
            pid = local.pid()
            httpx.delete(
                f"{hub.url}/api/v1/tokens/{created['id']}",
                headers={"Authorization": f"Bearer {admin}"},
            ).raise_for_status()
            assert main(bootstrap) == 0
            rerun = datetime.datetime.now(datetime.UTC)
            old, new = _cluster_tokens(hub, admin, "dev")
            assert old["id"] == created["id"] and old["revokedAt"] is not None
            assert new["revokedAt"] is None
            assert _stored_hub_token(kubeconfig).startswith(f"fleet_{new['id']}_")
            assert local.pid() not in (None, pid)
            assert local.hub_token_file.read_text() == _stored_hub_token(kubeconfig)
            eventually(
                lambda: _hub_last_report(hub, admin, "dev") > rerun, 30, "a report after the rerun"
            )
        finally:
            local.stop()
            main(["agent", "uninstall", f"--kubeconfig={kubeconfig}"])


def _hub_bootstrap(
    daemon: GitDaemon, kubeconfig: Path, hub: RunningHub, state: Path, token_flag: str
) -> list[str]:
    """``fleet bootstrap`` of cluster dev reporting to ``hub`` (token per ``token_flag``),
    its agent run locally and reporting every second."""
    return [
        "bootstrap",
        "--cluster=dev",
        f"--repo={daemon.url('fleet.git')}",
        f"--kubeconfig={kubeconfig}",
        f"--hub-url={hub.url}",
        token_flag,
        "--run-local",
        f"--state-dir={state}",
        "--interval=2s",
        "--agent-arg=--metrics-address=",
        "--agent-arg=--heartbeat=1s",
        "--timeout=120",
    ]


def _hub_cluster(hub: RunningHub, admin: str, name: str) -> dict[str, Any]:
    """The hub's summary of a cluster; empty if the hub does not know it."""
    response = httpx.get(
        f"{hub.url}/api/v1/clusters/{name}",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=5,
    )
    return dict(response.json()["cluster"]) if response.status_code == 200 else {}


def _hub_health(hub: RunningHub, admin: str, name: str) -> str | None:
    return _hub_cluster(hub, admin, name).get("health")


def _hub_last_report(hub: RunningHub, admin: str, name: str) -> datetime.datetime:
    seen = _hub_cluster(hub, admin, name).get("lastReportAt")
    return (
        datetime.datetime.fromisoformat(seen)
        if seen
        else datetime.datetime.min.replace(tzinfo=datetime.UTC)
    )


def _cluster_tokens(hub: RunningHub, admin: str, name: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{hub.url}/api/v1/tokens", headers={"Authorization": f"Bearer {admin}"}, timeout=5
    )
    response.raise_for_status()
    return [token for token in response.json()["items"] if token["cluster"] == name]


def _stored_hub_token(kubeconfig: Path) -> str:
    secret = anyio.run(_get, kubeconfig, "v1", "Secret", install.HUB_SECRET_NAME, "fleet-system")
    return base64.b64decode(secret["data"]["token"]).decode()


def test_agent_install_applies_secrets_and_a_running_deployment(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    kubeconfig = cluster.kubeconfig_path
    secrets = tmp_path / "git-auth"
    secrets.mkdir()
    (secrets / "username").write_text("git")
    (secrets / "password").write_text("s3cret")
    hub_token = tmp_path / "hub.token"
    hub_token.write_text("fleet_0123456789ab_" + "x" * 32 + "\n")
    try:
        code = main(
            [
                "agent",
                "install",
                "--cluster=dev",
                "--repo=https://git.example.com/fleet.git",
                f"--git-secret-dir={secrets}",
                "--hub-url=https://hub.example.com",
                f"--hub-token-file={hub_token}",
                f"--kubeconfig={kubeconfig}",
            ]
        )
        assert code == 0
        git_auth = anyio.run(
            _get, kubeconfig, "v1", "Secret", install.GIT_SECRET_NAME, "fleet-system"
        )
        assert base64.b64decode(git_auth["data"]["password"]) == b"s3cret"
        deployment = anyio.run(
            _get, kubeconfig, "apps/v1", "Deployment", install.DEPLOYMENT_NAME, "fleet-system"
        )
        assert deployment["spec"]["replicas"] == 1
        pod = deployment["spec"]["template"]["spec"]
        assert {v["name"] for v in pod["volumes"]} >= {"git-auth", "hub-token"}
        assert "--git-secret-dir=/etc/fleet/git" in pod["containers"][0]["args"]
        # The controllers made a pod of it, the scheduler placed it and the (kwok) kubelet
        # runs it: the Deployment is Available, with the Secrets its volumes mount present.
        running = eventually(
            lambda: anyio.run(_running_agent_pod, kubeconfig),
            timeout=120,
            what="the agent Deployment available with a Running pod",
        )
        assert running["spec"]["nodeName"]
        assert running["spec"]["serviceAccountName"] == pod["serviceAccountName"]
        for volume in running["spec"]["volumes"]:
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                secret = anyio.run(_get, kubeconfig, "v1", "Secret", name, "fleet-system")
                assert secret is not None, f"volume {volume['name']} mounts missing Secret {name}"
        # Applying again is a no-op for server-side apply.
        # (The controllers keep writing its status, so compare what apply owns.)
        before = _applied_by_bootstrap(deployment)
        assert (
            main(
                [
                    "agent",
                    "install",
                    "--cluster=dev",
                    "--repo=https://git.example.com/fleet.git",
                    f"--git-secret-dir={secrets}",
                    "--hub-url=https://hub.example.com",
                    f"--hub-token-file={hub_token}",
                    f"--kubeconfig={kubeconfig}",
                ]
            )
            == 0
        )
        again = anyio.run(
            _get, kubeconfig, "apps/v1", "Deployment", install.DEPLOYMENT_NAME, "fleet-system"
        )
        assert _applied_by_bootstrap(again) == before
    finally:
        assert main(["agent", "uninstall", f"--kubeconfig={kubeconfig}"]) == 0
    assert anyio.run(_get, kubeconfig, "v1", "Namespace", "fleet-system", None) is None
