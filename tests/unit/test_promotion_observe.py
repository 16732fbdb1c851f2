"""What the promoter reads into the gate: reports, refs and the soak clock, as plain data."""

from __future__ import annotations

import datetime

from fleet.core.promotion import WaveState
from fleet.models.fleetconfig import load_fleet_config
from fleet.report import UnitReport
from hub.promotion import observe
from hub.promotion.observe import Observation
from hub.store.promotions import Readiness, WaveRecord
from tests.hubserver import report

OLD, NEW = "a" * 40, "b" * 40
CONFIG = load_fleet_config(
    """
clusters:
  - {name: dev, labels: {env: dev}}
  - {name: prod-1, labels: {env: prod}}
  - {name: prod-2, labels: {env: prod}}
  - {name: prod-3, labels: {env: prod}}
waves:
  - {name: dev, selector: {env: dev}, ref: refs/heads/main}
  - {name: prod, selector: {env: prod}, dependsOn: [dev], maxParallel: 2}
"""
)


def unit(
    name: str, applied: str, ready: str = "True", reason: str = "", attempted: str | None = None
) -> UnitReport:
    return UnitReport(
        namespace="flux-system",
        name=name,
        ready=ready,  # type: ignore[arg-type]
        reason=reason,
        last_applied_revision=f"refs/heads/fleet/wave/dev@sha1:{applied}",
        last_attempted_revision=f"main@sha1:{attempted or applied}",
    )


def test_commit_of_reads_every_revision_form() -> None:
    assert observe.commit_of(f"main@sha1:{NEW}") == NEW
    assert observe.commit_of(f"refs/heads/fleet/wave/prod@sha1:{NEW}") == NEW
    assert observe.commit_of(f"sha1:{NEW}") == NEW
    assert observe.commit_of(NEW) == NEW
    assert observe.commit_of(None) is None and observe.commit_of("") is None


def test_a_cluster_is_ready_at_the_commit_every_unit_applied() -> None:
    seen = observe.observe(report("dev", units=[unit("infra", NEW), unit("apps", NEW)]))
    assert seen == Observation(NEW, True, None, NEW)


def test_units_at_different_commits_give_no_revision() -> None:
    seen = observe.observe(report("dev", units=[unit("infra", NEW), unit("apps", OLD)]))
    assert (seen.revision, seen.ready) == (None, False)


def test_a_unit_half_way_to_a_newer_commit_is_not_ready_at_its_old_one() -> None:
    seen = observe.observe(report("dev", units=[unit("apps", OLD, attempted=NEW)]))
    assert (seen.revision, seen.ready, seen.failing) == (OLD, False, None)


def test_a_failed_unit_is_named_with_its_reason_at_the_commit_it_attempted() -> None:
    failed = unit("apps", NEW, ready="False", reason="HealthCheckFailed")
    seen = observe.observe(report("dev", units=[unit("infra", NEW), failed]))
    assert seen == Observation(NEW, False, "flux-system/apps: HealthCheckFailed", NEW)


def release(name: str, ready: str = "True", reason: str = "") -> UnitReport:
    return UnitReport(
        kind="HelmRelease",
        namespace="flux-system",
        name=name,
        ready=ready,  # type: ignore[arg-type]
        reason=reason,
        last_applied_revision="1.2.0@values:0123abcd",
        last_attempted_revision="1.2.0@values:0123abcd",
    )


def test_a_helm_release_counts_for_readiness_not_for_the_commit() -> None:
    seen = observe.observe(report("dev", units=[unit("apps", NEW), release("greeter")]))
    assert seen == Observation(NEW, True, None, NEW)
    failed = release("greeter", ready="False", reason="UpgradeFailed")
    seen = observe.observe(report("dev", units=[unit("apps", NEW), failed]))
    assert seen == Observation(NEW, False, "flux-system/greeter: UpgradeFailed", NEW)


