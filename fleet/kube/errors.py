"""Errors of the Kubernetes API, one class per status, carrying the API's Status message.

The client translates every transport and library error into these once, at the edge,
so the rest of fleet never sees aiohttp or kubernetes exceptions.
"""

from __future__ import annotations

import json
from typing import Any


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP code (0 when none came back)."""

    transient = False
    """Whether retrying the same request later may succeed."""

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.details = details


class NotFound(KubeError):
    """The object, or its kind, does not exist (404)."""


class Conflict(KubeError):
    """Field-manager conflict or stale resourceVersion (409)."""


class Forbidden(KubeError):
    """RBAC denied the request (403): the identity lacks a permission."""


class Unauthorized(KubeError):
    """The credentials were not accepted (401)."""


class Invalid(KubeError):
    """The object was rejected by validation or admission (422, 400)."""


class Gone(KubeError):
    """The resourceVersion of a watch or list is too old (410): list again."""


class ApiUnavailable(KubeError):
    """The API server could not be reached or answered 5xx/429: retry later."""

    transient = True


_BY_STATUS: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def from_response(status: int, body: bytes | str, what: str) -> KubeError:
    """The error for a failed response, with the message of the API's Status object."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    message, reason, details = text.strip(), "", None
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            message = str(parsed.get("message") or message)
            reason = str(parsed.get("reason") or "")
            details = parsed.get("details")
    except ValueError:
        pass
    cls = _BY_STATUS.get(status) or (
        ApiUnavailable if status >= 500 or status == 429 else KubeError
    )
    return cls(
        f"{what}: {message or f'HTTP {status}'}", status=status, reason=reason, details=details
    )
