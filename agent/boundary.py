"""The error boundary around every reconcile, and when the next one runs.

Whatever a reconcile raises becomes an :class:`~agent.reconciler.Outcome` here, so the
caller always folds a status and writes it: an API server that is down, a conflict or a
timeout are transient (Ready=False, retried with exponential backoff from the unit's
``retryInterval``); a bad manifest or a render error is terminal (Stalled until the spec
or the revision changes); a bug in fleet itself is reported on the unit as an internal
error and retried like a transient failure, never lost in a log line.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from agent.reconciler import Outcome
from fleet.helm.cli import HelmError
from fleet.kube import KubeError
from fleet.models import ManifestError
from fleet.render.kustomize import RenderError

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
"""Longest wait between retries of a failing unit: five minutes, Flux's habit."""


def outcome_of(error: Exception, revision: str = "") -> Outcome:
    """The outcome a failure stands for, with its cause in the message."""
    if isinstance(error, KubeError):
        return Outcome(False, "ReconciliationFailed", error.message, revision)
    if isinstance(error, TimeoutError):
        return Outcome(False, "ReconciliationFailed", f"timed out: {error}", revision)
    if isinstance(error, HelmError):
        return Outcome(False, "ReconciliationFailed", str(error), revision)
    if isinstance(error, (ManifestError, RenderError)):
        return Outcome(False, "BuildFailed", str(error), revision, stalled=True)
    return Outcome(
        False,
        "ReconciliationFailed",
        f"internal error: {type(error).__name__}: {error}",
        revision,
    )


async def guarded(
    reconcile: Callable[[], Awaitable[Outcome | None]], *, revision: str = "", unit: object = None
) -> Outcome | None:
    """Run one reconcile; any failure comes back as its outcome (cancellation passes).
    None: the reconcile had nothing to do."""
    try:
        return await reconcile()
    except Exception as error:
        if not isinstance(error, (KubeError, TimeoutError, HelmError, ManifestError, RenderError)):
            log.exception("reconcile crashed", extra={"unit": unit})
        return outcome_of(error, revision)


def retry_delay(retry_interval: float, failures: int, maximum: float = MAX_BACKOFF) -> float:
    """Seconds before retry number ``failures`` (1, 2, ...): doubled each time, capped."""
    exponent = max(failures - 1, 0)
    if exponent > 62:
        return maximum
    return min(retry_interval * float(2**exponent), maximum)


def next_run(
    outcome: Outcome,
    *,
    failures: int,
    interval: float,
    retry_interval: float,
    recheck_stalled: bool = False,
) -> float:
    """Seconds until the unit's next reconcile; ``math.inf`` for a stall that only a new
    spec or revision lifts. ``recheck_stalled``: the kind's desired state can change
    without a commit (a HelmRelease's chart version), so a stall is looked at every
    interval."""
    if outcome.ready:
        return interval
    if outcome.stalled:
        return interval if recheck_stalled else math.inf
    return retry_delay(retry_interval, failures)