def test_waiting_on_a_dependency_is_not_a_failure() -> None:
    waiting = unit("apps", OLD, ready="False", reason="DependencyNotReady", attempted=NEW)
    seen = observe.observe(report("dev", units=[unit("infra", NEW), waiting]))
    assert seen.failing is None


def test_a_cluster_without_units_is_read_from_its_source() -> None:
    seen = observe.observe(report("dev", revision_sha=NEW, units=[]))
    assert (seen.revision, seen.ready) == (NEW, True)


def test_the_soak_clock_keeps_running_only_while_ready_at_the_same_commit() -> None:
    current = {"a": Readiness(OLD, 100.0), "b": Readiness(OLD, 100.0), "c": Readiness(OLD, 100.0)}
    changes = observe.readiness_changes(current, {"a": OLD, "b": NEW, "c": None, "d": NEW}, 200.0)
    assert changes.set == {"b": Readiness(NEW, 200.0), "d": Readiness(NEW, 200.0)}
    assert changes.drop == ["c"]


def test_ready_since_comes_from_the_clock_only_for_the_commit_it_started_at() -> None:
    status = observe.cluster_status("a", Observation(NEW, True), Readiness(NEW, 100.0), 150.0)
    assert status.ready_since == datetime.datetime.fromtimestamp(100.0, datetime.UTC)
    other = observe.cluster_status("a", Observation(NEW, True), Readiness(OLD, 100.0), 150.0)
    assert other.ready_since is None


def test_batched_waves_follow_one_ref_per_batch() -> None:
    prod = CONFIG.wave("prod")
    assert observe.wave_refs(CONFIG, prod) == [
        "refs/heads/fleet/wave/prod-batch-1",
        "refs/heads/fleet/wave/prod-batch-2",
    ]
    assert observe.batch_of(CONFIG, prod, "prod-3") == 2
    assert observe.wave_refs(CONFIG, CONFIG.wave("dev")) == ["refs/heads/main"]


def test_wave_states_come_from_refs_and_the_hubs_records() -> None:
    refs = {"refs/heads/fleet/wave/prod-batch-1": NEW, "refs/heads/fleet/wave/prod-batch-2": OLD}
    records = {"prod": WaveRecord("prod", paused=True, last_good=OLD, failed=frozenset({"c"}))}
    states = observe.wave_states(CONFIG, refs, records, NEW, "refs/heads/main")
    assert states["dev"] == WaveState(NEW)
    assert states["prod"] == WaveState(
        NEW, (NEW, OLD), last_good=OLD, paused=True, failed=frozenset({"c"})
    )


def from_app_repo(name: str, applied: str, attempted: str | None = None) -> UnitReport:
    return UnitReport(
        namespace="apps",
        name=name,
        ready="True",
        source="GitRepository/apps/app-repo",
        last_applied_revision=f"main@sha1:{applied}",
        last_attempted_revision=f"main@sha1:{attempted or applied}",
    )


APP, APP2 = "c" * 40, "d" * 40


def test_units_of_another_git_source_do_not_take_part_in_the_fleet_commit() -> None:
    units = [unit("infra", NEW), from_app_repo("web", APP), from_app_repo("api", APP)]
    seen = observe.observe(report("dev", units=units))
    assert seen == Observation(NEW, True, None, NEW)


def test_units_of_one_source_at_different_revisions_are_progressing_and_say_why() -> None:
    units = [unit("infra", NEW), from_app_repo("web", APP), from_app_repo("api", APP2)]
    seen = observe.observe(report("dev", units=units))
    assert (seen.revision, seen.ready) == (NEW, False)
    assert seen.progressing == (
        f"units of GitRepository/apps/app-repo run different revisions ({APP[:7]}, {APP2[:7]})"
    )
    applying = [unit("infra", NEW), from_app_repo("web", APP, attempted=APP2)]
    seen = observe.observe(report("dev", units=applying))
    assert seen.progressing == f"apps/web is applying {APP2[:7]} of GitRepository/apps/app-repo"
    status = observe.cluster_status("dev", seen, None, None)
    assert status.progressing == seen.progressing and not status.ready
