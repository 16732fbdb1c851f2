"""Clusters whose units come from two Git repositories still promote: real agents in two
local clusters, each with a Kustomization of the fleet repository and one of an app
team's repository (its own GitRepository), and a hub moving the waves' refs.

Before agents reported each unit's source, such a cluster had no single revision and the
next wave never opened. Now the fleet commit comes from the fleet repository's units, and
the app repository's units only have to be Ready, each source at one revision.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.localkube.cluster import LocalCluster
from tests.e2e.promotionkit import WAVE, fleet_files, promoting_fleet, waiter
from tests.gitservers import GitDaemon, WorkingClone, served_repo

pytestmark = pytest.mark.timeout(600)

CLUSTERS = ("dev", "staging")
FLEET = {
    "apiVersion": "fleet.dev/v1alpha1",
    "kind": "Fleet",
    "clusters": [{"name": name, "labels": {"env": name}} for name in CLUSTERS],
    "waves": [
        {"name": "dev", "selector": {"env": "dev"}},
        {"name": "staging", "selector": {"env": "staging"}, "dependsOn": ["dev"], "soak": "1s"},
    ],
}


def app_source(url: str, namespace: str) -> str:
    """The app team's GitRepository and the Kustomization that applies its root."""
    return yaml.safe_dump_all(
        [
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "app-repo", "namespace": "flux-system"},
                "spec": {"interval": "10m", "url": url, "ref": {"branch": "main"}},
            },
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "team-app", "namespace": "flux-system"},
                "spec": {
                    "interval": "10m",
                    "path": "./",
                    "prune": True,
                    "targetNamespace": namespace,
                    "sourceRef": {"kind": "GitRepository", "name": "app-repo"},
                },
            },
        ]
    )


def app_files(namespace: str, release: str) -> dict[str, str]:
    return {
        "settings.yaml": yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "team-settings", "namespace": namespace},
                "data": {"release": release},
            }
        )
    }


def test_a_cluster_with_units_of_two_repositories_promotes_the_fleet_commit(
    local_clusters: dict[str, LocalCluster],
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    app = served_repo(tmp_path / "served", "app.git")
    run = uuid.uuid4().hex[:6]
    namespace = f"e2e-sources-{run}"
    app_sha = app.commit(app_files(namespace, "one"), message="app one")
    app.push("main")

    def files(color: str) -> dict[str, str]:
        files = fleet_files(namespace, color, fleet=FLEET, clusters=CLUSTERS)
        for cluster in CLUSTERS:
            files[f"clusters/{cluster}/team-app.yaml"] = app_source(
                daemon.url("app.git"), namespace
            )
        return files

    first = repo.commit(files("blue"), message="blue")
    repo.push("main", *(f"{first}:{WAVE}{name}" for name in CLUSTERS))
    with promoting_fleet(local_clusters, git, tmp_path, run, clusters=CLUSTERS) as (fleet, agents):
        wait = waiter(fleet, agents)

        def running(cluster: str, sha: str) -> bool:
            """Ready, the fleet repository's units at ``sha``, the app's at app_sha."""
            detail = fleet.get(f"/api/v1/clusters/{cluster}")
            units: list[dict[str, Any]] = (detail["report"] or {}).get("units", [])
            team = [u for u in units if u["name"] == "team-app"]
            own = [u for u in units if u["name"] != "team-app"]
            return (
                detail["cluster"]["health"] == "Ready"
                and bool(team)
                and bool(own)
                and all(u.get("source") == "GitRepository/flux-system/app-repo" for u in team)
                and all(str(u["lastAppliedRevision"]).endswith(app_sha) for u in team)
                and all(str(u["lastAppliedRevision"]).endswith(sha) for u in own)
            )

        wait(lambda: all(running(c, first) for c in CLUSTERS), 120, "blue with the app")
        second = repo.commit(files("green"), message="green")
        repo.push("main")
        wait(lambda: running("dev", second), 60, "green in dev")
        wait(lambda: running("staging", second), 60, "green in staging")
        assert fleet.ref(f"{WAVE}staging") == second
        assert fleet.wave("staging")["action"] in ("settled", "wait"), fleet.wave("staging")
