"""Flux-format status models: field names, Go omitempty, timestamps, inventory ids."""

from __future__ import annotations

import datetime

import pydantic
import pytest

from fleet.api.flux import conditions, inventory, status
from fleet.api.flux.conditions import ConditionType, Reason
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey

NOW = datetime.datetime(2026, 12, 4, 19, 50, 35, 123456, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=5)
SHA = "0123456789abcdef0123456789abcdef01234567"


def ready(
    status_: conditions.ConditionStatus, reason: str, when: datetime.datetime
) -> conditions.Condition:
    return conditions.new_condition(
        ConditionType.READY, status_, reason, f"{reason} message", observed_generation=3, now=when
    )


def test_condition_serialises_as_metav1_condition() -> None:
    condition = ready("True", Reason.RECONCILIATION_SUCCEEDED, NOW)
    assert condition.to_status() == {
        "type": "Ready",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-12-04T19:50:35Z",
        "reason": "ReconciliationSucceeded",
        "message": "ReconciliationSucceeded message",
    }


def test_condition_keeps_an_empty_message_and_omits_generation_zero() -> None:
    condition = conditions.new_condition(
        ConditionType.RECONCILING, "True", Reason.PROGRESSING, "", observed_generation=0, now=NOW
    )
    assert condition.to_status() == {
        "type": "Reconciling",
        "status": "True",
        "lastTransitionTime": "2026-12-04T19:50:35Z",
        "reason": "Progressing",
        "message": "",
    }


def test_condition_reads_what_the_api_server_stores() -> None:
    stored = {
        "type": "Ready",
        "status": "False",
        "lastTransitionTime": "2026-12-04T21:50:35+02:00",
        "reason": "BuildFailed",
        "message": "kustomize build failed",
        "unknownField": "ignored",
    }
    condition = conditions.Condition.model_validate(stored)
    assert condition.last_transition_time == NOW.replace(microsecond=0)
    assert condition.observed_generation == 0 and not condition.is_true


@pytest.mark.parametrize("reason", ["", "has space", "9Starts", "Ends_With,"])
def test_reason_the_api_server_would_reject_is_refused(reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="reason"):
        conditions.new_condition("Ready", "True", reason, "", observed_generation=1, now=NOW)


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        conditions.new_condition(
            "Ready",
            "True",
            "Succeeded",
            "",
            observed_generation=1,
            now=datetime.datetime(2026, 1, 1),
        )


def test_an_overlong_message_is_cut_to_what_the_api_server_stores() -> None:
    condition = conditions.new_condition(
        "Ready", "False", "BuildFailed", "x" * 40_000, observed_generation=1, now=NOW
    )
    assert len(condition.message) == conditions.MAX_MESSAGE_LENGTH
    assert condition.message.endswith("...")


def test_set_condition_keeps_the_transition_time_while_the_status_holds() -> None:
    first = [ready("False", Reason.PROGRESSING, NOW)]
    same_status = conditions.set_condition(first, ready("False", Reason.BUILD_FAILED, LATER))
    assert same_status[0].reason == "BuildFailed"
    assert same_status[0].last_transition_time == NOW.replace(microsecond=0)
    flipped = conditions.set_condition(
        same_status, ready("True", Reason.RECONCILIATION_SUCCEEDED, LATER)
    )
    assert flipped[0].last_transition_time == LATER.replace(microsecond=0)
    assert len(flipped) == 1


def test_set_condition_appends_a_new_type_and_remove_drops_it() -> None:
    reconciling = conditions.new_condition(
        ConditionType.RECONCILING, "True", Reason.PROGRESSING, "", observed_generation=3, now=NOW
    )
    both = conditions.set_condition([ready("False", Reason.PROGRESSING, NOW)], reconciling)
    assert [c.type for c in both] == ["Ready", "Reconciling"]
    assert [c.type for c in conditions.remove_condition(both, "Reconciling")] == ["Ready"]


def test_empty_kustomization_status_is_an_empty_object_as_go_omitempty_writes_it() -> None:
    assert status.KustomizationStatus().to_status() == {}


