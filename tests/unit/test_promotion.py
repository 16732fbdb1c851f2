"""The promotion gate as a table: given waves, refs and cluster reports, what happens."""

from __future__ import annotations

import datetime

import pytest

from fleet.core.promotion import (
    Action,
    ClusterStatus,
    Decision,
    Inputs,
    WaveState,
    decide,
    decide_wave,
)
from fleet.models.fleetconfig import load_fleet_config

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
OLD, NEW, NEWER = "a" * 40, "b" * 40, "c" * 40

CONFIG = load_fleet_config(
    """
clusters:
  - {name: dev, labels: {env: dev}}
  - {name: stg-1, labels: {env: staging}}
  - {name: stg-2, labels: {env: staging}}
  - {name: prod-1, labels: {env: prod}}
  - {name: prod-2, labels: {env: prod}}
  - {name: prod-3, labels: {env: prod}}
waves:
  - {name: dev, selector: {env: dev}, rollback: auto}
  - {name: staging, selector: {env: staging}, dependsOn: [dev], soak: 10m}
  - {name: prod, selector: {env: prod}, dependsOn: [staging], approval: required,
     rollback: auto, maxParallel: 2}
"""
)


def ready(cluster: str, revision: str, minutes_ago: float = 60, **extra: object) -> ClusterStatus:
    return ClusterStatus(
        cluster,
        revision,
        True,
        NOW - datetime.timedelta(minutes=minutes_ago),
        attempted=revision,
        reported_at=NOW - datetime.timedelta(seconds=10),
        **extra,  # type: ignore[arg-type]
    )


def failing(cluster: str, revision: str, attempted: str) -> ClusterStatus:
    return ClusterStatus(
        cluster,
        revision,
        False,
        None,
        failing="apps: HealthCheckFailed",
        attempted=attempted,
        reported_at=NOW,
    )


def fleet_at(revision: str, **overrides: ClusterStatus) -> dict[str, ClusterStatus]:
    names = ["dev", "stg-1", "stg-2", "prod-1", "prod-2", "prod-3"]
    return {n: overrides.get(n.replace("-", "_"), ready(n, revision)) for n in names}


def inputs(
    waves: dict[str, WaveState], clusters: dict[str, ClusterStatus], head: str = NEW
) -> Inputs:
    return Inputs(CONFIG, head, waves, clusters, NOW)


def verdict(
    wave: str, waves: dict[str, WaveState], clusters: dict[str, ClusterStatus], head: str = NEW
) -> Decision:
    return decide_wave(inputs(waves, clusters, head), CONFIG.wave(wave))


def test_a_new_commit_enters_the_first_wave() -> None:
    decision = verdict("dev", {"dev": WaveState(OLD)}, fleet_at(OLD))
    assert (decision.action, decision.revision, decision.clusters) == (
        Action.PROMOTE,
        NEW,
        ("dev",),
    )


def test_staging_waits_for_dev_to_apply_the_exact_revision() -> None:
    # dev's ref moved to NEW but the cluster still runs OLD, healthy: the gate stays shut.
    clusters = fleet_at(OLD)
    decision = verdict("staging", {"dev": WaveState(NEW), "staging": WaveState(OLD)}, clusters)
    assert decision.action is Action.WAIT
    assert decision.reason == f"waiting for dev (at {OLD[:7]}) to apply {NEW[:7]}"
    assert decision.clusters == ("dev",)


def test_staging_waits_while_dev_is_not_ready_at_the_revision() -> None:
    clusters = fleet_at(
        OLD, dev=ClusterStatus("dev", NEW, False, None, attempted=NEW, reported_at=NOW)
    )
    decision = verdict("staging", {"dev": WaveState(NEW), "staging": WaveState(OLD)}, clusters)
    assert decision.action is Action.WAIT and "to be Ready" in decision.reason


