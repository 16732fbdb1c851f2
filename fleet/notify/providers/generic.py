"""The event itself as JSON (``generic``), optionally signed (``generic-hmac``): the
``X-Signature: sha256=<hex HMAC of the body, keyed by the token>`` header of
``forwarder.go``. Extra headers come from the Secret's ``headers``."""

from __future__ import annotations

import hashlib
import hmac

from fleet.notify.event import Event
from fleet.notify.providers.base import ProviderType, check_address, require, require_url
from fleet.notify.request import Request, go_json
from fleet.notify.spec import ProviderSpec

COMPONENT_HEADER = "gotk-component"
SIGNATURE_HEADER = "X-Signature"


def signature(key: str, body: bytes) -> str:
    """The header's value: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _forward(event: Event, spec: ProviderSpec, key: str | None) -> list[Request]:
    body = go_json(event.to_wire())
    headers = {"Content-Type": "application/json", COMPONENT_HEADER: event.reporting_controller}
    headers.update(spec.headers)
    if key is not None:
        headers[SIGNATURE_HEADER] = signature(key, body)
    return [Request("POST", spec.address, body, headers)]


def build_generic(event: Event, spec: ProviderSpec) -> list[Request]:
    return _forward(event, spec, None)


def build_generic_hmac(event: Event, spec: ProviderSpec) -> list[Request]:
    return _forward(event, spec, spec.token)


def check_generic_hmac(spec: ProviderSpec) -> None:
    require_url(spec)
    require(spec, spec.token, "token (the HMAC key)")


GENERIC = ProviderType(
    "generic", build_generic, check_address, "any HTTP endpoint: the event as JSON"
)
GENERIC_HMAC = ProviderType(
    "generic-hmac",
    build_generic_hmac,
    check_generic_hmac,
    "the event as JSON, signed: X-Signature: sha256=<HMAC of the body with the token>",
)
