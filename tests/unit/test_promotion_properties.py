"""Invariants of the promotion gate over generated fleets, wave states and cluster reports.

Whatever the inputs, ``decide`` never promotes a revision into a wave unless every cluster
of each dependency reports exactly that revision Ready for the soak; never promotes a
revision marked failed in the wave; never promotes into a paused wave; and never promotes
an unapproved revision into a wave whose approval is required.
"""

from __future__ import annotations

import dataclasses
import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.core.promotion import Action, ClusterStatus, Inputs, WaveState, batches, decide
from fleet.core.verification import CheckState
from fleet.models.fleetconfig import FleetConfig, load_fleet_config

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
REVISIONS = ["a" * 40, "b" * 40, "c" * 40]
WAVES = ["dev", "staging", "prod"]

VERIFY = ", verify: [{name: errors, prometheus: {address: 'http://127.0.0.1:9090', query: up}}]"
revisions = st.sampled_from(REVISIONS)
maybe_revision = st.one_of(st.none(), revisions)
minutes = st.integers(min_value=0, max_value=120)


@st.composite
def fleets(draw: st.DrawFn) -> FleetConfig:
    """Three waves in a chain (or a fan-in), 1-3 clusters each, random gates."""
    clusters: list[str] = []
    waves: list[str] = []
    for index, wave in enumerate(WAVES):
        members = [f"{wave}-{n}" for n in range(draw(st.integers(1, 3)))]
        clusters += members
        depends = [] if index == 0 else draw(st.sampled_from([[WAVES[index - 1]], WAVES[:index]]))
        waves.append(
            "{"
            f"name: {wave}, clusters: [{', '.join(members)}], dependsOn: [{', '.join(depends)}], "
            f"soak: {draw(st.sampled_from(['0s', '5m', '30m']))}, "
            f"approval: {draw(st.sampled_from(['none', 'required']))}, "
            f"rollback: {draw(st.sampled_from(['auto', 'manual']))}, "
            f"maxParallel: {draw(st.sampled_from(['null', '1', '50%']))}"
            + (VERIFY if index and draw(st.booleans()) else "")
            + "}"
        )
    text = "clusters: [{}]\nwaves:\n{}\n".format(
        ", ".join(f"{{name: {c}}}" for c in clusters), "\n".join(f"  - {w}" for w in waves)
    )
    return load_fleet_config(text)


@st.composite
def cluster_status(draw: st.DrawFn, name: str) -> ClusterStatus:
    revision = draw(maybe_revision)
    ready = draw(st.booleans()) and revision is not None
    failing = None if ready else draw(st.sampled_from([None, "apps: HealthCheckFailed"]))
    return ClusterStatus(
        cluster=name,
        revision=revision,
        ready=ready,
        ready_since=NOW - datetime.timedelta(minutes=draw(minutes)) if ready else None,
        failing=failing,
        attempted=draw(maybe_revision) if failing else revision,
        reported_at=NOW - datetime.timedelta(seconds=draw(st.sampled_from([5, 30, 600]))),
    )


@st.composite
def wave_state(draw: st.DrawFn, batches: int) -> WaveState:
    refs = tuple(draw(maybe_revision) for _ in range(batches)) if batches > 1 else ()
    return WaveState(
        revision=next((r for r in reversed(refs) if r), None) if refs else draw(maybe_revision),
        batches=refs,
        last_good=draw(maybe_revision),
        paused=draw(st.booleans()),
        approvals=frozenset(draw(st.sets(revisions, max_size=2))),
        failed=frozenset(draw(st.sets(revisions, max_size=2))),
    )


