"""The error boundary: every failure of a reconcile becomes an outcome, a status is
folded from it, and the retry backs off (transient) or waits for a change (terminal)."""

from __future__ import annotations

import math

import pytest

from agent import boundary, status
from agent.reconciler import Outcome
from agent.status import UnitStatus
from fleet.kube.errors import ApiUnavailable, Conflict, Forbidden
from fleet.models import ManifestError
from fleet.render.kustomize import RenderError

pytestmark = pytest.mark.anyio

REV = "main@sha1:" + "a" * 40


async def test_api_down_mid_reconcile_becomes_a_written_status_with_backoff() -> None:
    written: list[UnitStatus] = []
    current = UnitStatus()
    delays = []

    async def reconcile() -> Outcome:
        raise ApiUnavailable("apply Deployment apps/web: connection refused", status=0)

    for failures in range(1, 6):
        outcome = await boundary.guarded(reconcile, revision=REV)
        current = status.fold(current, outcome, at="t")
        written.append(current)
        delays.append(
            boundary.next_run(outcome, failures=failures, interval=600, retry_interval=10)
        )
    assert len(written) == 5
    ready = written[-1].condition("Ready")
    assert ready is not None and ready.status == "False"
    assert "connection refused" in ready.message
    assert written[-1].last_attempted_revision == REV
    assert not written[-1].stalled
    assert delays == [10, 20, 40, 80, 160]


@pytest.mark.parametrize(
    "error", [Conflict("conflict"), Forbidden("forbidden"), TimeoutError("slow")]
)
async def test_api_errors_and_timeouts_are_retried_not_stalled(error: Exception) -> None:
    async def reconcile() -> Outcome:
        raise error

    outcome = await boundary.guarded(reconcile, revision=REV)
    assert not outcome.ready and not outcome.stalled
    assert outcome.reason == "ReconciliationFailed"


@pytest.mark.parametrize(
    "error",
    [ManifestError("apps/x.yaml", "Deployment/web", "spec", "bad"), RenderError("apps", "boom")],
)
async def test_bad_input_stalls_until_spec_or_revision_change(error: Exception) -> None:
    async def reconcile() -> Outcome:
        raise error

    outcome = await boundary.guarded(reconcile, revision=REV)
    assert outcome.stalled and outcome.reason == "BuildFailed"
    assert boundary.next_run(outcome, failures=1, interval=60, retry_interval=10) == math.inf
    assert (
        boundary.next_run(outcome, failures=1, interval=60, retry_interval=10, recheck_stalled=True)
        == 60
    )


async def test_a_bug_is_reported_on_the_unit_and_retried() -> None:
    async def reconcile() -> Outcome:
        raise KeyError("metadata")

    outcome = await boundary.guarded(reconcile, revision=REV)
    assert outcome.message == "internal error: KeyError: 'metadata'"
    assert not outcome.stalled


def test_backoff_is_capped() -> None:
    assert boundary.retry_delay(10, 200) == boundary.MAX_BACKOFF
    assert boundary.retry_delay(10, 1) == 10


def test_ready_runs_again_on_its_interval() -> None:
    outcome = Outcome(True, "ReconciliationSucceeded", "ok", REV)
    assert boundary.next_run(outcome, failures=0, interval=60, retry_interval=10) == 60
