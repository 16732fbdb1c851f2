"""What the promotion e2e tests share: the fleet repository's files, the hub's view of
the waves through its API and the ``fleet promote`` CLI, and a waiter that fails with the
agents' logs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from fleet.localkube.cluster import LocalCluster
from fleet.localkube.process import ManagedProcess
from hub.config import HubConfig
from tests.e2e.agentprocess import hub_agents
from tests.gitservers import GitDaemon, WorkingClone
from tests.hubserver import create_token, running_hub
from tests.objects import deployment

CLUSTERS = ("dev", "staging", "prod")
WAVE = "refs/heads/fleet/wave/"
UNSCHEDULABLE = {"fleet.dev/no-such-node": "true"}
FLEET = {
    "apiVersion": "fleet.dev/v1alpha1",
    "kind": "Fleet",
    "clusters": [{"name": name, "labels": {"env": name}} for name in CLUSTERS],
    "waves": [
        {"name": "dev", "selector": {"env": "dev"}, "rollback": "auto"},
        {"name": "staging", "selector": {"env": "staging"}, "dependsOn": ["dev"], "soak": "2s"},
        {
            "name": "prod",
            "selector": {"env": "prod"},
            "dependsOn": ["staging"],
            "approval": "required",
        },
    ],
}


def fleet_files(
    namespace: str,
    color: str,
    *,
    broken: bool = False,
    fleet: Mapping[str, Any] = FLEET,
    clusters: Sequence[str] = CLUSTERS,
) -> dict[str, str]:
    """fleet.yaml, one ``apps`` Kustomization per cluster (waits for health, 10 s at most)
    and the app: a namespace, a ConfigMap and a Deployment whose pods change with color."""
    files = {"fleet.yaml": yaml.safe_dump(dict(fleet))}
    for cluster in clusters:
        files[f"clusters/{cluster}/apps.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": "flux-system"},
                "spec": {
                    "interval": "10m",
                    "retryInterval": "2s",
                    "timeout": "10s",
                    "path": "./apps",
                    "prune": True,
                    "wait": True,
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                },
            }
        )
    app = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace},
            "data": {"color": color},
        },
        deployment(namespace, "web", annotations={"color": color}),
    ]
    if broken:
        app.append(
            deployment(
                namespace, "broken", annotations={"color": color}, nodeSelector=UNSCHEDULABLE
            )
        )
    files["apps/app.yaml"] = yaml.safe_dump_all(app)
    return files


class Fleet:
    """The hub's view, the repository's refs and the CLI, for the test's assertions."""

    def __init__(self, hub_url: str, admin_file: Path, repo: WorkingClone) -> None:
        self.hub_url = hub_url
        self.admin_file = admin_file
        self.repo = repo
        self.http = httpx.Client(
            base_url=hub_url,
            headers={"Authorization": f"Bearer {admin_file.read_text()}"},
            timeout=10,
        )

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def wave(self, name: str) -> dict[str, Any]:
        waves = self.get("/api/v1/promotions")["waves"]
        return next((w for w in waves if w["name"] == name), {})

    def running(self, cluster: str, sha: str) -> bool:
        """The cluster reports every unit applied at ``sha`` and Ready."""
        summary = self.get(f"/api/v1/clusters/{cluster}")
        units = (summary["report"] or {}).get("units", [])
        return (
            summary["cluster"]["health"] == "Ready"
            and bool(units)
            and all(str(u.get("lastAppliedRevision", "")).endswith(sha) for u in units)
        )

    def revisions_seen(self, cluster: str) -> set[str]:
        history = self.get(f"/api/v1/clusters/{cluster}/history", limit=1000)["items"]
        return {
            str(unit.get("lastAppliedRevision", "")).rpartition(":")[2]
            for entry in history
            for unit in entry["report"]["units"]
        } | {
            str(entry["report"]["source"].get("revision", "")).rpartition(":")[2]
            for entry in history
        }

    def ref(self, name: str) -> str | None:
        line = self.repo.git("ls-remote", "origin", name)
        return line.split()[0] if line else None

    def records(self) -> list[str]:
        self.repo.git("fetch", "--quiet", "origin", "+fleet/promotions:refs/remotes/records")
        log = self.repo.git("log", "--reverse", "--format=%s", "refs/remotes/records")
        return log.splitlines()

    def promote(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``fleet promote ...`` as a user runs it: a separate process."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet.cli.main",
                "promote",
                *args,
                "--hub",
                self.hub_url,
                "--token-file",
                str(self.admin_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@contextlib.contextmanager
def promoting_fleet(
    local_clusters: Mapping[str, LocalCluster],
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
    run: str,
    *,
    clusters: Sequence[str] = CLUSTERS,
    stale_after: str = "30s",
    metrics_addresses: Mapping[str, str] | None = None,
) -> Iterator[tuple[Fleet, dict[str, ManagedProcess]]]:
    """A hub whose promoter moves the waves' refs of the served ``fleet.git`` every second,
    an admin token for the CLI, and one agent per cluster following its wave's ref,
    reporting to the hub with 1-second heartbeats; all stopped on exit."""
    daemon, repo = git
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    config = HubConfig.model_validate(
        {
            "database": database,
            "staleAfter": stale_after,
            "streamKeepalive": "1s",
            "promotion": {
                "repo": daemon.url("fleet.git"),
                "interval": "1s",
                "cacheDir": str(tmp_path / "hub-cache"),
            },
        }
    )
    with running_hub(config) as hub:
        admin_file = tmp_path / "admin.token"
        admin_file.write_text(create_token(database, "alice", role="admin"))
        with hub_agents(
            local_clusters,
            clusters,
            daemon.url("fleet.git"),
            hub.url,
            database,
            tmp_path,
            f"fleet-e2e-{run}",
            ref_prefix=WAVE,
            heartbeat="1s",
            metrics_addresses=metrics_addresses,
        ) as agents:
            yield Fleet(hub.url, admin_file, repo), agents


def waiter(fleet: Fleet, agents: dict[str, ManagedProcess]) -> Callable[..., Any]:
    def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for agent in agents.values():
                agent.check_running()
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {a.name}:\n{a.log_tail(30)}" for a in agents.values())
                status = fleet.get("/api/v1/promotions")
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; promotions: {status}\n{tails}"
                )
            time.sleep(0.1)

    return wait
