"""A seeded real hub for the TUI tests: clusters report through the hub's own API.

``Fleet`` makes one cluster token per cluster and PUTs reports as agents do; ``tui_app``
builds the app against the hub with an admin token. Times are fixed relative to ``t0``
(the moment seeding starts), and the app's clock is ``t0 + CLOCK_OFFSET``, so ages on
screen do not depend on how long the test took to get there.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from textual.pilot import Pilot

from fleet.report import ClusterReport, Event, UnitReport
from hub.config import HubConfig, PromotionConfig
from hub.tui.app import FleetApp
from hub.tui.client import HubClient
from hub.tui.feed import HubSource
from tests.gitservers import WorkingClone, git_daemon, served_repo
from tests.hubserver import RunningHub, body_of, create_token, report, running_hub

OLD = "89abcdef0123456789abcdef0123456789abcdef"
NEW = "0123456789abcdef0123456789abcdef01234567"
CLOCK_OFFSET = datetime.timedelta(minutes=5, seconds=30)
"""Reports arrive within a few seconds after t0, so every age reads '5m'."""

FLEET: tuple[tuple[str, str], ...] = (
    ("dev-1", "dev"),
    ("dev-2", "dev"),
    ("staging-1", "staging"),
    ("staging-2", "staging"),
    ("prod-1", "prod"),
    ("prod-2", "prod"),
    ("prod-3", "prod"),
)


def units(revision: str, *, failing: bool = False, count: int = 2) -> list[UnitReport]:
    applied = f"main@sha1:{revision}"
    made = [
        UnitReport(
            namespace="flux-system",
            name="infra",
            ready="True",
            reason="ReconciliationSucceeded",
            message="Applied revision",
            last_applied_revision=applied,
            inventory_size=12,
        ),
        UnitReport(
            kind="HelmRelease",
            namespace="apps",
            name="web",
            ready="False" if failing else "True",
            reason="HealthCheckFailed" if failing else "ReconciliationSucceeded",
            message="Deployment apps/web: 0/3 replicas available" if failing else "",
            last_applied_revision=applied,
            last_attempted_revision=applied,
            inventory_size=7,
            depends_on=["flux-system/infra"],
            drift_count=1 if failing else 0,
        ),
    ]
    return made[:count]


def cluster_report(
    cluster: str,
    env: str,
    t0: datetime.datetime,
    *,
    revision: str = NEW,
    failing: bool = False,
    drift_minutes_ago: Sequence[int] = (),
) -> ClusterReport:
    """Two units (one failing when asked), drift events some minutes before ``t0``."""
    events = [
        Event(
            time=t0 - datetime.timedelta(minutes=minutes),
            type="Warning",
            reason="DriftCorrected",
            unit="apps/web",
            object="apps/v1/Deployment/apps/web",
            message="spec.replicas was changed outside Git; restored",
        )
        for minutes in drift_minutes_ago
    ]
    made = report(
        cluster,
        revision_sha=revision,
        units=units(revision, failing=failing),
        labels={"env": env},
        reported_at=t0,
        events=events,
    )
    return made.model_copy(update={"agent_version": "0.1.0"})


@dataclass
class Fleet:
    """Agents of a test fleet, each with its own cluster token, reporting to ``hub``."""

    hub: RunningHub
    t0: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    )
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, cluster: str) -> str:
        if cluster not in self.tokens:
            self.tokens[cluster] = create_token(self.hub.config.database, cluster)
        return self.tokens[cluster]

    def report(
        self,
        cluster: str,
        env: str,
        *,
        revision: str = NEW,
        failing: bool = False,
        drift_minutes_ago: Sequence[int] = (),
    ) -> ClusterReport:
        return cluster_report(
            cluster,
            env,
            self.t0,
            revision=revision,
            failing=failing,
            drift_minutes_ago=drift_minutes_ago,
        )

    def put_sync(self, made: ClusterReport) -> None:
        response = httpx.put(
            f"{self.hub.url}/api/v1/clusters/{made.cluster}/report",
            content=body_of(made),
            headers={
                "Authorization": f"Bearer {self.token(made.cluster)}",
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text

    async def hub_history(self, wave: str) -> list[dict[str, Any]]:
        """The wave's promotion history, oldest first, as the hub records it."""
        token = create_token(self.hub.config.database, "auditor", role="read-only")
        async with httpx.AsyncClient(base_url=self.hub.url, timeout=10) as client:
            response = await client.get(
                "/api/v1/promotions/history",
                params={"wave": wave},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.text
        return list(reversed(response.json()["items"]))

    async def put(self, made: ClusterReport) -> None:
        self.token(made.cluster)
        await anyio.to_thread.run_sync(self.put_sync, made)

    def seed(self) -> None:
        """The standard fleet: staging-2 degraded with drift, prod still at OLD."""
        for name, env in FLEET:
            self.put_sync(
                self.report(
                    name,
                    env,
                    revision=OLD if env == "prod" else NEW,
                    failing=name == "staging-2",
                    drift_minutes_ago=(40, 3) if name == "staging-2" else (),
                )
            )

    def clock(self) -> Callable[[], datetime.datetime]:
        moment = self.t0 + CLOCK_OFFSET
        return lambda: moment


def hub_config(tmp_path: Path) -> HubConfig:
    """SQLite in ``tmp_path``; nothing turns Stale during a test; streams notice quickly."""
    return HubConfig.model_validate(
        {
            "database": f"sqlite:///{tmp_path / 'hub.db'}",
            "staleAfter": "1h",
            "streamKeepalive": "1s",
            "streamPoll": "1s",
        }
    )


PROMOTION_FLEET: dict[str, Any] = {
    "apiVersion": "fleet.dev/v1alpha1",
    "kind": "Fleet",
    "clusters": [{"name": name, "labels": {"env": env}} for name, env in FLEET],
    "waves": [
        {"name": "dev", "selector": {"env": "dev"}},
        {"name": "staging", "selector": {"env": "staging"}, "dependsOn": ["dev"], "soak": "1s"},
        {
            "name": "prod",
            "selector": {"env": "prod"},
            "dependsOn": ["staging"],
            "approval": "required",
        },
    ],
}
GIT_DATE = "2026-01-01T00:00:00+00:00"
"""Commits made at a fixed date have the same SHA in every run (snapshots show them)."""
WAVE_REF = "refs/heads/fleet/wave/"


@dataclass
class Promoting:
    """A hub whose promoter follows ``repo`` (served by git daemon), and its agents."""

    fleet: Fleet
    repo: WorkingClone

    def ref(self, wave: str) -> str | None:
        line = self.repo.git("ls-remote", "origin", f"{WAVE_REF}{wave}")
        return line.split()[0] if line else None

    async def wait_ref(self, wave: str, sha: str, timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            while await anyio.to_thread.run_sync(self.ref, wave) != sha:
                await anyio.sleep(0.1)

    async def report_wave(self, env: str, sha: str) -> None:
        for name, cluster_env in FLEET:
            if cluster_env == env:
                await self.fleet.put(self.fleet.report(name, env, revision=sha))

    async def to_approval(self) -> str:
        """Commit fleet.yaml; dev and staging take it and report it; prod (still at an older
        revision) then waits for an approval. Returns the commit."""
        await self.report_wave("prod", OLD)
        sha = self.repo.commit({"fleet.yaml": yaml.safe_dump(PROMOTION_FLEET)}, message="fleet")
        self.repo.push("main")
        await self.wait_ref("dev", sha)
        await self.report_wave("dev", sha)
        await self.wait_ref("staging", sha)
        await self.report_wave("staging", sha)
        return sha


@contextmanager
def promoting_hub(tmp_path: Path) -> Iterator[Promoting]:
    served = tmp_path / "served"
    served.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GIT_AUTHOR_DATE", GIT_DATE)
        env.setenv("GIT_COMMITTER_DATE", GIT_DATE)
        repo = served_repo(served, "fleet.git")
        with git_daemon(served) as daemon:
            config = hub_config(tmp_path).model_copy(
                update={
                    "promotion": PromotionConfig.model_validate(
                        {
                            "repo": daemon.url("fleet.git"),
                            "interval": "300ms",
                            "cacheDir": str(tmp_path / "hub-cache"),
                        }
                    )
                }
            )
            with running_hub(config) as hub:
                yield Promoting(Fleet(hub), repo)


def tui_app(hub: RunningHub, clock: Callable[[], datetime.datetime] | None = None) -> FleetApp:
    token = create_token(hub.config.database, "alice", role="admin")
    source = HubSource(HubClient(hub.url, token, timeout=5), label="hub.test")
    if clock is None:
        return FleetApp(source, promotions_poll=0.5)
    return FleetApp(source, clock=clock, promotions_poll=0.5)


async def until(
    pilot: Pilot[None], check: Callable[[], object], what: str, timeout: float = 15
) -> None:
    """Let the app run until ``check()`` is true; fail naming ``what``."""
    with anyio.move_on_after(timeout):
        while not check():
            await pilot.pause(0.05)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
