"""Promotion decisions: which revision may move into which wave, now. A pure function.

Given fleet.yaml, where each wave's refs point, what every cluster reports and the time,
``decide`` says for every wave: promote (which revision, to which batch of clusters),
wait (and why, in words a person can act on), or halt and roll back. The hub carries the
decisions out in Git; this module never does I/O.

The gate opens for a revision only when every cluster of every wave it depends on
reports **that exact revision** applied and Ready, and has for the soak time. A cluster
that is healthy but still at an older revision keeps the gate shut (the failure Argo CD's
RollingSync users report: later steps starting before earlier ones synced).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence

from fleet.core import verification
from fleet.core.verification import CheckState
from fleet.models.fleetconfig import FleetConfig, Wave


class Action(enum.StrEnum):
    PROMOTE = "promote"
    WAIT = "wait"
    HALT = "halt"
    ROLLBACK = "rollback"
    SETTLED = "settled"
    """The wave runs its candidate everywhere and is healthy: nothing to do."""


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    """What one cluster's agent last reported, reduced to what the gate needs."""

    cluster: str
    revision: str | None
    """Commit every unit has applied; None while units disagree or none applied yet."""
    ready: bool
    """Every unit Ready at ``revision``."""
    ready_since: datetime.datetime | None
    """Since when the cluster has been Ready at ``revision``."""
    failing: str | None = None
    """Set when a unit failed at ``attempted`` (not merely progressing): what failed."""
    attempted: str | None = None
    """The newest revision the cluster tried."""
    reported_at: datetime.datetime | None = None
    progressing: str | None = None
    """Why the cluster is not Ready at one release although its units are Ready (units of
    a source at different revisions): shown where the gate waits for it."""


@dataclasses.dataclass(frozen=True)
class WaveState:
    """Where a wave stands, as recorded in Git and the hub."""

    revision: str | None
    """Where the wave's ref points (for a batched wave: the newest batch's revision)."""
    batches: tuple[str | None, ...] = ()
    """Per batch, where its ref points; empty for a wave without batches."""
    last_good: str | None = None
    """The newest revision that ran Ready on every cluster of the wave."""
    paused: bool = False
    approvals: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    """Revisions that failed here: never promoted again without a new commit or override."""


@dataclasses.dataclass(frozen=True)
class Decision:
    wave: str
    action: Action
    reason: str
    revision: str | None = None
    """What to promote, or what to roll back to."""
    batch: int | None = None
    """For a batched wave: which batch moves (0-based)."""
    clusters: tuple[str, ...] = ()
    """The clusters concerned: those promoted, or those blocking."""
    awaiting_approval: bool = False
    """A WAIT only an approval of ``revision`` can end (the hub announces it once)."""


@dataclasses.dataclass(frozen=True)
class Inputs:
    config: FleetConfig
    head: str
    """Newest commit of the source branch (main): what the first waves follow."""
    waves: Mapping[str, WaveState]
    clusters: Mapping[str, ClusterStatus]
    now: datetime.datetime
    stale_after: datetime.timedelta = datetime.timedelta(minutes=2)
    source_ref: str = "refs/heads/main"
    """The branch ``head`` comes from. A wave following it moves with every push, so the
    hub never moves (or rolls back) that ref: a failure there halts instead."""
    checks: Mapping[tuple[str, str], CheckState] = dataclasses.field(default_factory=dict)
    """The hold clock of each verification check, by ``(wave, check name)``."""


def short(revision: str | None) -> str:
    return revision[:7] if revision else "nothing"


def batches(config: FleetConfig, wave: Wave) -> list[list[str]]:
    """The wave's clusters in rollout steps of ``maxParallel``, fleet.yaml order."""
    members = config.members(wave)
    size = wave.batch_size(len(members))
    return [members[i : i + size] for i in range(0, len(members), size)]


def _stale(status: ClusterStatus | None, inputs: Inputs) -> bool:
    return (
        status is None
        or status.reported_at is None
        or inputs.now - status.reported_at > inputs.stale_after
    )


