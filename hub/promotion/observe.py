"""From what the hub knows to what the gate reads: pure functions, tested with plain data.

A cluster's report becomes a ``ClusterStatus`` (the commit every unit applied, Ready there
or not, failing or merely progressing); the wave refs read from Git and the hub's own
records become ``WaveState``s; and the decisions become the API's view of each wave.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleet.core import promotion
from fleet.core.promotion import ClusterStatus, Decision, Inputs, WaveState
from fleet.models.fleetconfig import FleetConfig, Verification, Wave
from fleet.report import ClusterReport, UnitReport
from hub import api
from hub.store.promotions import Readiness, ReadinessChanges, WaveRecord

NOT_FAILURES = frozenset({"", "DependencyNotReady", "Progressing", "ProgressingWithRetry"})
"""Ready=False reasons that say "not yet", not "failed": they never halt a wave."""


def commit_of(revision: str | None) -> str | None:
    """``main@sha1:<sha>``, ``sha1:<sha>`` or ``<sha>`` -> ``<sha>``."""
    if not revision:
        return None
    digest = revision.rpartition("@")[2]
    algorithm, separator, sha = digest.partition(":")
    return (sha if separator else algorithm) or None


@dataclass(frozen=True)
class Observation:
    """What one report says about its cluster, before the soak clock is applied."""

    revision: str | None
    ready: bool
    failing: str | None = None
    attempted: str | None = None
    progressing: str | None = None
    """Why a cluster whose units are Ready is not yet Ready at one release."""


def observe(report: ClusterReport) -> Observation:
    """The fleet commit every active Kustomization of the fleet repository applied (None
    when they disagree), whether every active unit is Ready there and not half way to a
    newer one, and which units failed at which commit.

    Kustomizations of other Git sources (an app team's repository) do not take part in
    the fleet commit; within each such source the units must agree on one revision, else
    the cluster is progressing and ``progressing`` says which source. A HelmRelease unit's
    revisions are its chart version and values, not commits: it counts for readiness and
    failure, while the commit comes from the Kustomizations.
    """
    active = [unit for unit in report.units if not unit.suspended]
    if not active:
        revision = commit_of(report.source.revision)
        return Observation(revision, revision is not None and report.source.ready, None, revision)
    kustomizations = [unit for unit in active if unit.kind == "Kustomization"]
    from_git = [unit for unit in kustomizations if not unit.source] or kustomizations or active
    applied = {commit_of(unit.last_applied_revision) for unit in from_git}
    revision = applied.pop() if len(applied) == 1 else None
    progressing = _other_sources_progressing(u for u in kustomizations if u.source)
    ready = (
        revision is not None
        and progressing is None
        and all(unit.ready == "True" for unit in active)
        and all(commit_of(u.last_attempted_revision) in (None, revision) for u in from_git)
    )
    failures = [
        unit for unit in active if unit.ready == "False" and unit.reason not in NOT_FAILURES
    ]
    failing = ", ".join(f"{unit.key}: {unit.reason}" for unit in failures) or None
    attempted_by = [u for u in failures if u in from_git] or from_git
    attempted = next(
        (
            commit_of(unit.last_attempted_revision)
            for unit in attempted_by
            if unit.last_attempted_revision
        ),
        revision,
    )
    return Observation(revision, ready, failing, attempted, progressing)


def _other_sources_progressing(units: Iterable[UnitReport]) -> str | None:
    """Why the units of the other Git sources do not stand at one revision each, or None."""
    by_source: dict[str, list[UnitReport]] = {}
    for unit in units:
        by_source.setdefault(unit.source, []).append(unit)
    for source, members in sorted(by_source.items()):
        applied = sorted({promotion.short(commit_of(u.last_applied_revision)) for u in members})
        if len(applied) > 1:
            return f"units of {source} run different revisions ({', '.join(applied)})"
        for unit in members:
            attempted = commit_of(unit.last_attempted_revision)
            if attempted not in (None, commit_of(unit.last_applied_revision)):
                return f"{unit.key} is applying {promotion.short(attempted)} of {source}"
    return None


def cluster_status(
    name: str,
    observation: Observation,
    readiness: Readiness | None,
    last_seen: float | None,
) -> ClusterStatus:
    ready_since = (
        _utc(readiness.ready_since)
        if observation.ready
        and readiness is not None
        and readiness.revision == observation.revision
        else None
    )
    return ClusterStatus(
        cluster=name,
        revision=observation.revision,
        ready=observation.ready,
        ready_since=ready_since,
        failing=observation.failing,
        attempted=observation.attempted,
        progressing=observation.progressing,
        reported_at=_utc(last_seen) if last_seen is not None else None,
    )


def readiness_changes(
    current: Mapping[str, Readiness], ready_at: Mapping[str, str | None], now: float
) -> ReadinessChanges:
    """The soak clock: a cluster Ready at a commit keeps its start time while it stays Ready
    there; not Ready, or Ready at another commit, restarts it. ``ready_at`` maps clusters
    to the commit they are Ready at, or None."""
    changes = ReadinessChanges()
    for cluster, revision in ready_at.items():
        known = current.get(cluster)
        if revision is None:
            if known is not None:
                changes.drop.append(cluster)
        elif known is None or known.revision != revision:
            changes.set[cluster] = Readiness(revision, now)
    return changes


def wave_refs(config: FleetConfig, wave: Wave) -> list[str]:
    """The refs the wave's clusters follow: its own, or ``<ref>-batch-<k>`` per batch."""
    steps = promotion.batches(config, wave)
    if len(steps) <= 1:
        return [wave.effective_ref]
    return [f"{wave.effective_ref}-batch-{k}" for k in range(1, len(steps) + 1)]


def batch_of(config: FleetConfig, wave: Wave, cluster: str) -> int | None:
    """The 1-based batch a cluster belongs to in a batched wave (None: not batched)."""
    steps = promotion.batches(config, wave)
    if len(steps) <= 1:
        return None
    return next((k for k, step in enumerate(steps, 1) if cluster in step), None)


def follows_source(wave: Wave, source_ref: str) -> bool:
    return wave.effective_ref == source_ref


def wave_states(
    config: FleetConfig,
    refs: Mapping[str, str],
    records: Mapping[str, WaveRecord],
    head: str,
    source_ref: str,
) -> dict[str, WaveState]:
    states = {}
    for wave in config.waves:
        names = wave_refs(config, wave)
        record = records.get(wave.name, WaveRecord(wave.name))
        batches: tuple[str | None, ...] = ()
        if follows_source(wave, source_ref):
            revision: str | None = head
            if len(names) > 1:
                batches = (head,) * len(names)
        elif len(names) == 1:
            revision = refs.get(names[0])
        else:
            batches = tuple(refs.get(name) for name in names)
            revision = batches[0]
        states[wave.name] = WaveState(
            revision=revision,
            batches=batches,
            last_good=record.last_good,
            paused=record.paused,
            approvals=record.approvals,
            failed=record.failed,
        )
    return states


def ref_targets(state: WaveState) -> list[str | None]:
    """Where each of the wave's refs points (one, or one per batch)."""
    return list(state.batches) if state.batches else [state.revision]


def settled_at(inputs: Inputs, wave: Wave) -> str | None:
    """The commit every ref and every cluster of the wave is at, Ready; else None."""
    state = inputs.waves.get(wave.name)
    if state is None or state.revision is None:
        return None
    if any(target != state.revision for target in ref_targets(state)):
        return None
    for cluster in inputs.config.members(wave):
        status = inputs.clusters.get(cluster)
        if status is None or status.revision != state.revision or not status.ready:
            return None
    return state.revision


def wave_view(inputs: Inputs, decision: Decision) -> api.WaveStatus:
    wave = inputs.config.wave(decision.wave)
    state = inputs.waves.get(wave.name, WaveState(None))
    candidate = promotion.candidate_of(inputs, wave)
    return api.WaveStatus(
        name=wave.name,
        depends_on=list(wave.depends_on),
        revision=state.revision,
        candidate=candidate,
        action=decision.action.value,
        reason=decision.reason,
        approval_required=wave.approval == "required",
        approved=candidate is not None and candidate in state.approvals,
        paused=state.paused,
        clusters=inputs.config.members(wave),
        last_good=state.last_good,
        checks=[check_view(inputs, wave, check) for check in wave.verify],
    )


def check_view(inputs: Inputs, wave: Wave, check: Verification) -> api.CheckStatus:
    state = inputs.checks.get((wave.name, check.name))
    return api.CheckStatus(
        name=check.name,
        kind="prometheus" if check.prometheus is not None else "http",
        holds=None if state is None else state.holding_since is not None,
        holding_since=state.holding_since if state else None,
        checked_at=state.checked_at if state else None,
        detail=state.detail if state else "",
    )


def halted_view(waves: Sequence[api.WaveStatus], error: str) -> list[api.WaveStatus]:
    """The last known waves, every one halted by ``error`` (nothing moves meanwhile)."""
    return [
        wave.model_copy(update={"action": "halt", "reason": f"promotion halted: {error}"})
        for wave in waves
    ]


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