def test_kustomization_status_uses_flux_field_names() -> None:
    written = status.KustomizationStatus(
        observed_generation=3,
        conditions=[ready("True", Reason.RECONCILIATION_SUCCEEDED, NOW)],
        last_applied_revision=f"main@sha1:{SHA}",
        last_attempted_revision=f"main@sha1:{SHA}",
        last_handled_reconcile_at="2026-12-04T19:50:00Z",
        inventory=inventory.ResourceInventory(
            entries=[inventory.ResourceRef(id="apps_web_apps_Deployment", version="v1")]
        ),
        history=[
            status.HistorySnapshot(
                digest="sha256:abc",
                first_reconciled=NOW,
                last_reconciled=LATER,
                last_reconciled_duration=datetime.timedelta(seconds=1, milliseconds=500),
                last_reconciled_status="ReconciliationSucceeded",
                total_reconciliations=2,
                metadata={"revision": f"main@sha1:{SHA}"},
            )
        ],
    ).to_status()
    assert written == {
        "observedGeneration": 3,
        "conditions": [ready("True", Reason.RECONCILIATION_SUCCEEDED, NOW).to_status()],
        "lastHandledReconcileAt": "2026-12-04T19:50:00Z",
        "lastAppliedRevision": f"main@sha1:{SHA}",
        "lastAttemptedRevision": f"main@sha1:{SHA}",
        "inventory": {"entries": [{"id": "apps_web_apps_Deployment", "v": "v1"}]},
        "history": [
            {
                "digest": "sha256:abc",
                "firstReconciled": "2026-12-04T19:50:35Z",
                "lastReconciled": "2026-12-04T19:55:35Z",
                "lastReconciledDuration": "1.5s",
                "lastReconciledStatus": "ReconciliationSucceeded",
                "totalReconciliations": 2,
                "metadata": {"revision": f"main@sha1:{SHA}"},
            }
        ],
    }
    assert status.KustomizationStatus.from_status(written).to_status() == written


def test_an_empty_inventory_still_writes_its_entries() -> None:
    assert status.KustomizationStatus(inventory=inventory.ResourceInventory()).to_status() == {
        "inventory": {"entries": []}
    }


def test_flux_written_kustomization_status_is_read() -> None:
    # As kustomize-controller writes it, with a field fleet does not model.
    stored = {
        "observedGeneration": 1,
        "lastAppliedRevision": f"main@sha1:{SHA}",
        "lastAppliedOriginRevision": "v1.0.0@sha1:abc",
        "lastAttemptedRevision": f"main@sha1:{SHA}",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-12-04T19:50:35Z",
                "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: main@sha1:{SHA}",
            }
        ],
        "inventory": {"entries": [{"id": "_podinfo__Namespace", "v": "v1"}]},
        "someFutureField": {"x": 1},
    }
    read = status.KustomizationStatus.from_status(stored)
    assert read.ready is not None and read.ready.is_true
    assert read.last_applied_origin_revision == "v1.0.0@sha1:abc"
    assert read.inventory is not None
    assert read.inventory.to_entries() == [
        InventoryEntry(ObjectKey(group="", kind="Namespace", namespace="", name="podinfo"), "v1")
    ]


def snapshot(version: int, chart_version: str, status_: str) -> status.HelmReleaseSnapshot:
    return status.HelmReleaseSnapshot(
        digest="sha256:d1",
        name="podinfo",
        namespace="apps",
        version=version,
        status=status_,
        chart_name="podinfo",
        chart_version=chart_version,
        app_version="6.5.4",
        config_digest="sha256:c1",
        first_deployed=NOW,
        last_deployed=LATER,
    )


def test_helm_release_status_uses_flux_field_names() -> None:
    written = status.HelmReleaseStatus(
        observed_generation=2,
        storage_namespace="apps",
        helm_chart="flux-system/apps-podinfo",
        history=[snapshot(2, "6.5.4", "deployed")],
        last_attempted_release_action="upgrade",
        last_attempted_revision="6.5.4",
        last_attempted_config_digest="sha256:c1",
        install_failures=0,
        upgrade_failures=1,
        failures=1,
    ).to_status()
    assert written == {
        "observedGeneration": 2,
        "helmChart": "flux-system/apps-podinfo",
        "storageNamespace": "apps",
        "history": [
            {
                "apiVersion": "v2",
                "digest": "sha256:d1",
                "name": "podinfo",
                "namespace": "apps",
                "version": 2,
                "status": "deployed",
                "chartName": "podinfo",
                "chartVersion": "6.5.4",
                "appVersion": "6.5.4",
                "configDigest": "sha256:c1",
                "firstDeployed": "2026-12-04T19:50:35Z",
                "lastDeployed": "2026-12-04T19:55:35Z",
            }
        ],
        "lastAttemptedReleaseAction": "upgrade",
        "failures": 1,
        "upgradeFailures": 1,
        "lastAttemptedRevision": "6.5.4",
        "lastAttemptedConfigDigest": "sha256:c1",
    }
    assert status.HelmReleaseStatus.from_status(written).to_status() == written


