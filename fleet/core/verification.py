"""Verification gates of promotion waves: the pure half, tested with plain data.

A wave's ``verify`` checks (fleet.yaml) are evaluated by the hub over the clusters of the
waves it depends on: a PromQL expression against a Prometheus HTTP API, or an HTTP URL per
cluster. This module turns an evaluation into a result, folds results into the hold clock
the gate reads, and says why a hold does not (yet) let a revision through. The I/O lives in
``hub.promotion.verify``.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.models.duration import format_duration


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One evaluation of one check."""

    ok: bool
    detail: str
    """What was seen, in words for the pipeline view: ``2 sample(s), all non-zero``."""


@dataclasses.dataclass(frozen=True)
class CheckState:
    """The hold clock of one check, as the gate reads it."""

    holding_since: datetime.datetime | None
    """Since when every evaluation held; None while the last one failed (or none ran)."""
    checked_at: datetime.datetime | None
    """When the last evaluation finished."""
    detail: str = ""


def fold(previous: CheckState | None, result: CheckResult, at: datetime.datetime) -> CheckState:
    """The clock after one more evaluation: a failure stops it, a success keeps it running
    (or starts it)."""
    if not result.ok:
        return CheckState(None, at, result.detail)
    since = previous.holding_since if previous is not None else None
    return CheckState(since or at, at, result.detail)


def clusters_pattern(clusters: Sequence[str]) -> str:
    """A PromQL regular expression matching exactly these cluster names (DNS labels, so no
    character needs escaping): ``dev|dev-2``."""
    return "|".join(sorted(clusters))


def expand(template: str, *, clusters: Sequence[str], wave: str) -> str:
    """``{clusters}`` and ``{wave}`` substituted; PromQL's own braces are left alone."""
    return template.replace("{clusters}", clusters_pattern(clusters)).replace("{wave}", wave)


def check_urls(template: str, clusters: Sequence[str]) -> list[str]:
    """The URLs an HTTP check fetches: one per cluster, or the URL itself once."""
    if "{cluster}" not in template:
        return [template]
    return [template.replace("{cluster}", cluster) for cluster in clusters]


def prometheus_result(body: Mapping[str, Any]) -> CheckResult:
    """Whether a ``/api/v1/query`` answer holds, read as an alerting rule reads its
    expression: an instant vector holds when it has at least one sample (write the
    condition as a filter, ``rate(x) < 0.01``, whose samples keep the left-hand value,
    so an error rate of 0 passes); a scalar holds when it is not 0 (``1 < bool 2``).

    An empty vector fails, so a condition that filters everything out and a metric that
    is not scraped at all both keep the gate shut.
    """
    if body.get("status") != "success":
        error = body.get("error") or "no error given"
        return CheckResult(False, f"query failed ({body.get('errorType', 'error')}): {error}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        return CheckResult(False, "answer has no data")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        number = _sample_value(result)
        if number is None:
            return CheckResult(False, f"unreadable scalar: {result!r}")
        if number == 0 or math.isnan(number):
            return CheckResult(False, f"scalar = {number:g}")
        return CheckResult(True, f"scalar = {number:g}")
    if kind != "vector" or not isinstance(result, list):
        return CheckResult(False, f"unsupported result type {kind!r}: use an instant vector")
    if not result:
        return CheckResult(False, "query returned no samples")
    first = result[0] if isinstance(result[0], Mapping) else {}
    value = _sample_value(first.get("value"))
    shown = "?" if value is None else f"{value:g}"
    return CheckResult(
        True, f"{len(result)} sample(s), first {_series(first.get('metric'))} = {shown}"
    )


def http_result(url: str, status: int) -> CheckResult:
    if 200 <= status < 300:
        return CheckResult(True, f"{url} answered {status}")
    return CheckResult(False, f"{url} answered {status}")


def combine(results: Sequence[CheckResult]) -> CheckResult:
    """All of several results (one per URL): the first failure, or one line of successes."""
    for result in results:
        if not result.ok:
            return result
    return CheckResult(True, "; ".join(result.detail for result in results))


def waiting(
    state: CheckState | None,
    *,
    soak: datetime.timedelta,
    now: datetime.datetime,
    ready_since: datetime.datetime | None,
) -> tuple[bool, str] | None:
    """Why the check does not let a revision through yet: ``(failing, reason)``, or None.

    It passes when it has held continuously for ``soak`` and was evaluated after the
    dependency clusters became Ready at the revision (``ready_since``), so a hold measured
    while they still ran the previous revision never counts alone.
    """
    if state is None or state.checked_at is None:
        return False, "not evaluated yet"
    if state.holding_since is None:
        return True, f"does not hold: {state.detail}"
    if ready_since is not None and state.checked_at < ready_since:
        return False, "not evaluated since the clusters became Ready"
    remaining = state.holding_since + soak - now
    if remaining > datetime.timedelta(0):
        return False, f"holding, {format_duration(_ceil_seconds(remaining))} remaining"
    return None


def _ceil_seconds(delta: datetime.timedelta) -> datetime.timedelta:
    return datetime.timedelta(seconds=math.ceil(delta.total_seconds()))


def _series(metric: object) -> str:
    if not isinstance(metric, Mapping) or not metric:
        return "{}"
    labels = ",".join(f'{key}="{value}"' for key, value in sorted(metric.items()))
    return "{" + labels + "}"


def _sample_value(value: object) -> float | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    try:
        return float(value[1])
    except (TypeError, ValueError):
        return None
