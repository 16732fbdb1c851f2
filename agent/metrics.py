"""The agent's Prometheus metrics, named as Flux users expect (gotk_* -> fleet_*).

Labels identify units (kind, namespace, name) and sources, never revisions or object
names, so cardinality stays bounded by the number of units.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from fleet.kube import KubeClient

UNIT_LABELS = ("kind", "namespace", "name")

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_HEAL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconcile_duration = Histogram(
            "fleet_reconcile_duration_seconds",
            "Time one reconcile of a unit took (render, apply, prune, health).",
            UNIT_LABELS,
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "fleet_unit_ready",
            "1 when the unit is Ready, 0 when not, -1 when unknown.",
            UNIT_LABELS,
            registry=r,
        )
        self.suspended = Gauge(
            "fleet_unit_suspended", "1 when the unit is suspended.", UNIT_LABELS, registry=r
        )
        self.inventory_size = Gauge(
            "fleet_unit_inventory_objects", "Objects the unit owns.", UNIT_LABELS, registry=r
        )
        self.drift_corrections = Counter(
            "fleet_drift_corrections_total",
            "Out-of-band changes to managed objects that the agent reverted.",
            UNIT_LABELS,
            registry=r,
        )
        self.heal_duration = Histogram(
            "fleet_drift_heal_duration_seconds",
            "From the watch event of an out-of-band change to the object being re-applied.",
            buckets=_HEAL_BUCKETS,
            registry=r,
        )
        self.objects_applied = Counter(
            "fleet_objects_applied_total",
            "Objects written by server-side apply.",
            UNIT_LABELS,
            registry=r,
        )
        self.objects_pruned = Counter(
            "fleet_objects_pruned_total", "Objects deleted by prune.", UNIT_LABELS, registry=r
        )
        self.fetch_duration = Histogram(
            "fleet_git_fetch_duration_seconds",
            "Time to fetch a Git source.",
            ("source",),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.fetch_errors = Counter(
            "fleet_git_fetch_errors_total",
            "Failed fetches of a Git source.",
            ("source",),
            registry=r,
        )

    def count_requests_of(self, client: KubeClient) -> None:
        """Export the client's request counts (``fleet_kube_requests_total``)."""
        self.registry.register(KubeRequestsCollector(client))


class KubeRequestsCollector:
    """Exports a KubeClient's request counts as ``fleet_kube_requests_total``."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "fleet_kube_requests",
            "Requests the agent sent to the Kubernetes API.",
            labels=("verb", "resource", "dry_run"),
        )
        for kind, count in sorted(self._client.requests.items()):
            family.add_metric([kind.verb, kind.resource, str(kind.dry_run).lower()], count)
        yield family

    def describe(self) -> list[CounterMetricFamily]:
        return []