def test_latest_snapshot_is_the_newest_helm_revision() -> None:
    history = [snapshot(2, "6.5.3", "superseded"), snapshot(3, "6.5.4", "deployed")]
    latest = status.HelmReleaseStatus(history=history).latest_snapshot
    assert latest is not None and latest.chart_version == "6.5.4"
    assert status.HelmReleaseStatus().latest_snapshot is None


def test_snapshot_without_its_required_fields_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="chartVersion"):
        status.HelmReleaseSnapshot.model_validate({"name": "podinfo", "version": 1})


def test_source_artifact_keeps_a_zero_size_and_drops_an_empty_digest() -> None:
    artifact = status.Artifact(
        revision=f"main@sha1:{SHA}",
        last_update_time=NOW,
        path="gitrepository/a/b.tar.gz",
        url="",
        size=0,
    )
    assert status.GitRepositoryStatus(artifact=artifact).to_status() == {
        "artifact": {
            "revision": f"main@sha1:{SHA}",
            "lastUpdateTime": "2026-12-04T19:50:35Z",
            "path": "gitrepository/a/b.tar.gz",
            "url": "",
            "size": 0,
        }
    }


def test_git_repository_observed_ignore_is_written_even_when_empty() -> None:
    assert status.GitRepositoryStatus(observed_ignore="").to_status() == {"observedIgnore": ""}


def test_helm_repository_status_uses_flux_field_names() -> None:
    written = status.HelmRepositoryStatus(
        observed_generation=1,
        url="http://127.0.0.1:8080/index.yaml",
        artifact=status.Artifact(
            revision="sha256:" + "a" * 64,
            digest="sha256:" + "b" * 64,
            last_update_time=NOW,
            path="helmrepository/ns/name/index.yaml",
            url="http://127.0.0.1/index.yaml",
        ),
    ).to_status()
    assert set(written) == {"observedGeneration", "url", "artifact"}
    assert set(written["artifact"]) == {"revision", "digest", "lastUpdateTime", "path", "url"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            ObjectKey(group="apps", kind="Deployment", namespace="apps", name="web"),
            "apps_web_apps_Deployment",
        ),
        (ObjectKey(group="", kind="Namespace", namespace="", name="apps"), "_apps__Namespace"),
        (
            ObjectKey(group="", kind="ConfigMap", namespace="apps", name="my_cfg"),
            "apps_my_cfg__ConfigMap",
        ),
        (
            ObjectKey(
                group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                namespace="",
                name="system:metrics",
            ),
            "_system__metrics_rbac.authorization.k8s.io_ClusterRole",
        ),
    ],
)
def test_inventory_ids_are_cli_utils_object_metadata(key: ObjectKey, expected: str) -> None:
    assert inventory.inventory_id(key.namespace, key.name, key.group, key.kind) == expected
    if "_" not in key.name:
        assert inventory.parse_inventory_id(expected) == key


@pytest.mark.parametrize("bad", ["", "noseparators", "ns_name_Kind", "ns_name_group_"])
def test_malformed_inventory_id_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        inventory.parse_inventory_id(bad)
    with pytest.raises(pydantic.ValidationError):
        inventory.ResourceRef(id=bad, version="v1")


def test_inventory_converts_to_and_from_fleet_entries() -> None:
    entries = [
        InventoryEntry(ObjectKey(group="apps", kind="Deployment", namespace="a", name="web"), "v1"),
        InventoryEntry(ObjectKey(group="", kind="Namespace", namespace="", name="a"), "v1"),
    ]
    stored = inventory.ResourceInventory.of(entries)
    assert stored.to_status() == {
        "entries": [{"id": "a_web_apps_Deployment", "v": "v1"}, {"id": "_a__Namespace", "v": "v1"}]
    }
    assert inventory.ResourceInventory.from_status(stored.to_status()).to_entries() == entries
