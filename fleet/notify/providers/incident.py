"""Alerting and incident tools: Prometheus Alertmanager (``/api/v2/alerts``), PagerDuty
(Events API v2 and change events), Opsgenie (Alert API). As ``alertmanager.go``,
``pagerduty.go``, ``opsgenie.go``."""

from __future__ import annotations

import urllib.parse
from typing import Any

from fleet.notify.event import METADATA_SUMMARY, PROGRESSING, Event
from fleet.notify.providers.base import ProviderType, bearer, require, require_url
from fleet.notify.providers.names import name_and_description, title_case
from fleet.notify.request import Request
from fleet.notify.spec import ProviderSpec

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
"""Flux leaves ``endsAt`` unset; Go still writes the zero time, which Alertmanager reads as
"until resolve_timeout"."""


def build_alertmanager(event: Event, spec: ProviderSpec) -> list[Request]:
    labels = {k: v for k, v in event.metadata.items() if k != METADATA_SUMMARY}
    annotations = {"message": event.message}
    if METADATA_SUMMARY in event.metadata:
        annotations["summary"] = event.metadata[METADATA_SUMMARY]
    obj = event.involved_object
    labels.update(
        {
            "alertname": f"Flux{obj.kind}{title_case(event.reason)}",
            "severity": event.severity,
            "reason": event.reason,
            "kind": obj.kind,
            "name": obj.name,
            "namespace": obj.namespace,
            "reportingcontroller": event.reporting_controller,
        }
    )
    alert = {
        "status": "firing",
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "startsAt": event.time_rfc3339,
        "endsAt": GO_ZERO_TIME,
    }
    # Flux sets the Bearer token, then replaces it with basic auth when both are given.
    basic = (spec.username, spec.password) if spec.username and spec.password else None
    headers = {} if basic else bearer(spec.token)
    return [Request.post_json(spec.address, [alert], headers, basic_auth=basic)]


def check_alertmanager(spec: ProviderSpec) -> None:
    require_url(spec)


def _pagerduty_base(address: str) -> str:
    parts = urllib.parse.urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}"


def _pagerduty_details(event: Event) -> dict[str, Any]:
    return {"message": event.message, "metadata": dict(sorted(event.metadata.items())) or None}


def build_pagerduty(event: Event, spec: ProviderSpec) -> list[Request]:
    if event.reason == PROGRESSING:
        return []
    base = _pagerduty_base(spec.address)
    name, description = name_and_description(event)
    source = f"Flux {event.reporting_controller}"
    obj = event.involved_object
    trigger: dict[str, Any] = {
        "routing_key": spec.channel,
        "event_action": "trigger" if event.severity == "error" else "resolve",
    }
    if obj.uid:
        trigger["dedup_key"] = obj.uid
    if event.severity == "error":
        trigger["payload"] = {
            "summary": f"{description}: {name}",
            "source": source,
            "severity": "error",
            "timestamp": event.time_rfc3339,
            "component": obj.name,
            "group": obj.kind,
            "custom_details": _pagerduty_details(event),
        }
    requests = [Request.post_json(f"{base}/v2/enqueue", trigger)]
    if event.severity == "info":
        change = {
            "routing_key": spec.channel,
            "payload": {
                "summary": f"{description}: {name}",
                "source": source,
                "timestamp": event.time_rfc3339,
                "custom_details": _pagerduty_details(event),
            },
        }
        requests.append(Request.post_json(f"{base}/v2/change/enqueue", change))
    return requests


def check_pagerduty(spec: ProviderSpec) -> None:
    require_url(spec, what="address (the Events API host, https://events.pagerduty.com)")
    require(spec, spec.channel, "channel (the integration/routing key)")


def build_opsgenie(event: Event, spec: ProviderSpec) -> list[Request]:
    details = dict(event.metadata)
    details["severity"] = event.severity
    obj = event.involved_object
    payload = {
        "message": f"{obj.kind}/{obj.name}",
        "description": event.message,
        "details": dict(sorted(details.items())),
    }
    headers = {"Authorization": f"GenieKey {spec.token}"}
    return [Request.post_json(spec.address, payload, headers)]


def check_opsgenie(spec: ProviderSpec) -> None:
    require_url(spec)
    require(spec, spec.token, "token (the Opsgenie API key)")


ALERTMANAGER = ProviderType(
    "alertmanager",
    build_alertmanager,
    check_alertmanager,
    "Alertmanager v2 API: one firing alert (Bearer token or basic auth)",
)
PAGERDUTY = ProviderType(
    "pagerduty",
    build_pagerduty,
    check_pagerduty,
    "PagerDuty Events API v2: trigger on error, resolve + change event on info",
)
OPSGENIE = ProviderType(
    "opsgenie", build_opsgenie, check_opsgenie, "Opsgenie Alert API (GenieKey token)"
)
