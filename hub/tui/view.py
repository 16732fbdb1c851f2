"""What the TUI shows, as pure functions of the data: cells, waves, sorting, filtering.

The widgets only place these values; keeping them here lets the tests check a row's
text without a terminal, and lets the table compare a row's new cells with its old ones
so that an update touches only the cells that changed.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.text import Text

from fleet import untrusted
from fleet.report import ClusterSummary
from hub.api import EventRecord
from hub.tui.client import WaveStatus

HEALTH_STYLE: dict[str, tuple[str, str]] = {
    "Ready": ("✔", "green"),
    "Degraded": ("✖", "bold red"),
    "Stale": ("⧗", "yellow"),
    "Suspended": ("⏸", "blue"),
    "Unknown": ("?", "bright_black"),
}
"""Colour and a symbol: the health must read without colour too."""

HEALTH_SEVERITY: dict[str, int] = {
    "Degraded": 0,
    "Stale": 1,
    "Unknown": 2,
    "Suspended": 3,
    "Ready": 4,
}
"""Sorting by health puts what needs a person first."""

ACTION_STYLE: dict[str, tuple[str, str]] = {
    "promote": ("▶", "green"),
    "wait": ("⧗", "yellow"),
    "halt": ("✖", "bold red"),
    "rollback": ("↺", "bold red"),
    "settled": ("✔", "green"),
}

CONVENTIONAL_WAVES = ("dev", "test", "qa", "staging", "canary", "prod", "production")
"""Wave order when the hub has no promoter to tell it: the usual names, in rollout order."""
NO_WAVE = ""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


COLUMNS: tuple[Column, ...] = (
    Column("wave", "WAVE", 9),
    Column("name", "CLUSTER", 22),
    Column("health", "HEALTH", 11),
    Column("revision", "REVISION", 19),
    Column("units", "UNITS", 7),
    Column("drift", "DRIFT 24H", 9),
    Column("age", "LAST REPORT", 11),
    Column("agent", "AGENT", 10),
)
"""Fixed widths: an update never re-measures a column, and 1,000 rows fit 120 columns."""

SORT_KEYS = ("name", "health", "revision", "age", "drift")
"""What ``s`` cycles through; rows stay grouped by wave whatever the sort."""

Cell = Text | str


@dataclass(frozen=True)
class FleetCounts:
    clusters: int = 0
    ready: int = 0
    degraded: int = 0
    stale: int = 0
    unknown: int = 0
    suspended: int = 0


def count(clusters: Iterable[ClusterSummary]) -> FleetCounts:
    tally: dict[str, int] = dict.fromkeys(HEALTH_STYLE, 0)
    total = 0
    for cluster in clusters:
        total += 1
        tally[cluster.health] = tally.get(cluster.health, 0) + 1
    return FleetCounts(
        clusters=total,
        ready=tally["Ready"],
        degraded=tally["Degraded"],
        stale=tally["Stale"],
        unknown=tally["Unknown"],
        suspended=tally["Suspended"],
    )


def age(delta: datetime.timedelta) -> str:
    """kubectl's short age (45s, 12m, 5h, 3d), as ``fleet get clusters`` prints it."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def since(moment: datetime.datetime | str | None, now: datetime.datetime) -> str:
    if moment is None or moment == "":
        return "never"
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return age(now - moment)


def sha_of(revision: str | None) -> str:
    """The commit of ``main@sha1:0123...``, ``sha1:0123...`` or a bare SHA."""
    if not revision:
        return ""
    return revision.rpartition("@")[2].rpartition(":")[2]


def same_commit(a: str | None, b: str | None) -> bool:
    """Equal commits, also when one side is abbreviated (at least 7 hex digits)."""
    left, right = sha_of(a), sha_of(b)
    if not left or not right:
        return False
    shortest = min(len(left), len(right))
    return shortest >= 7 and left[:shortest] == right[:shortest]


def short_sha(revision: str | None, length: int = 8) -> str:
    return sha_of(revision)[:length]


def health_cell(health: str) -> Text:
    symbol, style = HEALTH_STYLE.get(health, HEALTH_STYLE["Unknown"])
    return Text(f"{symbol} {health}", style=style)


def action_cell(action: str) -> Text:
    symbol, style = ACTION_STYLE.get(action, ("?", "bright_black"))
    return Text(f"{symbol} {action}", style=style)


