"""Alerts to their targets through the provider library (``fleet.notify``), in the background.

``Dispatcher.publish`` never waits: each alert that passes a target's filters and gate
becomes a ``Delivery`` queued on that target's worker, so a slow or dead receiver cannot
hold up report ingest. Every Flux provider type is built by ``fleet.notify``; the hub's own
two formats stay for ``type: slack`` (unless ``format: flux``) and ``type: webhook``.
Results are counted per target: sent, failed, skipped, dropped, duplicate, rate_limited.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from fleet.notify import Delivery, EventNotApplicable, Notifier, Outcome, Request
from hub.config import NotificationTarget
from hub.notify.alerts import Alert
from hub.notify.flux import event_of
from hub.notify.policy import NotificationGate, Verdict, matches

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
_COLORS = {"info": "#2eb67d", "warning": "#ecb22e", "error": "#e01e5a"}
_EMOJI = {"info": ":white_check_mark:", "warning": ":warning:", "error": ":rotating_light:"}

Counter = Callable[[str, str], None]
"""Called with (target name, result) for every alert a target saw."""


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def slack_payload(alert: Alert, held_back: int = 0) -> dict[str, Any]:
    """An incoming-webhook message: a fallback ``text`` and one colored attachment."""
    where = f"{alert.cluster}/{alert.unit}" if alert.unit else alert.cluster
    title = f"{_EMOJI[alert.severity]} {alert.reason} on {where}"
    fields = [{"title": "Cluster", "value": alert.cluster, "short": True}]
    if alert.unit:
        fields.append({"title": "Unit", "value": alert.unit, "short": True})
    if alert.object:
        fields.append({"title": "Object", "value": alert.object, "short": False})
    if alert.labels:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        fields.append({"title": "Labels", "value": labels, "short": False})
    text = alert.message
    if held_back:
        text += f"\n_({held_back} similar notifications held back by the rate limit)_"
    return {
        "text": f"{title}: {alert.message}",
        "attachments": [
            {
                "color": _COLORS[alert.severity],
                "title": title,
                "text": text,
                "fields": fields,
                "ts": int(alert.time),
                "footer": "fleet hub",
            }
        ],
    }


def generic_payload(alert: Alert, held_back: int = 0) -> dict[str, Any]:
    """The alert as plain JSON for any receiver."""
    return {
        "apiVersion": "fleet.dev/v1alpha1",
        "kind": "Alert",
        "cluster": alert.cluster,
        "labels": alert.labels,
        "unit": alert.unit,
        "object": alert.object,
        "reason": alert.reason,
        "severity": alert.severity,
        "message": alert.message,
        "time": _iso(alert.time),
        "heldBack": held_back,
    }


Build = Callable[[Alert, int], Delivery]


@dataclass
class _Route:
    target: NotificationTarget
    gate: NotificationGate
    build: Build


def _route(target: NotificationTarget) -> _Route:
    spec = target.provider_spec()
    name = target.name

    def legacy(payload: Callable[[Alert, int], dict[str, Any]]) -> Build:
        def build(alert: Alert, held_back: int) -> Delivery:
            request = Request.post_json(spec.address, payload(alert, held_back), spec.headers)
            return Delivery.of(name, spec, [request], key="")

        return build

    def flux(alert: Alert, held_back: int) -> Delivery:
        event = event_of(
            alert,
            held_back=held_back,
            summary=target.summary,
            extra_metadata=target.event_metadata,
        )
        # The gate already dropped duplicates by the hub's own rule: no second window.
        delivery = Delivery.for_event(name, spec, event)
        return Delivery.of(name, spec, delivery.requests, key="")

    if target.type == "webhook":
        build = legacy(generic_payload)
    elif target.type == "slack" and target.format == "fleet":
        build = legacy(slack_payload)
    else:
        build = flux
    return _Route(target, NotificationGate.for_target(target), build)


class Dispatcher:
    """Routes alerts to the configured targets; ``run`` must be running to deliver."""

    def __init__(
        self,
        targets: Sequence[NotificationTarget],
        count: Counter,
        clock: Callable[[], float],
    ) -> None:
        self._routes = [_route(target) for target in targets]
        self._count = count
        self._clock = clock
        self.notifier = Notifier(
            dedupe_seconds=0,
            queue_size=QUEUE_SIZE,
            on_outcome=self._outcome,
        )

    @property
    def has_targets(self) -> bool:
        """Whether alerts go anywhere; callers skip deriving them when not."""
        return bool(self._routes)

    def publish(self, alerts: Sequence[Alert]) -> None:
        if not self._routes or not self.notifier.running:
            return
        for alert in alerts:
            for route in self._routes:
                self._offer(route, alert)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        await self.notifier.run(task_status=task_status)

    def _offer(self, route: _Route, alert: Alert) -> None:
        if not matches(route.target, alert):
            return
        verdict, held_back = route.gate.admit(alert, self._clock())
        if verdict is not Verdict.SEND:
            self._count(route.target.name, verdict.value)
            return
        try:
            delivery = route.build(alert, held_back)
        except EventNotApplicable as error:
            log.info("notification %s skips %s: %s", route.target.name, alert.reason, error)
            self._count(route.target.name, Outcome.SKIPPED.value)
            return
        self.notifier.submit(delivery)

    def _outcome(self, target: str, outcome: Outcome, detail: str) -> None:
        if outcome is Outcome.FAILED:
            log.warning("notification to %s failed: %s", target, detail)
        self._count(target, outcome.value)
