"""The TUI's pure parts: what a row shows, wave grouping, sort, filter, state updates."""

from __future__ import annotations

import datetime

import pytest

from fleet.report import ClusterSummary
from hub.api import EventRecord
from hub.tui import view
from hub.tui.client import PromotionNotConfigured, WaveStatus
from hub.tui.feed import (
    ClusterChanged,
    Connection,
    EventArrived,
    ReadOnlySource,
    Resync,
    StatusBranchSource,
    backoff,
)
from hub.tui.state import FleetState
from tests.hubserver import event, report

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
A = "0123456789abcdef0123456789abcdef01234567"
B = "89abcdef0123456789abcdef0123456789abcdef"


def cluster(name: str, **fields: object) -> ClusterSummary:
    values: dict[str, object] = {
        "name": name,
        "health": "Ready",
        "revision": f"main@sha1:{A}",
        "units_ready": 2,
        "units_total": 2,
        "last_report_at": NOW - datetime.timedelta(seconds=90),
        "agent_version": "0.1.0",
    }
    values.update(fields)
    return ClusterSummary.model_validate(values)


@pytest.mark.parametrize(
    ("health", "text"),
    [
        ("Ready", "✔ Ready"),
        ("Degraded", "✖ Degraded"),
        ("Stale", "⧗ Stale"),
        ("Suspended", "⏸ Suspended"),
        ("Unknown", "? Unknown"),
    ],
)
def test_health_reads_without_colour(health: str, text: str) -> None:
    assert str(view.health_cell(health)) == text


def test_revision_cell_marks_target_and_behind_only_when_the_target_is_known() -> None:
    assert str(view.revision_cell(f"main@sha1:{A}", A[:7])) == "01234567 (target)"
    assert str(view.revision_cell(f"main@sha1:{B}", A)) == "89abcdef → 01234567"
    assert str(view.revision_cell(f"main@sha1:{B}", None)) == "89abcdef"
    assert str(view.revision_cell(None, A)) == "<none>"


def test_same_commit_accepts_abbreviations_but_not_too_short_ones() -> None:
    assert view.same_commit(f"main@sha1:{A}", A[:7])
    assert view.same_commit(f"sha256:{A}", A)
    assert not view.same_commit(A, B)
    assert not view.same_commit(A, A[:4])
    assert not view.same_commit(None, A)


def test_wave_is_the_promoters_then_the_wave_label_then_env() -> None:
    members = {"c1": "canary"}
    assert view.wave_of(cluster("c1", labels={"env": "prod"}), members) == "canary"
    assert view.wave_of(cluster("c2", labels={"env": "prod", "wave": "w2"}), members) == "w2"
    assert view.wave_of(cluster("c3", labels={"env": "prod"}), members) == "prod"
    assert view.wave_of(cluster("c4"), members) == view.NO_WAVE


def test_rows_are_grouped_by_wave_in_rollout_order_then_sorted() -> None:
    clusters = [
        cluster("z-prod", labels={"env": "prod"}),
        cluster("a-prod", labels={"env": "prod"}, health="Degraded"),
        cluster("loose"),
        cluster("b-dev", labels={"env": "dev"}),
        cluster("x-lab", labels={"env": "lab"}),
        cluster("s-staging", labels={"env": "staging"}),
    ]
    waves = view.Waves()

    by_name = sorted(clusters, key=lambda c: view.sort_key(c, waves, "name"))

    assert [c.name for c in by_name] == ["b-dev", "s-staging", "a-prod", "z-prod", "x-lab", "loose"]
    promoter = view.Waves(order=("lab", "prod"))
    by_health = sorted(clusters, key=lambda c: view.sort_key(c, promoter, "health"))
    assert [c.name for c in by_health][:3] == ["x-lab", "a-prod", "z-prod"]


def test_filter_words_must_all_match_name_label_health_or_wave() -> None:
    prod = cluster("eu-1", labels={"env": "prod", "region": "eu"}, health="Degraded")

    assert view.matches(prod, "prod", "")
    assert view.matches(prod, "prod", "EU degraded")
    assert view.matches(prod, "prod", "region=eu")
    assert not view.matches(prod, "prod", "eu ready")
    assert not view.matches(prod, "prod", "staging")


def test_row_cells_show_units_drift_age_and_agent() -> None:
    waves = view.Waves.of([WaveStatus(name="prod", revision=B, clusters=["c1"])])
    cells = view.cluster_cells(cluster("c1", units_ready=1, drift24h=3), waves, NOW)

    assert [str(cell) for cell in cells] == [
        "prod",
        "c1",
        "✔ Ready",
        "01234567 → 89abcdef",
        "1/2",
        "3",
        "90s",
        "0.1.0",
    ]


def test_counts_per_health() -> None:
    counts = view.count(
        [cluster("a"), cluster("b", health="Stale"), cluster("c", health="Degraded")]
    )
    assert (counts.clusters, counts.ready, counts.degraded, counts.stale) == (3, 1, 1, 1)


def test_state_reports_only_real_changes() -> None:
    state = FleetState()
    first = state.apply(Resync([cluster("a"), cluster("b")]))
    assert first.clusters == {"a", "b"}

    assert not state.apply(ClusterChanged(cluster("a")))
    assert state.apply(ClusterChanged(cluster("a", health="Degraded"))).clusters == {"a"}

    gone = state.apply(Resync([cluster("a", health="Degraded")]))
    assert gone.clusters == {"b"}
    assert set(state.clusters) == {"a"}


def test_state_keeps_each_event_once() -> None:
    state = FleetState()
    record = EventRecord(
        id=7,
        cluster="a",
        time="2026-01-01T12:00:00Z",
        type="Warning",
        reason="DriftCorrected",
        unit="",
        object="",
        message="",
    )
    assert state.apply(EventArrived(record)).events == [record]
    assert not state.apply(Resync([], [record]))
    assert list(state.events) == [record]


def test_promotions_change_the_waves_only_when_they_differ() -> None:
    state = FleetState()
    waves = [WaveStatus(name="dev", revision=A, clusters=["a"])]
    assert state.set_promotions(waves)
    assert not state.set_promotions(list(waves))
    assert state.wave("dev") is not None
    assert state.set_promotions(None, "promotion not configured on this hub")
    assert state.waves == view.Waves()


def test_backoff_grows_and_stays_bounded() -> None:
    delays = [backoff(attempt) for attempt in range(1, 12)]
    assert delays[0] < 0.5
    assert max(delays) <= 4.0 * 1.2


@pytest.mark.anyio
async def test_status_branch_source_lists_reports_and_refuses_actions() -> None:
    drift = event("DriftCorrected", "restored", at=NOW - datetime.timedelta(hours=1))
    reports = [report("dev", labels={"env": "dev"}, reported_at=NOW, events=[drift])]
    source = StatusBranchSource(lambda: reports, label="repo", interval=3600, clock=lambda: NOW)

    updates = source.updates()
    assert await anext(updates) == Connection("connecting", "repo")
    resync = await anext(updates)
    assert await anext(updates) == Connection("read-only", "repo")

    assert isinstance(resync, Resync)
    [summary] = resync.clusters
    assert (summary.name, summary.health, summary.drift24h) == ("dev", "Ready", 1)
    assert [e.reason for e in resync.events] == ["DriftCorrected"]
    detail = await source.cluster("dev")
    assert detail.report is not None and detail.report.cluster == "dev"
    with pytest.raises(ReadOnlySource):
        await source.reconcile("dev", None)
    with pytest.raises(ReadOnlySource):
        await source.approve("dev", A)
    with pytest.raises(PromotionNotConfigured):
        await source.promotions()
    await updates.aclose()
