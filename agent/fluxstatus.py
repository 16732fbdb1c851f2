"""A unit's typed status in Flux's own format, for the status subresource of its Flux
object (``fleet.api.flux``). Pure: the mirror writer (``agent/mirror.py``) sends it."""

from __future__ import annotations

import datetime
import re

from agent.releases import ReleaseMemory
from agent.status import Condition, UnitStatus
from fleet.api.flux import conditions as flux_conditions
from fleet.api.flux import status as flux_status
from fleet.api.flux.inventory import ResourceInventory
from fleet.models import HelmRelease
from fleet.source import Revision


def _time(text: str) -> datetime.datetime:
    """An RFC 3339 time (helm writes nanoseconds and an offset); now when unreadable."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        found = datetime.datetime.fromisoformat(text)
    except ValueError:
        return datetime.datetime.now(datetime.UTC)
    return found if found.tzinfo else found.replace(tzinfo=datetime.UTC)


def _condition(condition: Condition, generation: int) -> flux_conditions.Condition:
    return flux_conditions.Condition(
        type=condition.type,
        status=condition.status,
        reason=condition.reason or "Unknown",
        message=condition.message,
        observed_generation=generation,
        last_transition_time=_time(condition.last_transition_time),
    )


def _conditions(status: UnitStatus, generation: int) -> list[flux_conditions.Condition]:
    return [_condition(c, generation) for c in status.conditions]


def kustomization_status(status: UnitStatus, *, generation: int) -> flux_status.KustomizationStatus:
    """kustomize-controller's status of a Kustomization unit."""
    return flux_status.KustomizationStatus(
        observed_generation=generation,
        conditions=_conditions(status, generation),
        last_handled_reconcile_at=status.last_handled_reconcile_at or "",
        last_applied_revision=status.last_applied_revision or "",
        last_attempted_revision=status.last_attempted_revision or "",
        inventory=ResourceInventory.of(status.inventory),
    )


def helmrelease_status(
    status: UnitStatus, memory: ReleaseMemory, release: HelmRelease, *, generation: int
) -> flux_status.HelmReleaseStatus:
    """helm-controller's status of a HelmRelease unit: conditions, failure counters and
    the release history (newest first), as ``flux get helmreleases`` reads it."""
    history = []
    for revision in sorted(memory.history, key=lambda r: r.revision, reverse=True)[:5]:
        chart_name, _, chart_version = revision.chart.rpartition("-")
        updated = _time(revision.updated) if revision.updated else _time("")
        history.append(
            flux_status.HelmReleaseSnapshot(
                digest="",
                name=memory.name or release.release_name,
                namespace=memory.namespace or release.release_namespace,
                version=revision.revision,
                status=revision.status,
                chart_name=chart_name or revision.chart,
                chart_version=chart_version,
                app_version=revision.app_version or "",
                config_digest=memory.values_digest or "",
                first_deployed=updated,
                last_deployed=updated,
            )
        )
    return flux_status.HelmReleaseStatus(
        observed_generation=generation,
        conditions=_conditions(status, generation),
        last_handled_reconcile_at=status.last_handled_reconcile_at or "",
        storage_namespace=memory.namespace or release.release_namespace,
        history=history,
        inventory=ResourceInventory.of(status.inventory) if status.inventory else None,
        install_failures=memory.install_failures,
        upgrade_failures=memory.upgrade_failures,
        failures=memory.install_failures + memory.upgrade_failures,
        last_attempted_revision=(status.last_attempted_revision or "").partition("@")[0],
        last_attempted_generation=generation,
    )


def gitrepository_status(
    revision: Revision | None,
    error: str | None,
    fetched_at: datetime.datetime | None,
    *,
    generation: int,
    path: str,
) -> flux_status.GitRepositoryStatus:
    """source-controller's status of a GitRepository: Ready with the fetched revision as
    the artifact; fleet serves no artifact file, so ``url`` and ``digest`` stay empty."""
    now = fetched_at or datetime.datetime.now(datetime.UTC)
    if error is not None:
        ready = flux_conditions.new_condition(
            "Ready", "False", "GitOperationFailed", error, observed_generation=generation, now=now
        )
    elif revision is None:
        ready = flux_conditions.new_condition(
            "Ready",
            "Unknown",
            "Progressing",
            "fetching",
            observed_generation=generation,
            now=now,
        )
    else:
        ready = flux_conditions.new_condition(
            "Ready",
            "True",
            "Succeeded",
            f"stored artifact for revision '{revision.display}'",
            observed_generation=generation,
            now=now,
        )
    artifact = (
        flux_status.Artifact(revision=revision.display, last_update_time=now, path=path, url="")
        if revision is not None
        else None
    )
    return flux_status.GitRepositoryStatus(
        observed_generation=generation, conditions=[ready], artifact=artifact
    )
