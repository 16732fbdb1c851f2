"""The hub's promoter against a real git daemon and a real hub (SQLite and PostgreSQL).

Reports are sent through the HTTP API with cluster tokens, as agents would; the promoter
moves wave refs in the served repository, and every action lands in the hub's history
and as a commit on the records branch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fleet import sse
from fleet.cli.main import main
from fleet.report import UnitReport
from hub.config import HubConfig
from tests.gitservers import WorkingClone, git_daemon, served_repo
from tests.hubserver import (
    Receiver,
    RunningHub,
    body_of,
    create_token,
    receiver,
    report,
    running_hub,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)

WAVE = "refs/heads/fleet/wave/"
FLEET = {
    "apiVersion": "fleet.dev/v1alpha1",
    "kind": "Fleet",
    "clusters": [
        {"name": "dev", "labels": {"env": "dev"}},
        {"name": "staging", "labels": {"env": "staging"}},
        {"name": "prod-1", "labels": {"env": "prod"}},
        {"name": "prod-2", "labels": {"env": "prod"}},
    ],
    "waves": [
        {"name": "dev", "selector": {"env": "dev"}, "rollback": "auto"},
        {"name": "staging", "selector": {"env": "staging"}, "dependsOn": ["dev"], "soak": "1s"},
        {
            "name": "prod",
            "selector": {"env": "prod"},
            "dependsOn": ["staging"],
            "approval": "required",
            "maxParallel": 1,
        },
    ],
}
CLUSTERS = ("dev", "staging", "prod-1", "prod-2")


@dataclass
class Promotions:
    hub: RunningHub
    repo: WorkingClone
    admin: httpx.Client
    reader: httpx.Client
    agents: dict[str, httpx.Client]
    notified: Receiver

    def status(self) -> dict[str, Any]:
        response = self.admin.get("/api/v1/promotions")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wave(self, name: str) -> dict[str, Any]:
        return next(w for w in self.status()["waves"] if w["name"] == name)

    def report(self, cluster: str, sha: str, **unit: Any) -> None:
        units = None
        if unit:
            revision = f"main@sha1:{sha}"
            units = [
                UnitReport(
                    namespace="flux-system",
                    name="apps",
                    last_applied_revision=revision,
                    last_attempted_revision=revision,
                    **unit,
                )
            ]
        sent = report(cluster, revision_sha=sha, units=units)
        response = self.agents[cluster].put(
            f"/api/v1/clusters/{cluster}/report",
            content=body_of(sent),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text

    def ref(self, name: str) -> str | None:
        line = self.repo.git("ls-remote", "origin", name)
        return line.split()[0] if line else None

    def wait_ref(self, name: str, sha: str, timeout: float = 20) -> None:
        eventually(lambda: self.ref(name) == sha, timeout, f"{name} at {sha[:7]}", 0.1)

    def records(self) -> list[str]:
        """Subjects of the records branch, oldest first."""
        self.repo.git("fetch", "--quiet", "origin", "+fleet/promotions:refs/remotes/records")
        return self.repo.git("log", "--reverse", "--format=%s", "refs/remotes/records").split("\n")

    def act(
        self, wave: str, action: str, client: httpx.Client | None = None, **body: Any
    ) -> httpx.Response:
        return (client or self.admin).post(f"/api/v1/promotions/{wave}/{action}", json=body)


def commit_fleet(repo: WorkingClone, fleet: dict[str, Any], note: str) -> str:
    sha = repo.commit({"fleet.yaml": yaml.safe_dump(fleet), "note.txt": note}, message=note)
    repo.push("main")
    return sha


@pytest.fixture
def promotions(tmp_path: Path, database: str) -> Iterator[Promotions]:
    served = tmp_path / "served"
    served.mkdir()
    repo = served_repo(served, "fleet.git")
    with git_daemon(served) as daemon, receiver() as notified:
        config = HubConfig.model_validate(
            {
                "database": database,
                "staleAfter": "30s",
                "streamKeepalive": "1s",
                "notifications": [{"name": "hook", "type": "webhook", "url": notified.url}],
                "promotion": {
                    "repo": daemon.url("fleet.git"),
                    "interval": "300ms",
                    "cacheDir": str(tmp_path / "hub-cache"),
                },
            }
        )
        with running_hub(config) as hub:

            def client(token: str) -> httpx.Client:
                return httpx.Client(
                    base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=20
                )

            agents = {
                name: client(create_token(database, name, labels={"env": name.split("-")[0]}))
                for name in CLUSTERS
            }
            yield Promotions(
                hub,
                repo,
                client(create_token(database, "alice", role="admin")),
                client(create_token(database, "bob", role="read-only")),
                agents,
                notified,
            )


def settle_everything_at(promotions: Promotions, sha: str) -> None:
    """Bootstrap: the operator points every wave ref at ``sha``; clusters report it."""
    promotions.repo.push(*(f"{sha}:{WAVE}{name}" for name in ("dev", "staging")))
    promotions.repo.push(f"{sha}:{WAVE}prod-batch-1", f"{sha}:{WAVE}prod-batch-2")
    for cluster in CLUSTERS:
        promotions.report(cluster, sha)
    eventually(
        lambda: (
            [(w["action"], w["lastGood"]) for w in promotions.status()["waves"]]
            == [("settled", sha)] * 3
        ),
        20,
        "every wave settled",
    )


def test_a_commit_flows_through_dev_and_staging_then_waits_for_approval(
    promotions: Promotions,
) -> None:
    first = commit_fleet(promotions.repo, FLEET, "first")

    # No wave ref yet: dev follows main's head at once; staging waits for dev's report.
    promotions.wait_ref(f"{WAVE}dev", first)
    staging = eventually(
        lambda: (w := promotions.wave("staging"))["reason"].startswith("blocked") and w,
        10,
        "staging to wait for dev",
    )
    assert staging["reason"] == "blocked by stale cluster(s) dev (maxStale 0)"
    assert staging["candidate"] == first and staging["revision"] is None

    promotions.report("dev", first)
    promotions.wait_ref(f"{WAVE}staging", first)
    promotions.report("staging", first)
    prod = eventually(
        lambda: (w := promotions.wave("prod"))["reason"].startswith("approval") and w,
        10,
        "prod waits for approval",
    )
    assert prod == {
        "name": "prod",
        "dependsOn": ["staging"],
        "revision": None,
        "candidate": first,
        "action": "wait",
        "reason": f"approval pending for {first[:7]}",
        "approvalRequired": True,
        "approved": False,
        "paused": False,
        "clusters": ["prod-1", "prod-2"],
        "lastGood": None,
        "checks": [],
    }
    assert promotions.status()["error"] is None

    refused = promotions.act("prod", "approve", promotions.reader)
    assert refused.status_code == 403
    approved = promotions.act("prod", "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["who"] == "alice" and approved.json()["revision"] == first

    # Batches of one: prod-2's ref moves only once prod-1 is Ready at the revision.
    promotions.wait_ref(f"{WAVE}prod-batch-1", first)
    assert promotions.ref(f"{WAVE}prod-batch-2") is None
    promotions.report("prod-1", first)
    promotions.wait_ref(f"{WAVE}prod-batch-2", first)
    promotions.report("prod-2", first)
    eventually(
        lambda: promotions.wave("prod")["lastGood"] == first, 10, "prod's last good revision"
    )

    eventually(
        lambda: len(promotions.records()) >= 5, 10, "the records branch to hold every action"
    )
    assert promotions.records() == [
        f"dev: promote nothing -> {first[:7]}",
        f"staging: promote nothing -> {first[:7]}",
        f"prod: approve {first[:7]}",
        f"prod batch 1: promote nothing -> {first[:7]}",
        f"prod batch 2: promote nothing -> {first[:7]}",
    ]
    history = promotions.admin.get("/api/v1/promotions/history").json()["items"]
    assert [(h["wave"], h["action"]) for h in reversed(history)] == [
        ("dev", "promote"),
        ("staging", "promote"),
        ("prod", "approve"),
        ("prod", "promote"),
        ("prod", "promote"),
    ]
    assert all(h["commit"] for h in history)
    assert history[-1]["why"] == f"promote {first[:7]}: new commit on main"
    assert history[-2]["why"] == f"promote {first[:7]}: dev Ready at {first[:7]} for 1s"
    only_prod = promotions.admin.get("/api/v1/promotions/history", params={"wave": "prod"})
    assert {h["wave"] for h in only_prod.json()["items"]} == {"prod"}

    # The agents were asked to fetch at once (a source reconcile on their command stream).
    with promotions.agents["dev"].stream(
        "GET", "/api/v1/clusters/dev/commands", headers={"Last-Event-ID": "0"}, timeout=10
    ) as stream:
        command = next_event(stream.iter_lines(), "command")
    assert json.loads(command.data)["source"] is True
    assert json.loads(command.data)["reason"] == f"dev promoted to {first}"


def next_event(lines: Iterator[str], kind: str) -> sse.ServerSentEvent:
    parser = sse.EventStreamParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None and event.event == kind:
            return event
    raise AssertionError(f"the stream ended without a {kind!r} event")


def test_pause_resume_and_rollback_are_admin_actions_recorded_with_who(
    promotions: Promotions,
) -> None:
    first = commit_fleet(promotions.repo, FLEET, "first")
    settle_everything_at(promotions, first)

    assert promotions.act("staging", "pause", promotions.reader).status_code == 403
    paused = promotions.act("staging", "pause")
    assert paused.status_code == 200, paused.text
    assert promotions.act("staging", "pause").status_code == 409
    assert promotions.act("nowhere", "pause").status_code == 404

    second = commit_fleet(promotions.repo, FLEET, "second")
    promotions.wait_ref(f"{WAVE}dev", second)
    promotions.report("dev", second)
    staging = eventually(
        lambda: (w := promotions.wave("staging"))["paused"] and w["candidate"] == second and w,
        10,
        "staging paused with the new candidate",
    )
    assert (staging["action"], staging["reason"]) == ("wait", "paused")
    eventually(lambda: promotions.wave("dev")["lastGood"] == second, 10, "dev good")

    with promotions.admin.stream("GET", "/api/v1/stream", timeout=10) as stream:
        lines = stream.iter_lines()
        next_event(lines, "ready")
        assert promotions.act("staging", "resume").status_code == 200
        resumed = json.loads(next_event(lines, "promotion").data)["record"]
    assert (resumed["wave"], resumed["action"], resumed["who"]) == ("staging", "resume", "alice")
    promotions.wait_ref(f"{WAVE}staging", second)
    promotions.report("staging", second)
    eventually(lambda: promotions.wave("staging")["lastGood"] == second, 10, "staging good")

    # Back to the previous good revision by hand; the revision left is not promoted again.
    rolled = promotions.act("staging", "rollback", to=first[:10])
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["from"] == second and rolled.json()["revision"] == first
    assert promotions.ref(f"{WAVE}staging") == first
    assert promotions.act("staging", "rollback", to=first).status_code == 409
    assert promotions.act("staging", "rollback", to="0" * 12).status_code == 422
    promotions.report("staging", first)
    staging = eventually(
        lambda: (w := promotions.wave("staging"))["lastGood"] == first and w, 10, "staging back"
    )
    assert staging["reason"] == (
        f"{second[:7]} failed here before; a new commit (or an override) is needed"
    )
    # Approving the revision is the override: the gate lets it through again.
    assert promotions.act("staging", "approve", revision=second).status_code == 200
    promotions.wait_ref(f"{WAVE}staging", second)

    promotions.report("staging", second)
    one, two = first[:7], second[:7]
    expected = [
        "staging: pause",
        f"dev: promote {one} -> {two}",
        f"dev: {two} Ready on every cluster",
        "staging: resume",
        f"staging: promote {one} -> {two}",
        f"staging: {two} Ready on every cluster",
        f"staging: roll back {two} -> {one}",
        f"staging: {one} Ready on every cluster",
        f"staging: approve {two}",
        f"staging: promote {one} -> {two}",
        f"staging: {two} Ready on every cluster",
    ]
    eventually(lambda: promotions.records()[-11:] == expected, 10, "the records branch")


def test_a_failing_revision_rolls_dev_back_by_itself_and_never_reaches_staging(
    promotions: Promotions,
) -> None:
    good = commit_fleet(promotions.repo, FLEET, "good")
    settle_everything_at(promotions, good)

    bad = commit_fleet(promotions.repo, FLEET, "bad")
    promotions.wait_ref(f"{WAVE}dev", bad)
    promotions.report("dev", bad, ready="False", reason="HealthCheckFailed", message="timeout")

    promotions.wait_ref(f"{WAVE}dev", good)
    assert promotions.ref(f"{WAVE}staging") == good
    promotions.report("dev", good)
    dev = eventually(
        lambda: (w := promotions.wave("dev"))["action"] == "wait" and w, 10, "dev waits"
    )
    assert dev["reason"].startswith(f"{bad[:7]} failed here before")
    assert promotions.wave("staging")["action"] == "settled"

    history = promotions.admin.get("/api/v1/promotions/history").json()["items"]
    halt, rollback = history[1], history[0]
    assert (halt["action"], halt["revision"], halt["clusters"]) == ("halt", bad, ["dev"])
    assert "failed on dev (flux-system/apps: HealthCheckFailed)" in halt["why"]
    assert (rollback["action"], rollback["from"], rollback["revision"]) == ("rollback", bad, good)
    assert rollback["who"] == "hub"
    assert {h["wave"] for h in history if h["revision"] == bad} == {"dev"}

    def wave_alerts() -> list[tuple[str, str]]:
        return [
            (a["reason"], a["severity"])
            for a in promotions.notified.bodies
            if a["cluster"] == "wave/dev" and a["reason"] in ("PromotionHalted", "RolledBack")
        ]

    alerts = eventually(lambda: len(wave_alerts()) >= 2 and wave_alerts(), 10, "two alerts")
    assert alerts == [("PromotionHalted", "error"), ("RolledBack", "warning")]
    halted = next(a for a in promotions.notified.bodies if a["reason"] == "PromotionHalted")
    assert "failed on dev (flux-system/apps: HealthCheckFailed)" in halted["message"]
    assert halted["labels"] == {"env": "dev", "fleet.dev/wave": "dev"}
    assert f"staging: promote {good[:7]} -> {bad[:7]}" not in promotions.records()

    # The halt and the rollback are Events of dev's cluster too: the events API, the stream
    # and the TUI's events screen show them beside the cluster's own events.
    events = promotions.admin.get("/api/v1/clusters/dev/events").json()["items"]
    wave_events = [
        (e["type"], e["reason"], e["unit"], e["message"]) for e in events if e["unit"] == "wave/dev"
    ]
    assert ("Warning", "PromotionHalted", "wave/dev", f"dev: halt at {bad[:7]}: {halt['why']}") in (
        wave_events
    )
    rolled_back = f"dev: roll back {bad[:7]} -> {good[:7]}: {rollback['why']}"
    assert ("Warning", "RolledBack", "wave/dev", rolled_back) in wave_events
    staging = promotions.admin.get("/api/v1/clusters/staging/events").json()
    assert not any(e["reason"] == "RolledBack" for e in staging["items"])


def test_an_invalid_fleet_yaml_halts_promotion_with_the_field_error(
    promotions: Promotions,
) -> None:
    first = commit_fleet(promotions.repo, FLEET, "first")
    settle_everything_at(promotions, first)
    broken = json.loads(json.dumps(FLEET))
    broken["waves"][1]["dependsOn"] = ["qa"]
    second = commit_fleet(promotions.repo, broken, "broken")

    status = eventually(lambda: (s := promotions.status())["error"] and s, 10, "promotion halted")
    assert status["error"] == (
        f'fleet.yaml: Fleet: waves[1].dependsOn: unknown wave "qa" (at {second[:7]})'
    )
    assert {w["action"] for w in status["waves"]} == {"halt"}
    assert promotions.ref(f"{WAVE}dev") == first


def test_promotion_endpoints_answer_404_on_a_hub_without_promotion(database: str) -> None:
    with running_hub(HubConfig.model_validate({"database": database})) as hub:
        token = create_token(database, "alice", role="admin")
        client = httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"})
        assert client.get("/api/v1/promotions").status_code == 404
        assert client.post("/api/v1/promotions/dev/pause").status_code == 404


def test_the_cli_shows_why_waves_wait_and_acts_on_them(
    promotions: Promotions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = commit_fleet(promotions.repo, FLEET, "first")
    settle_everything_at(promotions, first)
    second = commit_fleet(promotions.repo, FLEET, "second")
    promotions.wait_ref(f"{WAVE}dev", second)
    for cluster in ("dev", "staging"):
        promotions.report(cluster, second)
        promotions.wait_ref(f"{WAVE}{cluster}", second)
    eventually(lambda: promotions.wave("prod")["reason"].startswith("approval"), 10, "prod to wait")
    admin_file, reader_file = tmp_path / "admin.token", tmp_path / "reader.token"
    admin_file.write_text(promotions.admin.headers["Authorization"].removeprefix("Bearer "))
    reader_file.write_text(promotions.reader.headers["Authorization"].removeprefix("Bearer "))

    def fleet(*args: str, token: Path = admin_file) -> tuple[int, str, str]:
        code = main(["promote", *args, "--hub", promotions.hub.url, "--token-file", str(token)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = fleet("status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "WAVE", "REVISION", "CANDIDATE", "STATE", "APPROVAL", "CLUSTERS", "WHY"
    ]  # fmt: skip
    assert lines[3].split()[:6] == ["prod", first[:7], second[:7], "wait", "required", "2"]
    assert lines[3].endswith(f"approval pending for {second[:7]}")
    code, out, _ = fleet("status", "-o", "json")
    assert json.loads(out) == promotions.status()

    code, _, err = fleet("approve", "prod", token=reader_file)
    assert code == 1 and "403" in err
    code, out, _ = fleet("approve", "prod")
    assert (code, out.split(" (")[0]) == (0, f"approved {second[:7]} for wave prod")
    promotions.wait_ref(f"{WAVE}prod-batch-1", second)

    assert fleet("pause", "prod")[:2] == (
        0,
        f"wave prod paused (record {_last_id(promotions)}, by alice)\n",
    )
    assert fleet("resume", "prod")[0] == 0
    code, out, _ = fleet("rollback", "prod", "--to", first[:8])
    assert code == 0 and out.startswith(f"rolled wave prod back from {second[:7]} to {first[:7]}")
    assert promotions.ref(f"{WAVE}prod-batch-1") == first
    code, _, err = fleet("rollback", "nowhere")
    assert code == 1 and "no wave 'nowhere'" in err


def _last_id(promotions: Promotions) -> int:
    items = promotions.admin.get("/api/v1/promotions/history", params={"limit": 1}).json()["items"]
    return int(items[0]["id"])
