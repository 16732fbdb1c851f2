"""Dashboards and event streams: Grafana annotations (``/api/annotations``) and Datadog
events (``/api/v1/events``). As ``grafana.go`` and ``datadog.go``."""

from __future__ import annotations

import urllib.parse

from fleet.notify.event import Event
from fleet.notify.providers.base import ProviderType, bearer, require, require_url
from fleet.notify.request import Request
from fleet.notify.spec import ProviderSpec


def build_grafana(event: Event, spec: ProviderSpec) -> list[Request]:
    obj = event.involved_object
    tags = ["flux", event.reporting_controller]
    tags += [
        f"{k.replace(':', '|')}: {v.replace(':', '|')}" for k, v in sorted(event.metadata.items())
    ]
    tags += [f"kind: {obj.kind}", f"name: {obj.name}", f"namespace: {obj.namespace}"]
    # Flux sends whole seconds in ``when`` (its comment says ms; the code sends Unix()).
    payload = {"when": int(event.timestamp.timestamp()), "text": event.object_name, "tags": tags}
    basic = None
    if spec.username and spec.password and not spec.token:
        basic = (spec.username, spec.password)
    return [Request.post_json(spec.address, payload, bearer(spec.token), basic_auth=basic)]


def check_grafana(spec: ProviderSpec) -> None:
    require_url(spec, what="address (https://<grafana>/api/annotations)")


def datadog_tags(event: Event) -> list[str]:
    obj = event.involved_object
    tags = [
        f"flux_reporting_controller:{event.reporting_controller}",
        f"flux_reason:{event.reason}",
        f"kube_kind:{obj.kind}",
        f"kube_name:{obj.name}",
        f"kube_namespace:{obj.namespace}",
    ]
    tags += [f"{k}:{v}" for k, v in sorted(event.metadata.items())]
    return [tag.lower() for tag in tags]


def build_datadog(event: Event, spec: ProviderSpec) -> list[Request]:
    base = urllib.parse.urlsplit(spec.address)
    obj = event.involved_object
    # The Datadog client serialises through a map: keys in sorted order.
    payload = {
        "alert_type": "error" if event.severity == "error" else "info",
        "date_happened": int(event.timestamp.timestamp()),
        "source_type_name": "fluxcd",
        "tags": datadog_tags(event),
        "text": event.message,
        "title": f"Events from the {obj.kind} {obj.name}/{obj.namespace}",
    }
    headers = {"Accept": "application/json", "DD-API-KEY": spec.token}
    url = f"{base.scheme}://{base.netloc}/api/v1/events"
    return [Request.post_json(url, payload, headers)]


def check_datadog(spec: ProviderSpec) -> None:
    require_url(spec, what="address (the Datadog site, https://api.datadoghq.com)")
    require(spec, spec.token, "token (a Datadog API key)")


GRAFANA = ProviderType(
    "grafana",
    build_grafana,
    check_grafana,
    "Grafana annotations API, tagged flux (Bearer token or basic auth)",
)
DATADOG = ProviderType(
    "datadog", build_datadog, check_datadog, "Datadog events API v1 (DD-API-KEY token)"
)
