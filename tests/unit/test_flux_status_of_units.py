"""A unit's status in Flux's format, as the flux CLI reads it from the Flux object."""

from __future__ import annotations

import datetime

from agent import fluxstatus, status
from agent.reconciler import Outcome
from agent.releases import ReleaseMemory
from agent.status import UnitStatus
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey
from fleet.helm import release
from fleet.models import HelmRelease
from fleet.source import Revision

REV = "main@sha1:" + "1" * 40
WEB = InventoryEntry(ObjectKey("apps", "Deployment", "apps", "web"), "v1")


def test_a_kustomization_status_reads_as_kustomize_controllers() -> None:
    unit = status.handled(
        status.fold(
            UnitStatus(),
            Outcome(
                True,
                "ReconciliationSucceeded",
                f"Applied revision: {REV}",
                REV,
                applied=True,
                inventory=[WEB],
            ),
            at="2026-12-04T20:00:00Z",
        ),
        "2026-12-04T20:00:01.5Z",
    )
    written = fluxstatus.kustomization_status(unit, generation=3).to_status()
    assert written["observedGeneration"] == 3
    assert written["lastAppliedRevision"] == REV
    assert written["lastAttemptedRevision"] == REV
    assert written["lastHandledReconcileAt"] == "2026-12-04T20:00:01.5Z"
    assert written["inventory"] == {"entries": [{"id": "apps_web_apps_Deployment", "v": "v1"}]}
    (ready,) = written["conditions"]
    assert ready == {
        "type": "Ready",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-12-04T20:00:00Z",
        "reason": "ReconciliationSucceeded",
        "message": f"Applied revision: {REV}",
    }


def test_a_helmrelease_status_carries_the_release_history_newest_first() -> None:
    hr = HelmRelease.model_validate(
        {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {
                "interval": "1m",
                "chart": {
                    "spec": {"chart": "demo", "sourceRef": {"kind": "HelmRepository", "name": "c"}}
                },
            },
        },
        by_alias=True,
    )
    memory = ReleaseMemory(name="web", namespace="apps", values_digest="sha256:" + "a" * 64)
    memory.history = [
        release.Revision(1, "superseded", "demo-1.0.0", updated="2026-12-04T19:00:00Z"),
        release.Revision(2, "deployed", "demo-1.1.0", updated="2026-12-04T19:30:00Z"),
    ]
    unit = status.fold(
        UnitStatus(),
        Outcome(True, "UpgradeSucceeded", "ok", "1.1.0@values:aa", applied=True),
        at="t",
    )
    written = fluxstatus.helmrelease_status(unit, memory, hr, generation=2).to_status()
    assert [(h["version"], h["chartVersion"]) for h in written["history"]] == [
        (2, "1.1.0"),
        (1, "1.0.0"),
    ]
    assert written["history"][0]["chartName"] == "demo"
    assert written["lastAttemptedRevision"] == "1.1.0"
    assert written["storageNamespace"] == "apps"


def test_a_gitrepository_status_has_the_fetched_revision_as_artifact() -> None:
    fetched = datetime.datetime(2026, 12, 4, 20, 0, tzinfo=datetime.UTC)
    revision = Revision("1" * 40, "main")
    written = fluxstatus.gitrepository_status(
        revision, None, fetched, generation=1, path="gitrepository/x"
    ).to_status()
    assert written["artifact"]["revision"] == REV
    assert written["artifact"]["lastUpdateTime"] == "2026-12-04T20:00:00Z"
    assert written["conditions"][0]["status"] == "True"
    failed = fluxstatus.gitrepository_status(
        revision, "connection refused", fetched, generation=1, path="x"
    ).to_status()
    assert failed["conditions"][0]["reason"] == "GitOperationFailed"