def _failing_clusters(inputs: Inputs, clusters: Sequence[str], revision: str) -> list[str]:
    return [
        c
        for c in clusters
        if (s := inputs.clusters.get(c)) is not None
        and s.failing
        and (s.attempted or s.revision) == revision
    ]


def _failures(inputs: Inputs, clusters: Sequence[str]) -> str:
    """``dev (flux-system/apps: HealthCheckFailed), stg-1 (...)``: who failed, and what."""
    return ", ".join(
        f"{c} ({failing})" if (failing := inputs.clusters[c].failing) else c for c in clusters
    )


def _gate(inputs: Inputs, wave: Wave, candidate: str) -> Decision | None:
    """Why ``candidate`` may not enter ``wave`` yet (None: the dependencies allow it)."""
    stale: list[str] = []
    behind: list[str] = []
    unready: list[str] = []
    soaking: list[tuple[str, datetime.timedelta]] = []
    ready_since: list[datetime.datetime] = []
    for dependency in wave.depends_on:
        upstream = inputs.config.wave(dependency)
        for cluster in inputs.config.members(upstream):
            status = inputs.clusters.get(cluster)
            if _stale(status, inputs):
                stale.append(cluster)
                continue
            assert status is not None
            if status.revision != candidate:
                behind.append(f"{cluster} (at {short(status.revision)})")
            elif not status.ready or status.ready_since is None:
                unready.append(
                    f"{cluster} ({status.progressing})" if status.progressing else cluster
                )
            else:
                ready_since.append(status.ready_since)
                remaining = status.ready_since + wave.soak - inputs.now
                if remaining > datetime.timedelta(0):
                    soaking.append((cluster, remaining))
    if len(stale) > wave.max_stale:
        return Decision(
            wave.name,
            Action.WAIT,
            f"blocked by stale cluster(s) {', '.join(stale)} (maxStale {wave.max_stale})",
            candidate,
            clusters=tuple(stale),
        )
    if behind:
        return Decision(
            wave.name,
            Action.WAIT,
            f"waiting for {', '.join(behind)} to apply {short(candidate)}",
            candidate,
            clusters=tuple(b.split(" ")[0] for b in behind),
        )
    if unready:
        return Decision(
            wave.name,
            Action.WAIT,
            f"waiting for {', '.join(unready)} to be Ready at {short(candidate)}",
            candidate,
            clusters=tuple(u.split(" ")[0] for u in unready),
        )
    pending = _verifications(inputs, wave, max(ready_since, default=None))
    if failing := [reason for failed, reason in pending if failed]:
        return Decision(
            wave.name, Action.WAIT, f"verification failing: {'; '.join(failing)}", candidate
        )
    if soaking:
        longest = max(remaining for _, remaining in soaking)
        return Decision(
            wave.name,
            Action.WAIT,
            f"soaking {short(candidate)}: {_duration(longest)} remaining",
            candidate,
            clusters=tuple(c for c, _ in soaking),
        )
    if pending:
        return Decision(
            wave.name,
            Action.WAIT,
            f"verifying {short(candidate)}: {'; '.join(reason for _, reason in pending)}",
            candidate,
        )
    return None


def _verifications(
    inputs: Inputs, wave: Wave, ready_since: datetime.datetime | None
) -> list[tuple[bool, str]]:
    """``(failing, "check: reason")`` for each of the wave's checks that does not pass."""
    pending = []
    for check in wave.verify:
        state = inputs.checks.get((wave.name, check.name))
        why = verification.waiting(state, soak=wave.soak, now=inputs.now, ready_since=ready_since)
        if why is not None:
            pending.append((why[0], f"{check.name} {why[1]}"))
    return pending


