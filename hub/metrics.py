"""The hub's Prometheus metrics, in a registry of its own per app.

A registry per app (not the process-wide default) lets several hubs run in one process,
as the tests do, without their series colliding. Fleet gauges are computed from the
store at scrape time, so every replica reports the same fleet-wide values; counters and
the ingest histogram count what this replica handled.
"""

from __future__ import annotations

from collections.abc import Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fleet.report import HEALTH_VALUES

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
_INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.clusters = Gauge(
            "fleet_hub_clusters",
            "Clusters known to the hub, by health.",
            ["health"],
            registry=registry,
        )
        self.units_not_ready = Gauge(
            "fleet_hub_units_not_ready",
            "Units reported Ready=False across the fleet (suspended units excluded).",
            registry=registry,
        )
        self.clusters_stale = Gauge(
            "fleet_hub_clusters_stale",
            "Clusters whose agent has not reported within the stale window.",
            registry=registry,
        )
        self.sweeps = Counter(
            "fleet_hub_sweeps",
            "Stale sweeps this replica completed (one every sweepInterval).",
            registry=registry,
        )
        self.flagged_stale = Counter(
            "fleet_hub_flagged_stale",
            "Clusters a sweep newly flagged stale; each raises one ClusterStale alert.",
            registry=registry,
        )
        self.drift_events = Counter(
            "fleet_hub_drift_events",
            "DriftCorrected events received from agents.",
            registry=registry,
        )
        self.ingest_duration = Histogram(
            "fleet_hub_ingest_duration_seconds",
            "Time to validate and store one report, from request body to response.",
            buckets=_INGEST_BUCKETS,
            registry=registry,
        )
        self.reports = Counter(
            "fleet_hub_reports",
            "Reports received, by result (changed, unchanged, rejected).",
            ["result"],
            registry=registry,
        )
        self.webhooks = Counter(
            "fleet_hub_webhooks",
            "Webhook deliveries, by provider and result (accepted, ignored, bad_signature,"
            " unsigned, replayed, invalid, not_configured).",
            ["provider", "result"],
            registry=registry,
        )
        self.notifications = Counter(
            "fleet_hub_notifications",
            "Alerts per notification target, by result (sent, failed, skipped, duplicate,"
            " rate_limited, dropped).",
            ["target", "result"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "fleet_hub_auth_failures",
            "Requests refused for a missing, unknown, revoked or insufficient token.",
            ["reason"],
            registry=registry,
        )
        self.limited = Counter(
            "fleet_hub_limited",
            "Requests refused by limits (429), by limit (ingest_rate, streams).",
            ["limit"],
            registry=registry,
        )

    def set_fleet(self, health_counts: dict[str, int], units_not_ready: int) -> None:
        for health in HEALTH_VALUES:
            self.clusters.labels(health=health).set(health_counts.get(health, 0))
        self.clusters_stale.set(health_counts.get("Stale", 0))
        self.units_not_ready.set(units_not_ready)

    def count_notification(self, target: str, result: str) -> None:
        self.notifications.labels(target=target, result=result).inc()

    def count_drift(self, reasons: Iterable[str]) -> None:
        drift = sum(1 for reason in reasons if reason == "DriftCorrected")
        if drift:
            self.drift_events.inc(drift)

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
