"""Posting alerts to Slack incoming webhooks and generic JSON webhooks, in the background.

``Dispatcher.publish`` never waits: alerts go into a bounded queue that ``run`` drains,
so a slow or dead receiver cannot hold up report ingest. A full queue drops the alert and
counts it (``result="dropped"``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.streams.memory import MemoryObjectSendStream

from hub.config import NotificationTarget
from hub.notify.alerts import Alert
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


@dataclass
class _Route:
    target: NotificationTarget
    url: str
    gate: NotificationGate


class Dispatcher:
    """Routes alerts to the configured targets; ``run`` must be running to deliver."""

    def __init__(
        self,
        targets: Sequence[NotificationTarget],
        count: Counter,
        clock: Callable[[], float],
    ) -> None:
        self._routes = [
            _Route(target, target.resolve_url(), NotificationGate.for_target(target))
            for target in targets
        ]
        self._count = count
        self._clock = clock
        self._send: MemoryObjectSendStream[Alert] | None = None

    @property
    def has_targets(self) -> bool:
        """Whether alerts go anywhere; callers skip deriving them when not."""
        return bool(self._routes)

    def publish(self, alerts: Sequence[Alert]) -> None:
        if not self._routes or self._send is None:
            return
        for alert in alerts:
            try:
                self._send.send_nowait(alert)
            except anyio.WouldBlock:
                for route in self._routes:
                    self._count(route.target.name, "dropped")

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        send, receive = anyio.create_memory_object_stream[Alert](QUEUE_SIZE)
        self._send = send
        async with httpx.AsyncClient() as client, receive:
            task_status.started()
            async for alert in receive:
                for route in self._routes:
                    await self._offer(client, route, alert)

    async def _offer(self, client: httpx.AsyncClient, route: _Route, alert: Alert) -> None:
        if not matches(route.target, alert):
            return
        verdict, held_back = route.gate.admit(alert, self._clock())
        if verdict is not Verdict.SEND:
            self._count(route.target.name, verdict.value)
            return
        target = route.target
        payload = (
            slack_payload(alert, held_back)
            if target.type == "slack"
            else generic_payload(alert, held_back)
        )
        try:
            response = await client.post(
                route.url,
                json=payload,
                headers=target.headers,
                timeout=target.timeout.total_seconds(),
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("notification to %s failed: %s", target.name, error)
            self._count(target.name, "failed")
            return
        self._count(target.name, "sent")
