"""The agent's per-unit series, scraped as Prometheus text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import DURATION_BUCKETS, UNIT_LABELS, AgentMetrics

UNIT = ("Kustomization", "flux-system", "apps")


def _samples(text: str, family: str) -> dict[tuple[str, str], float]:
    """``(sample name, sorted labels)`` -> value for one family of a scrape."""
    return {
        (s.name, repr(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
    }


def _scrape(metrics: AgentMetrics) -> str:
    return b"".join(metrics.scrape()).decode()


def test_reconcile_histogram_matches_prometheus_client() -> None:
    durations = [0.0, 0.05, 0.07, 0.5, 3, 9.99, 10, 299, 301, 1e6]
    metrics = AgentMetrics()
    series = metrics.unit(UNIT)
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "fleet_reconcile_duration_seconds",
        "reference",
        UNIT_LABELS,
        buckets=DURATION_BUCKETS,
        registry=reference_registry,
    )
    for seconds in durations:
        series.observe_reconcile(seconds)
        reference.labels(*UNIT).observe(seconds)

    ours = _samples(_scrape(metrics), "fleet_reconcile_duration_seconds")
    theirs = _samples(
        generate_latest(reference_registry).decode(), "fleet_reconcile_duration_seconds"
    )
    theirs = {k: v for k, v in theirs.items() if not k[0].endswith("_created")}
    assert ours == theirs
    assert ours[
        (
            "fleet_reconcile_duration_seconds_count",
            repr(sorted(dict(zip(UNIT_LABELS, UNIT, strict=True)).items())),
        )
    ] == len(durations)


def test_unit_series_and_forgetting() -> None:
    metrics = AgentMetrics()
    series = metrics.unit(UNIT)
    assert metrics.unit(UNIT) is series
    series.ready = 1
    series.inventory = 4
    series.applied += 4
    series.drift_corrections += 2
    other = metrics.unit(("HelmRelease", "apps", "podinfo"))
    other.suspended = 1
    labels = repr(sorted(dict(zip(UNIT_LABELS, UNIT, strict=True)).items()))

    assert _samples(_scrape(metrics), "fleet_unit_ready")[("fleet_unit_ready", labels)] == 1
    assert (
        _samples(_scrape(metrics), "fleet_unit_inventory_objects")[
            ("fleet_unit_inventory_objects", labels)
        ]
        == 4
    )
    assert (
        _samples(_scrape(metrics), "fleet_objects_applied")[("fleet_objects_applied_total", labels)]
        == 4
    )
    assert (
        _samples(_scrape(metrics), "fleet_drift_corrections")[
            ("fleet_drift_corrections_total", labels)
        ]
        == 2
    )
    # A unit that never reconciled has no histogram yet, and an unknown readiness.
    assert len(_samples(_scrape(metrics), "fleet_reconcile_duration_seconds")) == 0
    assert set(_samples(_scrape(metrics), "fleet_unit_ready").values()) == {1, -1}

    metrics.forget_unit(UNIT)
    text = _scrape(metrics)
    assert 'name="apps"' not in text
    assert 'name="podinfo"' in text


def test_label_values_are_escaped_and_the_other_metrics_are_served_too() -> None:
    metrics = AgentMetrics()
    odd = ("Kustomization", 'a"b', "c\\d\ne")
    metrics.unit(odd).observe_reconcile(1.5)
    metrics.fetch_errors.labels("flux-system/fleet").inc()
    families = {f.name: f for f in text_string_to_metric_families(_scrape(metrics))}
    (count,) = [
        s for s in families["fleet_reconcile_duration_seconds"].samples if s.name.endswith("_count")
    ]
    assert (count.labels["namespace"], count.labels["name"]) == odd[1:]
    assert families["fleet_git_fetch_errors"].samples[0].value == 1


def test_reconcile_count_is_the_histogram_count_and_creates_no_series() -> None:
    metrics = AgentMetrics()
    assert metrics.reconcile_count(UNIT) == 0
    assert "apps" not in _scrape(metrics)  # reading did not create the unit's series
    for seconds in (0.01, 2, 500):
        metrics.unit(UNIT).observe_reconcile(seconds)
    assert metrics.reconcile_count(UNIT) == 3
    counts = _samples(_scrape(metrics), "fleet_reconcile_duration_seconds")
    assert [v for (name, _), v in counts.items() if name.endswith("_count")] == [3.0]
    metrics.forget_unit(UNIT)
    assert metrics.reconcile_count(UNIT) == 0
