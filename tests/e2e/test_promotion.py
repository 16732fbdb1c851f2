"""Promotion waves end to end: three local clusters (dev, staging, prod), an agent process
each following its wave's ref, a hub whose promoter moves those refs in a real Git
repository, and the ``fleet promote`` CLI.

One story, in order: a good commit flows dev -> staging (after a 2 s soak) -> prod (after
an approval); a bad commit fails in dev, is rolled back there by itself and never reaches
staging or prod; prod is rolled back by hand and the time until it runs the old revision
is measured; a dev cluster that stops reporting blocks staging, and the status says so.

The agents fetch on their own only every 10 minutes: every move reaches them as a
reconcile command the promoter queues on their command streams.
"""

from __future__ import annotations

import datetime
import time
import uuid
from pathlib import Path

import pytest

from fleet.localkube.cluster import LocalCluster
from tests.e2e.promotionkit import CLUSTERS, WAVE, fleet_files, promoting_fleet, waiter
from tests.gitservers import GitDaemon, WorkingClone

pytestmark = pytest.mark.timeout(600)


def test_waves_promote_a_good_commit_stop_a_bad_one_and_roll_back_on_request(
    local_clusters: dict[str, LocalCluster],
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    repo = git[1]
    run = uuid.uuid4().hex[:6]
    namespace = f"e2e-promo-{run}"
    first = repo.commit(fleet_files(namespace, "blue"), message="blue")
    repo.push("main", *(f"{first}:{WAVE}{name}" for name in CLUSTERS))
    # 15 heartbeats: a slow machine does not make a live cluster Stale mid-story, and the
    # stopped dev agent still goes Stale within the story's generous waits.
    with promoting_fleet(local_clusters, git, tmp_path, run, stale_after="15s") as (fleet, agents):
        wait = waiter(fleet, agents)
        wait(lambda: all(fleet.running(c, first) for c in CLUSTERS), 120, "blue everywhere")
        wait(lambda: fleet.wave("prod").get("lastGood") == first, 90, "prod's last good")

        # A good commit: dev at once, staging after the soak, prod after approval.
        second = repo.commit(fleet_files(namespace, "green"), message="green")
        repo.push("main")
        wait(lambda: fleet.running("dev", second), 90, "green in dev")
        wait(lambda: fleet.running("staging", second), 90, "green in staging")
        # Staging moved only after dev ran green and the soak passed (the hub's own
        # records, not a look at one instant, which a slow machine makes a race).
        promoted = {
            h["wave"]: datetime.datetime.fromisoformat(h["at"])
            for wave in ("dev", "staging")
            for h in fleet.get("/api/v1/promotions/history", wave=wave)["items"]
            if h["action"] == "promote" and h["revision"] == second
        }
        assert promoted["staging"] - promoted["dev"] >= datetime.timedelta(seconds=2), promoted
        prod = wait(
            lambda: (w := fleet.wave("prod"))["reason"].startswith("approval") and w,
            90,
            "prod waiting for approval",
        )
        assert prod["candidate"] == second and prod["approved"] is False
        assert fleet.running("prod", first)
        approved = fleet.promote("approve", "prod")
        assert approved.returncode == 0, approved.stderr
        wait(lambda: fleet.running("prod", second), 60, "green in prod")
        wait(lambda: fleet.wave("prod")["lastGood"] == second, 90, "prod good at green")
        one, two = first[:7], second[:7]
        assert [r for r in fleet.records() if "promote" in r or "approve" in r] == [
            f"dev: promote {one} -> {two}",
            f"staging: promote {one} -> {two}",
            f"prod: approve {two}",
            f"prod: promote {one} -> {two}",
        ]

        # A bad commit: dev fails its health check, goes back to green by itself; the
        # pipeline halts there and names the cluster and the unit.
        bad = repo.commit(fleet_files(namespace, "red", broken=True), message="red")
        repo.push("main")
        halt = wait(
            lambda: next(
                (
                    h
                    for h in fleet.get("/api/v1/promotions/history", wave="dev")["items"]
                    if h["action"] == "halt"
                ),
                None,
            ),
            90,
            "dev to halt on the bad commit",
        )
        assert halt["revision"] == bad
        assert "failed on dev (flux-system/apps: HealthCheckFailed)" in halt["why"]
        wait(lambda: fleet.ref(f"{WAVE}dev") == second, 90, "dev's ref back at green")
        wait(lambda: fleet.running("dev", second), 60, "dev back at green")
        dev = fleet.wave("dev")
        assert dev["reason"].startswith(f"{bad[:7]} failed here before"), dev
        for cluster in ("staging", "prod"):
            assert bad not in fleet.revisions_seen(cluster), f"{cluster} saw the bad commit"
            assert fleet.ref(f"{WAVE}{cluster}") == second
        assert f"dev: roll back {bad[:7]} -> {two}" in fleet.records()

        # A manual rollback of prod to blue, timed from the command to prod Ready.
        started = time.monotonic()
        rolled = fleet.promote("rollback", "prod", "--to", first)
        assert rolled.returncode == 0, rolled.stderr
        wait(lambda: fleet.running("prod", first), 60, "prod back at blue")
        rollback_seconds = time.monotonic() - started
        assert fleet.ref(f"{WAVE}prod") == first
        prod = fleet.wave("prod")
        assert prod["action"] == "wait" and "failed here before" in prod["reason"], prod

        # dev's agent stops: dev goes stale and blocks staging; the status names it.
        agents.pop("dev").stop()  # the waiter checks only the agents still in there
        newer = repo.commit(fleet_files(namespace, "yellow"), message="yellow")
        repo.push("main")
        wait(lambda: fleet.ref(f"{WAVE}dev") == newer, 90, "dev's ref at yellow")
        staging = wait(
            lambda: (w := fleet.wave("staging"))["reason"].startswith("blocked") and w,
            120,
            "staging blocked by the stale dev cluster",
        )
        assert staging["reason"] == "blocked by stale cluster(s) dev (maxStale 0)"
        shown = fleet.promote("status")
        assert shown.returncode == 0, shown.stderr
        assert "blocked by stale cluster(s) dev" in shown.stdout
        assert fleet.ref(f"{WAVE}staging") == second
    print(f"\nmanual rollback of prod -> prod Ready at the old revision: {rollback_seconds:.2f}s")
    print(shown.stdout)
