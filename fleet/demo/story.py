"""The demo's walkthrough: the product's core story, step by step, against a running demo.

1. A commit to main flows dev -> staging (after the soak, and once a Prometheus query over
   dev held for it) -> waits for approval -> prod.
2. ``kubectl scale`` of a managed Deployment is reverted at once.
3. A bad commit is halted in dev and rolled back automatically; staging and prod never
   see it.

Each step prints what it does and what it saw, and raises ``StoryFailed`` when the fleet
did not do what the story says; the end-to-end test runs exactly this.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import yaml

from fleet.api import unit as unit_api
from fleet.demo.environment import DemoFleet
from fleet.kube import KubeClient
from fleet.localkube.gitserver import git_env

T = TypeVar("T")

STORY_SOAK = "5s"
"""The walkthrough shortens staging's soak (a commit to fleet.yaml, like any other change)."""


class StoryFailed(AssertionError):
    """The fleet did not do what the walkthrough says it does."""


class Story:
    def __init__(self, fleet: DemoFleet, say: Callable[[str], None] = print) -> None:
        self.fleet = fleet
        self.say = say
        self.work = Path(tempfile.mkdtemp(prefix="fleet-story-"))
        self._git("clone", "--quiet", fleet.repo_url, str(self.work / "fleet"), cwd=self.work)
        self.repo = self.work / "fleet"
        self.admin = fleet.admin_token_file.read_text().strip()

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.repo, env=git_env(), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise StoryFailed(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def commit(self, message: str, edit: Callable[[Path], None]) -> str:
        self._git("pull", "--quiet", "--rebase", "origin", "main")
        edit(self.repo)
        self._git("commit", "--quiet", "-am", message)
        self._git("push", "--quiet", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")

    def hub(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.fleet.hub_url}{path}",
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=10,
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def wave(self, name: str) -> dict[str, Any]:
        waves = self.hub("GET", "/api/v1/promotions")["waves"]
        found: dict[str, Any] = next(w for w in waves if w["name"] == name)
        return found

    def cluster_at(self, cluster: str, sha: str) -> bool:
        """Every unit of ``cluster`` Ready, every Kustomization at ``sha``, read from the
        cluster."""

        async def check() -> bool:
            kube = self.fleet.clusters[cluster].kubeconfig_path
            client = await KubeClient.from_kubeconfig(str(kube))
            try:
                items, _ = await client.list(
                    unit_api.API_VERSION, unit_api.KIND, unit_api.AGENT_NAMESPACE
                )
            finally:
                await client.close()
            # A HelmRelease unit's revision is its chart version and values, not a commit.
            commits = [i for i in items if (i.get("spec") or {}).get("kind") != "HelmRelease"]
            return (
                bool(commits)
                and all(
                    (unit_api.ready_condition(i.get("status")) or {}).get("status") == "True"
                    for i in items
                )
                and all(
                    str((i.get("status") or {}).get("lastAppliedRevision", "")).endswith(sha)
                    for i in commits
                )
            )

        return anyio.run(check)

    def wait(self, what: str, check: Callable[[], T | None], timeout: float = 120) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise StoryFailed(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)

    def good_commit_flows_through_the_waves(self) -> str:
        self.say("► story 1: a commit to main flows dev -> staging -> approval -> prod")

        def edit(repo: Path) -> None:
            fleet_yaml = repo / "fleet.yaml"
            config = yaml.safe_load(fleet_yaml.read_text())
            for wave in config["waves"]:
                if wave["name"] == "staging":
                    wave["soak"] = STORY_SOAK
            fleet_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
            base = repo / "apps" / "base" / "podinfo" / "kustomization.yaml"
            base.write_text(base.read_text().replace("hello from", "hello again from"))

        sha = self.commit("podinfo: a new greeting (and a short soak for the walkthrough)", edit)
        started = time.monotonic()
        self.say(f"  pushed {sha[:7]} to main")
        self.wait("dev to run it", lambda: self.cluster_at("dev", sha))
        self.say(f"  ✔ dev runs {sha[:7]} ({time.monotonic() - started:.1f}s)")
        self.wait("staging to run it", lambda: self.cluster_at("staging", sha))
        self.say(f"  ✔ staging runs {sha[:7]} after the soak ({time.monotonic() - started:.1f}s)")
        for check in self.wave("staging").get("checks", []):
            if not check["holds"]:
                raise StoryFailed(f"staging was promoted while {check['name']} did not hold")
            self.say(f"  ✔ Prometheus check {check['name']} held: {check['detail']}")

        def prod_awaits_approval() -> dict[str, Any] | None:
            prod = self.wave("prod")
            return prod if prod["candidate"] == sha and "approval" in prod["reason"] else None

        prod = self.wait("prod to wait for approval", prod_awaits_approval)
        self.say(f"  ◎ prod: {prod['reason']}")
        if self.cluster_at("prod", sha):
            raise StoryFailed("prod runs the commit before it was approved")
        approve = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet.cli.main",
                "promote",
                "approve",
                "prod",
                f"--hub={self.fleet.hub_url}",
                f"--token-file={self.fleet.admin_token_file}",
            ],
            capture_output=True,
            text=True,
        )
        if approve.returncode != 0:
            raise StoryFailed(f"fleet promote approve prod: {approve.stderr.strip()}")
        approved = time.monotonic()
        self.wait("prod to run it", lambda: self.cluster_at("prod", sha))
        self.say(f"  ✔ prod runs {sha[:7]} {time.monotonic() - approved:.1f}s after the approval")
        self.wait("every promotion recorded in Git", lambda: self._recorded(sha), timeout=30)
        self.say("  ✔ every promotion is a commit on fleet/promotions")
        return sha

    def _recorded(self, sha: str) -> bool:
        """Whether the records branch holds the promotion of ``sha`` into every wave."""
        self._git("fetch", "--quiet", "origin", "+refs/heads/fleet/promotions:refs/remotes/records")
        subjects = self._git("log", "--format=%s", "refs/remotes/records", "-n", "50")
        return all(
            any(s.startswith(f"{wave}: promote") and sha[:7] in s for s in subjects.splitlines())
            for wave in ("dev", "staging", "prod")
        )

    def scale_is_healed(self) -> float:
        self.say("► story 2: kubectl scale of a managed Deployment is reverted at once")

        async def scale_and_wait() -> float:
            kube = self.fleet.clusters["dev"].kubeconfig_path
            client = await KubeClient.from_kubeconfig(str(kube))
            try:
                live = await client.get("apps/v1", "Deployment", "podinfo", "podinfo")
                if live is None:
                    raise StoryFailed("dev has no podinfo Deployment")
                wanted = live["spec"]["replicas"]
                started = time.monotonic()
                await client.request(
                    "PATCH",
                    "/apis/apps/v1/namespaces/podinfo/deployments/podinfo/scale",
                    body={"spec": {"replicas": wanted + 6}},
                    content_type="application/merge-patch+json",
                    query={"fieldManager": "kubectl-scale"},
                )
                with anyio.fail_after(30):
                    while True:
                        live = await client.get("apps/v1", "Deployment", "podinfo", "podinfo")
                        if live is not None and live["spec"]["replicas"] == wanted:
                            return time.monotonic() - started
                        await anyio.sleep(0.02)
            finally:
                await client.close()

        healed = anyio.run(scale_and_wait)
        self.say(f"  ✔ scaled by hand, back to Git's replicas in {healed * 1000:.0f} ms")
        return healed

    def bad_commit_is_halted_and_rolled_back(self, good: str) -> str:
        self.say("► story 3: a bad commit is halted in dev and rolled back automatically")

        def edit(repo: Path) -> None:
            deployment = repo / "apps" / "base" / "podinfo" / "deployment.yaml"
            text = deployment.read_text()
            if "containerPort: 9898" not in text:
                raise StoryFailed("apps/base/podinfo/deployment.yaml has no containerPort 9898")
            deployment.write_text(text.replace("containerPort: 9898", "containerPort: 98980"))

        bad = self.commit("podinfo: container port 98980 (a typo)", edit)
        self.say(f"  pushed {bad[:7]} to main")
        self.wait(
            "the promoter to roll dev back",
            lambda: self._rolled_back(good, bad),
        )
        self.say(f"  ✔ dev failed at {bad[:7]} and was rolled back to {good[:7]}")
        self.wait("dev to run the good revision again", lambda: self.cluster_at("dev", good))
        for wave in ("staging", "prod"):
            if self.wave(wave)["revision"] != good:
                raise StoryFailed(f"{wave} left {good[:7]}: {self.wave(wave)}")
        self.say(f"  ✔ dev runs {good[:7]} again; staging and prod never saw {bad[:7]}")
        return bad

    def _rolled_back(self, good: str, bad: str) -> bool:
        history = self.hub("GET", "/api/v1/promotions/history", params={"wave": "dev"})
        return any(
            item["action"] == "rollback"
            and item.get("revision") == good
            and item.get("from") == bad
            for item in history.get("items", [])
        )

    def run(self) -> None:
        good = self.good_commit_flows_through_the_waves()
        self.scale_is_healed()
        self.bad_commit_is_halted_and_rolled_back(good)
        self.say("✔ the walkthrough is complete")
