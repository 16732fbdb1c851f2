"""The whole fleet end to end: three local clusters, three agent processes, one hub, a
Git server. Agents report to the hub and to the Git status branch; a signed webhook
makes them reconcile at once; a broken unit shows as Degraded and is notified; a stopped
agent goes Stale."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from agent.reporters import read_status_branch
from fleet.localkube.cluster import LocalCluster
from fleet.localkube.process import ManagedProcess
from fleet.source import GitRef, GitSource
from hub.config import HubConfig
from hub.webhooks import signature_of
from tests.e2e.agentprocess import hub_agents
from tests.gitservers import GitDaemon, WorkingClone
from tests.hubserver import create_token, receiver, running_hub
from tests.objects import configmap
from tests.support import eventually

CLUSTERS = ("dev", "staging", "prod")
WEBHOOK_SECRET = "e2e-webhook-secret"


def cluster_files(namespace: str, color: str) -> dict[str, str]:
    files = {}
    for cluster in CLUSTERS:
        files[f"clusters/{cluster}/app.yaml"] = yaml.safe_dump_all(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                configmap(namespace, "settings", color=color, cluster=cluster),
            ]
        )
    return files


class Fleet:
    def __init__(self, hub_url: str, admin: str, repo: WorkingClone, daemon: GitDaemon) -> None:
        self.hub_url = hub_url
        self.admin = admin
        self.repo = repo
        self.daemon = daemon

    def get(self, path: str) -> Any:
        response = httpx.get(
            f"{self.hub_url}{path}", headers={"Authorization": f"Bearer {self.admin}"}, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def clusters(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.get("/api/v1/clusters")["items"]}

    def all_ready_at(self, sha: str, names: tuple[str, ...] = CLUSTERS) -> bool:
        clusters = self.clusters()
        return all(
            name in clusters
            and clusters[name]["health"] == "Ready"
            and str(clusters[name].get("revision", "")).endswith(sha)
            and self.applied(name, sha)
            for name in names
        )

    def applied(self, cluster: str, sha: str) -> bool:
        report = self.get(f"/api/v1/clusters/{cluster}")["report"] or {}
        units = report.get("units", [])
        return bool(units) and all(
            str(u.get("lastAppliedRevision", "")).endswith(sha) for u in units
        )

    def webhook(self, body: dict[str, Any], *, signed: bool = True) -> httpx.Response:
        content = json.dumps(body).encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Fleet-Timestamp": stamp,
            "X-Fleet-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        if signed:
            headers["X-Fleet-Signature"] = signature_of(
                WEBHOOK_SECRET, stamp.encode() + b"." + content
            )
        return httpx.post(
            f"{self.hub_url}/api/v1/webhooks/generic", content=content, headers=headers, timeout=10
        )


def test_agents_hub_and_status_branch_tell_the_same_story(
    local_clusters: dict[str, LocalCluster],
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
    database: str,
) -> None:
    daemon, repo = git
    run = uuid.uuid4().hex[:6]
    namespace = f"e2e-hub-{run}"
    first = repo.commit(cluster_files(namespace, "blue"), message="blue")
    repo.push("main")
    with receiver() as slack:
        config = HubConfig.model_validate(
            {
                "database": database,
                "staleAfter": "4s",
                "streamKeepalive": "1s",
                "webhooks": {"generic": {"secret": WEBHOOK_SECRET}},
                "notifications": [
                    {"name": "chat", "type": "slack", "url": slack.url, "severity": "warning"}
                ],
            }
        )
        with running_hub(config) as hub:
            admin = create_token(database, "e2e-admin", role="admin")
            with hub_agents(
                local_clusters,
                CLUSTERS,
                daemon.url("fleet.git"),
                hub.url,
                database,
                tmp_path,
                f"fleet-e2e-{run}",
                status_branch="fleet-status",
                heartbeat="1s",
            ) as agents:
                fleet = Fleet(hub.url, admin, repo, daemon)
                _wait(
                    fleet,
                    lambda: fleet.all_ready_at(first),
                    agents,
                    90,
                    "all clusters Ready at the first commit",
                )

                # A commit, announced by a signed webhook, reaches every cluster at once:
                # the agents fetch only every 10 minutes on their own.
                second = repo.commit(cluster_files(namespace, "green"), message="green")
                repo.push("main")
                assert fleet.webhook({"ref": "refs/heads/main"}, signed=False).status_code == 401
                started = time.monotonic()
                accepted = fleet.webhook({"ref": "refs/heads/main", "after": second})
                assert accepted.status_code == 202, accepted.text
                assert sorted(accepted.json()["queued"]) == sorted(CLUSTERS)
                _wait(
                    fleet,
                    lambda: fleet.all_ready_at(second),
                    agents,
                    60,
                    "the webhook's commit everywhere",
                )
                webhook_latency = time.monotonic() - started

                # A broken unit in prod: prod is Degraded with the unit's message.
                broken = dict(cluster_files(namespace, "green"))
                broken["clusters/prod/broken.yaml"] = yaml.safe_dump(
                    {
                        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                        "kind": "Kustomization",
                        "metadata": {"name": "broken", "namespace": "flux-system"},
                        "spec": {"interval": "1m", "path": "./does-not-exist", "prune": True},
                    }
                )
                third = repo.commit(broken, message="broken prod")
                repo.push("main")
                assert fleet.webhook({"ref": "refs/heads/main", "after": third}).status_code == 202

                def prod_degraded() -> dict[str, Any] | None:
                    prod = fleet.clusters().get("prod", {})
                    return prod if prod.get("health") == "Degraded" else None

                prod = _wait(fleet, prod_degraded, agents, 60, "prod Degraded")
                assert "broken" in prod["message"] and "path not found" in prod["message"]
                _wait(
                    fleet,
                    lambda: fleet.all_ready_at(third, ("dev", "staging")),
                    agents,
                    60,
                    "dev, staging Ready",
                )
                notified = eventually(
                    lambda: [m for m in slack.bodies if "prod" in json.dumps(m)],
                    30,
                    "a Slack message about prod",
                )
                assert (
                    "text" in notified[0] or "blocks" in notified[0] or "attachments" in notified[0]
                )

                # The Git status branch holds the same health as the hub.
                source = GitSource(
                    daemon.url("fleet.git"),
                    GitRef(branch="fleet-status"),
                    cache_dir=tmp_path / "status-reader",
                )

                def branch_agrees() -> bool:
                    hub_view = fleet.clusters()
                    reports = {r.cluster: r for r in read_status_branch(source)}
                    if set(reports) != set(CLUSTERS):
                        return False
                    return all(
                        ({u.ready for u in reports[n].units} == {"True"})
                        == (hub_view[n]["health"] == "Ready")
                        and reports[n].source.revision == hub_view[n]["revision"]
                        for n in CLUSTERS
                    )

                eventually(branch_agrees, 30, "the status branch to match the hub")

                # A running agent's heartbeats (1 s) keep it fresh well inside staleAfter
                # (4 s): the hub hears it again and again, and it is not Stale...
                heard = _last_heard(fleet, "dev")
                for _ in range(3):
                    heard = eventually(
                        lambda since=heard: _heard_after(fleet, "dev", since), 60, "a heartbeat"
                    )
                # ...and one that stops reporting goes Stale, and stays unheard.
                agents["dev"].stop()
                assert agents["dev"].alive() is False
                stopped = time.monotonic()
                eventually(lambda: fleet.clusters()["dev"]["health"] == "Stale", 60, "dev Stale")
                stale_after = time.monotonic() - stopped
                last_heard = _last_heard(fleet, "dev")
                eventually(
                    lambda: (
                        _last_heard(fleet, "staging") > last_heard + datetime.timedelta(seconds=2)
                    ),
                    60,
                    "heartbeats of another cluster",
                )
                assert _last_heard(fleet, "dev") == last_heard
    print(f"webhook -> all clusters at the new revision: {webhook_latency:.2f}s")
    print(f"agent stopped -> cluster Stale: {stale_after:.1f}s")


def _last_heard(fleet: Fleet, name: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(fleet.clusters()[name]["lastReportAt"])


def _heard_after(fleet: Fleet, name: str, since: datetime.datetime) -> datetime.datetime | None:
    """When the hub last heard the cluster, once that is after ``since``; never Stale."""
    cluster = fleet.clusters()[name]
    assert cluster["health"] != "Stale", f"{name} went Stale while its agent runs"
    heard = datetime.datetime.fromisoformat(cluster["lastReportAt"])
    return heard if heard > since else None


def _wait(
    fleet: Fleet,
    check: Callable[[], Any],
    agents: dict[str, ManagedProcess],
    timeout: float,
    what: str,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for agent in agents.values():
            if agent.pid is not None and agent.alive() is False and agent.pid:
                agent.check_running()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {a.name}:\n{a.log_tail(20)}" for a in agents.values())
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; hub: {fleet.clusters()}\n{tails}"
            )
        time.sleep(0.3)
