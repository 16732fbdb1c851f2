"""A PromQL verification gate end to end: a real Prometheus (built from source) scraping
the dev agent's ``/metrics``, a hub whose promoter evaluates the staging wave's check, and
agents in two local clusters following their waves' refs.

The story: a new commit runs Ready in dev, but staging waits while Prometheus cannot be
reached, then while it answers and the query is false (it scrapes the wrong port, so the
dev agent is not ``up``), and each time the status says why; once Prometheus scrapes the
agent, the query holds, and after the soak the commit enters staging.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from fleet.localkube import ports
from fleet.localkube.cluster import LocalCluster
from fleet.localkube.prometheus import LocalPrometheus
from tests.e2e.promotionkit import WAVE, Fleet, fleet_files, promoting_fleet, waiter
from tests.gitservers import GitDaemon, WorkingClone

pytestmark = pytest.mark.timeout(600)

CLUSTERS = ("dev", "staging")
QUERY = 'min(up{job="fleet-agents", cluster=~"{clusters}"}) == 1'


def fleet_with_check(prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "fleet.dev/v1alpha1",
        "kind": "Fleet",
        "clusters": [{"name": name, "labels": {"env": name}} for name in CLUSTERS],
        "waves": [
            {"name": "dev", "selector": {"env": "dev"}},
            {
                "name": "staging",
                "selector": {"env": "staging"},
                "dependsOn": ["dev"],
                "soak": "3s",
                "verify": [
                    {
                        "name": "agents-up",
                        "interval": "1s",
                        "timeout": "5s",
                        "prometheus": {"address": prometheus_url, "query": QUERY},
                    }
                ],
            },
        ],
    }


def test_a_prometheus_check_holds_a_wave_until_its_query_holds(
    local_clusters: dict[str, LocalCluster],
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    repo = git[1]
    run = uuid.uuid4().hex[:6]
    namespace = f"e2e-verify-{run}"
    metrics = f"127.0.0.1:{ports.free_port()}"
    nothing_there = f"127.0.0.1:{ports.free_port()}"
    prometheus = LocalPrometheus(tmp_path / "prometheus", {"dev": nothing_there})
    fleet_yaml = fleet_with_check(prometheus.url)

    def files(color: str) -> dict[str, str]:
        return fleet_files(namespace, color, fleet=fleet_yaml, clusters=CLUSTERS)

    first = repo.commit(files("blue"), message="blue")
    repo.push("main", *(f"{first}:{WAVE}{name}" for name in CLUSTERS))
    try:
        with promoting_fleet(
            local_clusters,
            git,
            tmp_path,
            run,
            clusters=CLUSTERS,
            metrics_addresses={"dev": metrics},
        ) as (fleet, agents):
            wait = waiter(fleet, agents)
            wait(lambda: all(fleet.running(c, first) for c in CLUSTERS), 120, "blue")

            second = repo.commit(files("green"), message="green")
            repo.push("main")
            wait(lambda: fleet.running("dev", second), 60, "green in dev")

            # Nothing listens at Prometheus's address yet: the gate holds and says so.
            refused = wait(
                lambda: _failing_reason(fleet, "prometheus at"), 60, "an unreachable gate"
            )
            assert f"agents-up does not hold: prometheus at {prometheus.url}:" in refused
            assert fleet.ref(f"{WAVE}staging") == first

            # Prometheus answers, but the agent it scrapes is not there: no samples.
            prometheus.start()
            wait(
                lambda: _failing_reason(fleet, "query returned no samples"),
                60,
                "a gate whose query is false",
            )
            assert fleet.ref(f"{WAVE}staging") == first
            assert fleet.running("staging", first)
            shown = fleet.promote("status", "-o", "json")
            assert shown.returncode == 0, shown.stderr
            check = json.loads(shown.stdout)["waves"][1]["checks"][0]
            assert check["name"] == "agents-up" and check["holds"] is False, check

            # Now it scrapes the dev agent: up == 1 holds, and after the soak, staging moves.
            prometheus.retarget({"dev": metrics})
            wait(lambda: fleet.running("staging", second), 90, "green in staging")
            check = fleet.wave("staging")["checks"][0]
            assert check["holds"] is True, check
            promoted = [r for r in fleet.records() if r.startswith("staging: promote")]
            assert promoted == [f"staging: promote {first[:7]} -> {second[:7]}"]
    finally:
        prometheus.stop()


def _failing_reason(fleet: Fleet, needle: str) -> str | None:
    reason = str(fleet.wave("staging").get("reason", ""))
    prefix = "verification failing: agents-up does not hold: "
    return reason if reason.startswith(prefix) and needle in reason else None
