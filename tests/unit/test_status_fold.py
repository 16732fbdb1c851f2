"""The status fold: every rule of how an outcome becomes a unit's status, with plain data."""

from __future__ import annotations

from agent import status
from agent.reconciler import Outcome
from agent.status import UnitStatus
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey

REV1 = "main@sha1:" + "1" * 40
REV2 = "main@sha1:" + "2" * 40
WEB = InventoryEntry(ObjectKey("apps", "Deployment", "apps", "web"), "v1")
DB = InventoryEntry(ObjectKey("apps", "Deployment", "apps", "db"), "v1")


def types(folded: UnitStatus) -> dict[str, str]:
    return {c.type: c.status for c in folded.conditions}


def test_success_sets_ready_and_both_revisions_and_replaces_the_inventory() -> None:
    previous = UnitStatus(inventory=(DB,))
    outcome = Outcome(
        True,
        "ReconciliationSucceeded",
        f"Applied revision: {REV1}",
        REV1,
        applied=True,
        inventory=[WEB],
    )
    folded = status.fold(previous, outcome, at="t1")
    assert types(folded) == {"Ready": "True"}
    assert folded.conditions[0].reason == "ReconciliationSucceeded"
    assert folded.last_applied_revision == REV1
    assert folded.last_attempted_revision == REV1
    assert folded.inventory == (WEB,)
    assert folded.ready_at_its_revision


def test_transient_failure_retries_keeps_applied_revision_and_inventory() -> None:
    previous = status.fold(
        UnitStatus(),
        Outcome(True, "ReconciliationSucceeded", "ok", REV1, applied=True, inventory=[WEB]),
        at="t1",
    )
    folded = status.fold(
        previous, Outcome(False, "ReconciliationFailed", "API down", REV2), at="t2"
    )
    assert types(folded) == {"Ready": "False", "Reconciling": "True"}
    assert folded.condition("Reconciling").reason == status.PROGRESSING_WITH_RETRY  # type: ignore[union-attr]
    assert folded.last_applied_revision == REV1
    assert folded.last_attempted_revision == REV2
    assert folded.inventory == (WEB,)
    assert not folded.ready_at_its_revision


def test_terminal_failure_stalls_and_success_clears_stalled_and_reconciling() -> None:
    stalled = status.fold(
        UnitStatus(), Outcome(False, "BuildFailed", "bad yaml", REV1, stalled=True), at="t1"
    )
    assert types(stalled) == {"Ready": "False", "Stalled": "True"}
    assert stalled.stalled and stalled.condition("Stalled").reason == "BuildFailed"  # type: ignore[union-attr]
    healed = status.fold(
        stalled, Outcome(True, "ReconciliationSucceeded", "ok", REV2, applied=True), at="t2"
    )
    assert types(healed) == {"Ready": "True"}
    assert not healed.stalled


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = status.fold(UnitStatus(), Outcome(False, "A", "one", REV1), at="t1")
    second = status.fold(first, Outcome(False, "B", "two", REV1), at="t2")
    assert second.conditions[0].last_transition_time == "t1"
    assert second.conditions[0].message == "two"
    third = status.fold(second, Outcome(True, "ReconciliationSucceeded", "ok", REV1), at="t3")
    assert third.conditions[0].last_transition_time == "t3"


def test_an_outcome_without_revision_keeps_the_attempted_one() -> None:
    previous = UnitStatus(last_attempted_revision=REV1)
    folded = status.fold(previous, Outcome(False, "ArtifactFailed", "no source", ""), at="t")
    assert folded.last_attempted_revision == REV1


def test_a_rollback_moves_applied_revision_to_what_runs() -> None:
    outcome = Outcome(
        False,
        "UpgradeFailed",
        "failed; rolled back",
        "2.0.0@values:aa",
        applied_revision="1.0.0@values:aa",
    )
    folded = status.fold(UnitStatus(last_applied_revision="x"), outcome, at="t")
    assert folded.last_applied_revision == "1.0.0@values:aa"
    assert folded.last_attempted_revision == "2.0.0@values:aa"


def test_waiting_changes_only_ready() -> None:
    previous = status.fold(
        UnitStatus(), Outcome(True, "ReconciliationSucceeded", "ok", REV1, applied=True), at="t1"
    )
    waiting = status.waiting(
        previous, "DependencyNotReady", "dependency 'a/b' is not ready", at="t2"
    )
    assert waiting.conditions[0].reason == "DependencyNotReady"
    assert waiting.last_applied_revision == REV1


def test_status_round_trips_through_the_stored_form() -> None:
    folded = status.drifted(
        status.handled(
            status.fold(
                UnitStatus(),
                Outcome(
                    False, "BuildFailed", "x", REV1, stalled=True, inventory=[WEB], warnings=["w"]
                ),
                at="t",
            ),
            "2026-12-04T20:00:00Z",
        ),
        at="t9",
    )
    stored = folded.to_status()
    assert stored["inventory"] == {"entries": [{"id": "apps_web_apps_Deployment", "v": "v1"}]}
    assert stored["driftCount"] == 1 and stored["lastHandledReconcileAt"] == "2026-12-04T20:00:00Z"
    assert UnitStatus.from_status(stored) == folded


def test_malformed_stored_conditions_are_dropped() -> None:
    found = UnitStatus.from_status({"conditions": [{"type": "Ready", "status": "maybe"}, {"x": 1}]})
    assert found.conditions == ()


def test_pending_health_is_ready_unknown_and_not_applied_yet() -> None:
    previous = status.fold(
        UnitStatus(), Outcome(True, "ReconciliationSucceeded", "ok", REV1, applied=True), at="t1"
    )
    outcome = Outcome(
        False,
        "Progressing",
        "waiting for: HelmRelease/apps/db",
        REV2,
        applied=True,
        inventory=[WEB],
        pending=True,
    )
    folded = status.fold(previous, outcome, at="t2")
    assert types(folded) == {"Ready": "Unknown", "Reconciling": "True"}
    assert folded.last_applied_revision == REV1
    assert folded.last_attempted_revision == REV2
    assert folded.inventory == (WEB,)
    assert status.health(folded) == "pending"


def test_health_of_a_flux_object() -> None:
    current = status.fold(
        UnitStatus(), Outcome(True, "InstallSucceeded", "ok", "1.0.0", applied=True), at="t"
    )
    assert status.health(current) == "current"
    stalled = status.fold(
        UnitStatus(), Outcome(False, "RetriesExceeded", "no", "1.0.0", stalled=True), at="t"
    )
    assert status.health(stalled) == "failed"
    retrying = status.fold(UnitStatus(), Outcome(False, "InstallFailed", "x", "1.0.0"), at="t")
    assert status.health(retrying) == "pending"