def test_a_progressing_cluster_is_named_with_its_reason() -> None:
    why = "units of GitRepository/apps/app-repo run different revisions (ccccccc, ddddddd)"
    dev = ClusterStatus("dev", NEW, False, None, attempted=NEW, reported_at=NOW, progressing=why)
    decision = verdict(
        "staging", {"dev": WaveState(NEW), "staging": WaveState(OLD)}, fleet_at(OLD, dev=dev)
    )
    assert decision.reason == f"waiting for dev ({why}) to be Ready at {NEW[:7]}"
    assert decision.clusters == ("dev",)


def test_staging_waits_for_the_soak_time() -> None:
    clusters = fleet_at(OLD, dev=ready("dev", NEW, minutes_ago=4))
    decision = verdict("staging", {"dev": WaveState(NEW), "staging": WaveState(OLD)}, clusters)
    assert decision.action is Action.WAIT
    assert decision.reason == f"soaking {NEW[:7]}: 6m00s remaining"


def test_staging_is_promoted_after_the_soak() -> None:
    clusters = fleet_at(OLD, dev=ready("dev", NEW, minutes_ago=11))
    decision = verdict("staging", {"dev": WaveState(NEW), "staging": WaveState(OLD)}, clusters)
    assert (decision.action, decision.revision) == (Action.PROMOTE, NEW)
    assert decision.clusters == ("stg-1", "stg-2")


def test_a_stale_dependency_blocks_and_is_named() -> None:
    stale = ClusterStatus(
        "dev",
        NEW,
        True,
        NOW - datetime.timedelta(hours=1),
        reported_at=NOW - datetime.timedelta(minutes=30),
    )
    decision = verdict(
        "staging", {"dev": WaveState(NEW), "staging": WaveState(OLD)}, fleet_at(OLD, dev=stale)
    )
    assert decision.action is Action.WAIT
    assert "stale cluster(s) dev" in decision.reason


def test_a_cluster_that_never_reported_is_stale() -> None:
    clusters = fleet_at(NEW)
    del clusters["stg-2"]
    decision = verdict(
        "prod", {"staging": WaveState(NEW), "prod": WaveState(OLD, batches=(OLD, OLD))}, clusters
    )
    assert decision.action is Action.WAIT and "stg-2" in decision.reason


def test_prod_waits_for_approval_then_promotes_in_batches() -> None:
    waves = {"staging": WaveState(NEW), "prod": WaveState(OLD, batches=(OLD, OLD))}
    clusters = fleet_at(OLD, stg_1=ready("stg-1", NEW), stg_2=ready("stg-2", NEW))
    pending = verdict("prod", waves, clusters)
    assert (pending.action, pending.reason) == (Action.WAIT, f"approval pending for {NEW[:7]}")

    approved = {
        "staging": WaveState(NEW),
        "prod": WaveState(OLD, batches=(OLD, OLD), approvals=frozenset({NEW})),
    }
    first = verdict("prod", approved, clusters)
    assert (first.action, first.batch, first.clusters) == (Action.PROMOTE, 0, ("prod-1", "prod-2"))

    # Batch 1 moved, its clusters not yet Ready at NEW: batch 2 waits.
    moving = {
        "staging": WaveState(NEW),
        "prod": WaveState(NEW, batches=(NEW, OLD), approvals=frozenset({NEW})),
    }
    second = verdict("prod", moving, clusters)
    assert second.action is Action.WAIT and second.batch == 1
    assert "prod-1, prod-2" in second.reason

    healthy = clusters | {"prod-1": ready("prod-1", NEW), "prod-2": ready("prod-2", NEW)}
    second = verdict("prod", moving, healthy)
    assert (second.action, second.batch, second.clusters) == (Action.PROMOTE, 1, ("prod-3",))


def test_a_failure_after_promotion_rolls_back_when_auto() -> None:
    waves = {"dev": WaveState(NEW, last_good=OLD)}
    clusters = fleet_at(OLD, dev=failing("dev", OLD, attempted=NEW))
    decision = verdict("dev", waves, clusters)
    assert (decision.action, decision.revision) == (Action.ROLLBACK, OLD)
    assert "failed on dev" in decision.reason


