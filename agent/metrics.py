"""The agent's Prometheus metrics, named as Flux users expect (gotk_* -> fleet_*).

Labels identify units (kind, namespace, name) and sources, never revisions or object
names, so cardinality stays bounded by the number of units. The per-unit series are kept
as plain numbers and written as text straight from them, one unit at a time, when
scraped. Kept as prometheus_client children (each value with its own lock) they cost
about 7 MB at 1,000 units, and every scrape built some 22,000 sample objects first:
150 ms of CPU and 12 MiB of garbage each time.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

from fleet.kube import KubeClient

UNIT_LABELS = ("kind", "namespace", "name")
UnitLabels = tuple[str, str, str]

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_HEAL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
_BOUNDS = [repr(float(b)) for b in DURATION_BUCKETS] + ["+Inf"]

_UNIT_FAMILIES = (
    # name, type, help, the UnitSeries field written (None: the histogram)
    (
        "fleet_reconcile_duration_seconds",
        "histogram",
        "Time one reconcile of a unit took (render, apply, prune, health).",
        None,
    ),
    (
        "fleet_unit_ready",
        "gauge",
        "1 when the unit is Ready, 0 when not, -1 when unknown.",
        "ready",
    ),
    ("fleet_unit_suspended", "gauge", "1 when the unit is suspended.", "suspended"),
    ("fleet_unit_inventory_objects", "gauge", "Objects the unit owns.", "inventory"),
    (
        "fleet_drift_corrections_total",
        "counter",
        "Out-of-band changes to managed objects that the agent reverted.",
        "drift_corrections",
    ),
    ("fleet_objects_applied_total", "counter", "Objects written by server-side apply.", "applied"),
    ("fleet_objects_pruned_total", "counter", "Objects deleted by prune.", "pruned"),
)


@dataclasses.dataclass(slots=True)
class UnitSeries:
    """One unit's series: the agent sets these fields, a scrape reads them."""

    ready: int = -1
    """1 Ready, 0 not Ready, -1 not known yet."""
    suspended: int = 0
    inventory: int = 0
    applied: int = 0
    pruned: int = 0
    drift_corrections: int = 0
    reconciles: list[int] = dataclasses.field(
        default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1)
    )
    """Reconciles per duration bucket (not cumulative); the last one is +Inf."""
    reconcile_seconds: float = 0.0

    def observe_reconcile(self, seconds: float) -> None:
        self.reconciles[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.reconcile_seconds += seconds


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        """The metrics that are not per unit; ``scrape`` adds the per-unit ones."""
        self._units: dict[UnitLabels, UnitSeries] = {}
        r = self.registry
        self.heal_duration = Histogram(
            "fleet_drift_heal_duration_seconds",
            "From the watch event of an out-of-band change to the object being re-applied.",
            buckets=_HEAL_BUCKETS,
            registry=r,
        )
        self.fetch_duration = Histogram(
            "fleet_git_fetch_duration_seconds",
            "Time to fetch a Git source.",
            ("source",),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.fetch_errors = Counter(
            "fleet_git_fetch_errors_total",
            "Failed fetches of a Git source.",
            ("source",),
            registry=r,
        )

    def unit(self, labels: UnitLabels) -> UnitSeries:
        """The series of one unit (kind, namespace, name), created on first use."""
        series = self._units.get(labels)
        if series is None:
            series = self._units[labels] = UnitSeries()
        return series

    def reconcile_count(self, labels: UnitLabels) -> int:
        """Reconciles of the unit finished so far (its histogram's ``_count``); 0 for a
        unit the agent has none for. Reads without creating a series."""
        series = self._units.get(labels)
        return sum(series.reconciles) if series is not None else 0

    def forget_unit(self, labels: UnitLabels) -> None:
        """The unit left the agent: its series leave the next scrape."""
        self._units.pop(labels, None)

    def count_requests_of(self, client: KubeClient) -> None:
        """Export the client's request counts (``fleet_kube_requests_total``)."""
        self.registry.register(KubeRequestsCollector(client))

    def scrape(self) -> Iterator[bytes]:
        """The Prometheus text exposition, in pieces of about one unit each.

        Runs in the HTTP server's thread: it reads a copy of the unit list, and a series
        changing meanwhile only makes its numbers a moment newer.
        """
        yield generate_latest(self.registry)
        units = sorted(list(self._units.items()))
        for name, type_, help_, field in _UNIT_FAMILIES:
            yield f"# HELP {name} {help_}\n# TYPE {name} {type_}\n".encode()
            for labels, series in units:
                if field is None:
                    yield _histogram_text(name, labels, series).encode()
                else:
                    value = float(getattr(series, field))
                    yield f"{name}{{{_label_text(labels)}}} {value!r}\n".encode()


def _histogram_text(name: str, labels: UnitLabels, series: UnitSeries) -> str:
    counts = list(series.reconciles)
    total = sum(counts)
    if not total:
        return ""  # no reconcile yet: no histogram, as prometheus_client has none either
    unit = _label_text(labels)
    lines, cumulative = [], 0
    for bound, count in zip(_BOUNDS, counts, strict=True):
        cumulative += count
        lines.append(f'{name}_bucket{{{unit},le="{bound}"}} {float(cumulative)!r}\n')
    lines.append(f"{name}_count{{{unit}}} {float(total)!r}\n")
    lines.append(f"{name}_sum{{{unit}}} {series.reconcile_seconds!r}\n")
    return "".join(lines)


def _label_text(labels: UnitLabels) -> str:
    return ",".join(
        f'{key}="{_escaped(value)}"' for key, value in zip(UNIT_LABELS, labels, strict=True)
    )


def _escaped(value: str) -> str:
    """A label value as the text format quotes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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