@st.composite
def gate_inputs(draw: st.DrawFn) -> Inputs:
    config = draw(fleets())
    members = [c.name for c in config.clusters]
    waves = {w.name: draw(wave_state(len(batches(config, w)))) for w in config.waves}
    if draw(st.booleans()):
        # Random reports rarely open a gate: here most of the fleet runs one revision
        # Ready, so promotions happen and the invariants are put to work.
        common = draw(revisions)
        clusters = {c: coherent(c, common, draw(minutes)) for c in members}
        for name in draw(st.sets(st.sampled_from(members), max_size=2)):
            clusters[name] = draw(cluster_status(name))
        for name in draw(st.sets(st.sampled_from(WAVES[:2]), max_size=2)):
            waves[name] = dataclasses.replace(waves[name], revision=common, batches=())
    else:
        reported = draw(st.sets(st.sampled_from(members)))
        clusters = {c: draw(cluster_status(c)) for c in sorted(reported)}
    checks = {
        (wave.name, check.name): draw(check_state())
        for wave in config.waves
        for check in wave.verify
        if draw(st.integers(0, 4))
    }
    return Inputs(
        config=config,
        head=draw(revisions),
        waves=waves,
        clusters=clusters,
        now=NOW,
        checks=checks,
    )


@st.composite
def check_state(draw: st.DrawFn) -> CheckState:
    checked = NOW - datetime.timedelta(minutes=draw(st.integers(0, 130)))
    holding = draw(st.one_of(st.none(), st.integers(0, 130)))
    since = None if holding is None else checked - datetime.timedelta(minutes=holding)
    return CheckState(holding_since=since, checked_at=checked, detail="generated")


def coherent(cluster: str, revision: str, ready_minutes: int) -> ClusterStatus:
    return ClusterStatus(
        cluster=cluster,
        revision=revision,
        ready=True,
        ready_since=NOW - datetime.timedelta(minutes=ready_minutes),
        attempted=revision,
        reported_at=NOW - datetime.timedelta(seconds=5),
    )


@settings(max_examples=400, deadline=None)
@given(gate_inputs())
def test_the_gate_never_promotes_what_it_must_not(inputs: Inputs) -> None:
    for decision in decide(inputs):
        if decision.action is not Action.PROMOTE:
            continue
        wave = inputs.config.wave(decision.wave)
        state = inputs.waves[wave.name]
        revision = decision.revision
        assert revision is not None
        assert not state.paused, f"promoted into paused wave {wave.name}"
        assert revision not in state.failed, f"promoted failed {revision[:7]} into {wave.name}"
        if wave.approval == "required":
            assert revision in state.approvals, f"promoted unapproved {revision[:7]}"
        for dependency in wave.depends_on:
            for cluster in inputs.config.members(inputs.config.wave(dependency)):
                status = inputs.clusters.get(cluster)
                assert status is not None, f"{cluster} never reported"
                assert status.reported_at is not None
                assert NOW - status.reported_at <= inputs.stale_after, f"{cluster} is stale"
                assert status.revision == revision, f"{cluster} is at another revision"
                assert status.ready and status.ready_since is not None, f"{cluster} not Ready"
                assert status.ready_since + wave.soak <= NOW, f"{cluster} has not soaked"
                assert not status.failing
        latest_ready = max(
            (
                inputs.clusters[c].ready_since or NOW
                for d in wave.depends_on
                for c in inputs.config.members(inputs.config.wave(d))
            ),
            default=NOW,
        )
        for check in wave.verify:
            held = inputs.checks.get((wave.name, check.name))
            assert held is not None, f"{check.name} never evaluated"
            assert held.holding_since is not None, f"{check.name} does not hold"
            assert held.holding_since + wave.soak <= NOW, f"{check.name} held less than the soak"
            assert held.checked_at is not None and held.checked_at >= latest_ready, (
                f"{check.name} not evaluated since {wave.name}'s dependencies became Ready"
            )


@settings(max_examples=200, deadline=None)
@given(gate_inputs())
def test_every_wave_gets_exactly_one_decision_dependencies_first(inputs: Inputs) -> None:
    decided = [d.wave for d in decide(inputs)]
    assert sorted(decided) == sorted(w.name for w in inputs.config.waves)
    for wave in inputs.config.waves:
        for dependency in wave.depends_on:
            assert decided.index(dependency) < decided.index(wave.name)