def test_a_failure_names_the_cluster_and_what_failed_there() -> None:
    waves = {"dev": WaveState(NEW, last_good=OLD)}
    clusters = fleet_at(OLD, dev=failing("dev", OLD, attempted=NEW))
    decision = verdict("dev", waves, clusters)
    assert decision.reason == (
        f"{NEW[:7]} failed on dev (apps: HealthCheckFailed); rolling back to {OLD[:7]}"
    )


def test_a_wave_following_the_source_branch_halts_instead_of_rolling_back() -> None:
    config = load_fleet_config(
        """
clusters: [{name: dev}]
waves: [{name: dev, clusters: [dev], ref: refs/heads/main, rollback: auto}]
"""
    )
    waves = {"dev": WaveState(NEW, last_good=OLD)}
    clusters = {"dev": failing("dev", OLD, attempted=NEW)}
    decision = decide_wave(Inputs(config, NEW, waves, clusters, NOW), config.wave("dev"))
    assert decision.action is Action.HALT
    assert decision.reason.endswith("halted (refs/heads/main is not moved by the hub)")


def test_a_failure_halts_without_auto_rollback() -> None:
    waves = {"dev": WaveState(NEW), "staging": WaveState(NEW, last_good=OLD)}
    clusters = fleet_at(NEW, stg_1=failing("stg-1", OLD, attempted=NEW))
    decision = verdict("staging", waves, clusters)
    assert (decision.action, decision.clusters) == (Action.HALT, ("stg-1",))


def test_a_failed_revision_is_not_promoted_again() -> None:
    waves = {"dev": WaveState(OLD, last_good=OLD, failed=frozenset({NEW}))}
    decision = verdict("dev", waves, fleet_at(OLD))
    assert decision.action is Action.WAIT and "failed here before" in decision.reason
    assert verdict("dev", waves, fleet_at(OLD), head=NEWER).action is Action.PROMOTE


def test_a_paused_wave_waits() -> None:
    decision = verdict("dev", {"dev": WaveState(OLD, paused=True)}, fleet_at(OLD))
    assert (decision.action, decision.reason) == (Action.WAIT, "paused")


def test_a_wave_at_its_candidate_is_settled() -> None:
    decision = verdict("dev", {"dev": WaveState(NEW)}, fleet_at(NEW))
    assert decision.action is Action.SETTLED


def test_every_wave_gets_a_decision_dependencies_first() -> None:
    waves = {
        "dev": WaveState(NEW),
        "staging": WaveState(OLD),
        "prod": WaveState(OLD, batches=(OLD, OLD)),
    }
    decisions = decide(inputs(waves, fleet_at(OLD, dev=ready("dev", NEW, minutes_ago=20))))
    assert [(d.wave, d.action) for d in decisions] == [
        ("dev", Action.SETTLED),
        ("staging", Action.PROMOTE),
        ("prod", Action.SETTLED),  # staging still runs OLD, and so does prod
    ]


@pytest.mark.parametrize("max_stale", [0, 1])
def test_max_stale_lets_a_wave_skip_unreachable_clusters(max_stale: int) -> None:
    config = load_fleet_config(
        f"""
clusters:
  - {{name: a, labels: {{env: x}}}}
  - {{name: b, labels: {{env: x}}}}
  - {{name: c, labels: {{env: y}}}}
waves:
  - {{name: first, selector: {{env: x}}}}
  - {{name: second, selector: {{env: y}}, dependsOn: [first], maxStale: {max_stale}}}
"""
    )
    gone = ClusterStatus("b", None, False, None, reported_at=NOW - datetime.timedelta(hours=2))
    clusters = {"a": ready("a", NEW), "b": gone, "c": ready("c", OLD)}
    waves = {"first": WaveState(NEW), "second": WaveState(OLD)}
    decision = decide_wave(Inputs(config, NEW, waves, clusters, NOW), config.wave("second"))
    assert decision.action is (Action.PROMOTE if max_stale else Action.WAIT)
