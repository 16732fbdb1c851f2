"""What a provider asks to be sent (``Request``) and what came back (``Response``). Plain data:
the providers build requests without doing I/O, the transport sends them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(value: Any) -> bytes:
    """JSON as Go's ``encoding/json`` writes it: compact, non-ASCII kept, ``<>&`` escaped.
    Key order is the caller's (struct order, or sorted for maps)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON, None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Request:
    """One HTTP request of a delivery. A delivery may be several (a commit status lists the
    existing statuses first and is not posted again when an identical one is there)."""

    method: str
    url: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None
    stop_if: Callable[[Response], bool] | None = None
    """On a query step: True ends the delivery successfully (the status already exists)."""
    accept_status: frozenset[int] = frozenset()
    """Non-2xx answers that are not failures (Bitbucket's 404 for a status not set yet)."""
    check: Callable[[Response], str | None] | None = None
    """For a 2xx answer that can still mean failure (Slack's ``{"ok": false}``): the error."""

    @classmethod
    def post_json(
        cls,
        url: str,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> Request:
        """A POST of ``payload`` as JSON, with the ``Content-Type`` Flux sets."""
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls("POST", url, go_json(payload), merged, **fields)