def _duration(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds() + 0.999)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _candidate(inputs: Inputs, wave: Wave) -> tuple[str | None, str]:
    """The revision that should flow into ``wave`` next, or None and why not."""
    if not wave.depends_on:
        return inputs.head, ""
    revisions = {inputs.waves.get(d, WaveState(None)).revision for d in wave.depends_on}
    if len(revisions) != 1:
        return None, "its dependencies run different revisions"
    (revision,) = revisions
    if revision is None:
        return None, "its dependencies have no revision yet"
    return revision, ""


def candidate_of(inputs: Inputs, wave: Wave) -> str | None:
    """The revision that would enter ``wave`` next (whether or not the gate lets it)."""
    return _candidate(inputs, wave)[0]


def decide_wave(inputs: Inputs, wave: Wave) -> Decision:
    state = inputs.waves.get(wave.name, WaveState(None))
    steps = batches(inputs.config, wave)
    current = state.revision

    if current is not None:
        rolled_out = [
            c
            for step, ref in zip(steps, _batch_refs(state, steps), strict=True)
            if ref == current
            for c in step
        ]
        failing = _failing_clusters(inputs, rolled_out, current)
        if failing:
            what = f"{short(current)} failed on {_failures(inputs, failing)}"
            follows_source = wave.effective_ref == inputs.source_ref
            if (
                wave.rollback == "auto"
                and state.last_good
                and state.last_good != current
                and not follows_source
            ):
                return Decision(
                    wave.name,
                    Action.ROLLBACK,
                    f"{what}; rolling back to {short(state.last_good)}",
                    state.last_good,
                    clusters=tuple(failing),
                )
            return Decision(
                wave.name,
                Action.HALT,
                f"{what}; pipeline halted"
                + (f" ({wave.effective_ref} is not moved by the hub)" if follows_source else ""),
                current,
                clusters=tuple(failing),
            )

    if state.paused:
        return Decision(wave.name, Action.WAIT, "paused")
    candidate, why = _candidate(inputs, wave)
    if candidate is None:
        return Decision(wave.name, Action.WAIT, why)
    refs = _batch_refs(state, steps)
    if all(ref == candidate for ref in refs):
        return Decision(wave.name, Action.SETTLED, f"running {short(candidate)}", candidate)
    if candidate in state.failed:
        return Decision(
            wave.name,
            Action.WAIT,
            f"{short(candidate)} failed here before; a new commit (or an override) is needed",
            candidate,
        )
    blocked = _gate(inputs, wave, candidate)
    if blocked is not None:
        return blocked
    if wave.approval == "required" and candidate not in state.approvals:
        return Decision(
            wave.name,
            Action.WAIT,
            f"approval pending for {short(candidate)}",
            candidate,
            awaiting_approval=True,
        )
    for index, (step, ref) in enumerate(zip(steps, refs, strict=True)):
        if ref == candidate:
            continue
        earlier = [c for s in steps[:index] for c in s]
        waiting = [
            c
            for c in earlier
            if (s := inputs.clusters.get(c)) is None or s.revision != candidate or not s.ready
        ]
        if waiting:
            return Decision(
                wave.name,
                Action.WAIT,
                f"batch {index + 1}/{len(steps)} waits for {', '.join(waiting)} to be Ready at "
                f"{short(candidate)}",
                candidate,
                batch=index,
                clusters=tuple(waiting),
            )
        return Decision(
            wave.name,
            Action.PROMOTE,
            f"promote {short(candidate)}"
            + (f" to batch {index + 1}/{len(steps)}" if len(steps) > 1 else ""),
            candidate,
            batch=index if len(steps) > 1 else None,
            clusters=tuple(step),
        )
    return Decision(wave.name, Action.SETTLED, f"running {short(candidate)}", candidate)


def _batch_refs(state: WaveState, steps: Sequence[Sequence[str]]) -> list[str | None]:
    if len(steps) <= 1:
        return [state.revision]
    refs = list(state.batches) + [None] * (len(steps) - len(state.batches))
    return refs[: len(steps)]


def decide(inputs: Inputs) -> list[Decision]:
    """One decision per wave, dependencies first."""
    return [decide_wave(inputs, wave) for wave in inputs.config.order()]
