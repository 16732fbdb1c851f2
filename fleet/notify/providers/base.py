"""What every provider is (``ProviderType``) and the checks they share."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from fleet.notify.errors import InvalidProvider
from fleet.notify.event import Event
from fleet.notify.request import Request
from fleet.notify.spec import ProviderSpec

Build = Callable[[Event, ProviderSpec], list[Request]]
Check = Callable[[ProviderSpec], None]


@dataclass(frozen=True)
class ProviderType:
    """One Flux provider type. ``check`` refuses a spec that can never work (missing address,
    token, channel) with the field named; ``build`` turns one event into the requests to
    send, an empty list when the provider skips the event (Flux skips ``Progressing`` for
    commit statuses), or raises ``EventNotApplicable``."""

    name: str
    build: Build
    check: Check
    summary: str
    """One line for the docs and ``--help``: what it posts, where."""


def require_url(spec: ProviderSpec, value: str | None = None, what: str = "address") -> str:
    """An absolute http(s) URL, as Flux's ``url.ParseRequestURI`` requires."""
    url = spec.address if value is None else value
    if not url:
        raise InvalidProvider(f"{spec.type}: {what} is required")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidProvider(f"{spec.type}: {what} {url!r} is not an http(s) URL")
    return url


def require(spec: ProviderSpec, value: str, what: str) -> str:
    if not value:
        raise InvalidProvider(f"{spec.type}: {what} is required")
    return value


def check_address(spec: ProviderSpec) -> None:
    require_url(spec)


def sorted_metadata(event: Event) -> list[tuple[str, str]]:
    """Metadata pairs in key order (Go ranges over the map in random order; we pick one)."""
    return sorted(event.metadata.items())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