def revision_cell(revision: str | None, target: str | None) -> Text:
    """The short SHA; ``(target)`` when it is what its wave should run, ``→ <sha>`` when
    behind it; no mark when the wave's target is not known (no promoter)."""
    if not revision:
        return Text("<none>", style="bright_black")
    sha = untrusted.printable(short_sha(revision))
    if not target:
        return Text(sha)
    if same_commit(revision, target):
        return Text.assemble((sha, "green"), (" (target)", "bright_black"))
    target_sha = untrusted.printable(short_sha(target))
    return Text.assemble((sha, "yellow"), (f" → {target_sha}", "yellow"))


def wave_of(cluster: ClusterSummary, members: Mapping[str, str]) -> str:
    """The promoter's wave of the cluster, else its ``wave`` or ``env`` label."""
    return (
        members.get(cluster.name)
        or cluster.labels.get("wave")
        or cluster.labels.get("env")
        or NO_WAVE
    )


def wave_rank(wave: str, order: Sequence[str]) -> tuple[int, str]:
    if wave == NO_WAVE:
        return (1_000_000, "")
    if wave in order:
        return (order.index(wave), wave)
    if wave in CONVENTIONAL_WAVES:
        return (len(order) + CONVENTIONAL_WAVES.index(wave), wave)
    return (len(order) + len(CONVENTIONAL_WAVES), wave)


@dataclass(frozen=True)
class Waves:
    """What the promoter says about waves, reduced to what the overview needs."""

    order: tuple[str, ...] = ()
    members: Mapping[str, str] = field(default_factory=dict)
    """Cluster name to wave, from each wave's ``clusters``."""
    targets: Mapping[str, str] = field(default_factory=dict)
    """Wave to the revision its clusters should run."""

    @classmethod
    def of(cls, waves: Iterable[WaveStatus]) -> Waves:
        waves = list(waves)
        return cls(
            order=tuple(wave.name for wave in waves),
            members={cluster: wave.name for wave in waves for cluster in wave.clusters},
            targets={wave.name: wave.revision for wave in waves if wave.revision},
        )


def cluster_cells(
    cluster: ClusterSummary, waves: Waves, now: datetime.datetime
) -> tuple[Cell, ...]:
    """One overview row, in ``COLUMNS`` order; the hub's text as ``Text``, never markup."""
    wave = wave_of(cluster, waves.members)
    drift = cluster.drift24h
    return (
        untrusted.literal(wave or "—", style="bold" if wave else "bright_black"),
        untrusted.literal(cluster.name),
        health_cell(cluster.health),
        revision_cell(cluster.revision, waves.targets.get(wave)),
        Text(
            f"{cluster.units_ready}/{cluster.units_total}",
            style="" if cluster.units_ready == cluster.units_total else "yellow",
        ),
        Text(str(drift), style="magenta" if drift else "bright_black"),
        age_cell(cluster, now),
        untrusted.literal(
            cluster.agent_version or "?", style="" if cluster.agent_version else "bright_black"
        ),
    )


AGE_COLUMN = [column.key for column in COLUMNS].index("age")


def age_cell(cluster: ClusterSummary, now: datetime.datetime) -> str:
    return since(cluster.last_report_at, now)


def sort_key(cluster: ClusterSummary, waves: Waves, by: str) -> tuple[tuple[int, str], object, str]:
    """Wave first (rows stay grouped by wave), then ``by``, then the name."""
    group = wave_rank(wave_of(cluster, waves.members), waves.order)
    second: object
    if by == "health":
        second = HEALTH_SEVERITY.get(cluster.health, 9)
    elif by == "revision":
        second = sha_of(cluster.revision)
    elif by == "age":
        # Oldest report first: the clusters that went quiet are the interesting ones.
        second = cluster.last_report_at.timestamp() if cluster.last_report_at else float("-inf")
    elif by == "drift":
        second = -cluster.drift24h
    else:
        second = ""
    return (group, second, cluster.name)


def matches(cluster: ClusterSummary, wave: str, query: str) -> bool:
    """Every word of ``query`` is found in the name, a ``key=value`` label, the health or
    the wave (case-insensitive): ``prod degraded`` finds the degraded prod clusters."""
    words = query.lower().split()
    if not words:
        return True
    haystack = " ".join(
        [cluster.name, cluster.health, wave, *(f"{k}={v}" for k, v in cluster.labels.items())]
    ).lower()
    return all(word in haystack for word in words)


def event_matches(event: EventRecord, query: str) -> bool:
    words = query.lower().split()
    if not words:
        return True
    haystack = " ".join(
        [event.cluster, event.type, event.reason, event.unit, event.object, event.message]
    ).lower()
    return all(word in haystack for word in words)
