"""Incoming push webhooks: who may send them, and which clusters a push concerns.

Pure code. GitHub signs the raw body with HMAC-SHA256 (``X-Hub-Signature-256:
sha256=<hex>``); GitLab sends a shared token (``X-Gitlab-Token``), compared in constant
time; the generic form signs ``<timestamp>.<body>`` (``X-Fleet-Signature: sha256=<hex>``,
``X-Fleet-Timestamp: <unix seconds>``) so that a captured request cannot be replayed
after the window, and names each delivery (``X-Fleet-Delivery``). The delivery id is not
signed, so the hub remembers, for the window, both the id and the digest of what was
signed (``replay_key``): a captured delivery sent again with a new or no id is still a
replay. GitHub signs only the body, so a GitHub delivery is remembered by its body's
digest as well as by ``X-GitHub-Delivery``: changing or dropping the id does not replay.

Headers come from anyone: a header that is not printable ASCII, too long, or a
timestamp that is not plain unix seconds (``nan``, ``inf``, ``1e9``) is refused (400/401).

A push of ref R to repository U concerns every cluster whose agent follows R of U, as
the agent reports them in ``source.ref`` and ``source.url``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

Provider = Literal["github", "gitlab", "generic"]
PROVIDERS: tuple[Provider, ...] = ("github", "gitlab", "generic")
DEFAULT_REPLAY_WINDOW_SECONDS = 300.0

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")
_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}(?:\.[0-9]{1,9})?$")
_HEADER_TEXT = re.compile(r"^[\x21-\x7e]{1,256}$")
"""A signature, token, delivery id or timestamp: visible ASCII, no spaces, bounded."""


class WebhookRejected(Exception):
    """A delivery refused; ``result`` is the metric label, ``status`` the HTTP status."""

    def __init__(self, message: str, *, result: str, status: int = 401) -> None:
        super().__init__(message)
        self.result = result
        self.status = status


@dataclass(frozen=True)
class PushEvent:
    """A push as the hub acts on it, whatever the provider's payload looked like."""

    provider: Provider
    ref: str
    """Full ref name: ``refs/heads/main`` or ``refs/tags/v1.2.0``."""
    repository_urls: tuple[str, ...]
    """Every URL the provider gives for the repository (clone, SSH, web); may be empty."""
    after: str | None = None


def signature_of(secret: str, payload: bytes) -> str:
    """``sha256=<hex>`` as GitHub and the generic form send it."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _check_signature(secret: str, payload: bytes, header: str | None, name: str) -> None:
    if not header:
        raise WebhookRejected(f"missing {name} header", result="unsigned")
    value = header.strip()
    if not _HEADER_TEXT.match(value):
        raise WebhookRejected(f"{name} is not a signature", result="bad_signature")
    if not hmac.compare_digest(signature_of(secret, payload).encode(), value.encode()):
        raise WebhookRejected(f"{name} does not match the payload", result="bad_signature")


def delivery_id(header: str | None, name: str) -> str | None:
    """A delivery id header, checked: None when absent; refused when not plain text."""
    if header is None or header == "":
        return None
    if not _HEADER_TEXT.match(header):
        raise WebhookRejected(
            f"{name} must be 1-256 visible ASCII characters", result="invalid", status=400
        )
    return header


def replay_key(signed: bytes) -> str:
    """What identifies a delivery whatever its unsigned headers say: the signed bytes."""
    return hashlib.sha256(signed).hexdigest()


def generic_signed_bytes(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"." + body


def verify_github(secret: str, body: bytes, signature: str | None) -> None:
    _check_signature(secret, body, signature, "X-Hub-Signature-256")


def verify_gitlab(token: str, header: str | None) -> None:
    if not header:
        raise WebhookRejected("missing X-Gitlab-Token header", result="unsigned")
    if not hmac.compare_digest(token.encode(), header.encode("utf-8", "replace")):
        raise WebhookRejected("X-Gitlab-Token is wrong", result="bad_signature")


def verify_generic(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    window_seconds: float = DEFAULT_REPLAY_WINDOW_SECONDS,
) -> None:
    """Check the signature over ``<timestamp>.<body>`` and that the timestamp is recent."""
    if not timestamp:
        raise WebhookRejected("missing X-Fleet-Timestamp header", result="unsigned")
    if not _UNIX_SECONDS.match(timestamp):
        raise WebhookRejected(
            "X-Fleet-Timestamp must be unix seconds (digits, optionally a fraction)",
            result="bad_signature",
        )
    sent = float(timestamp)
    _check_signature(secret, generic_signed_bytes(timestamp, body), signature, "X-Fleet-Signature")
    if abs(now - sent) > window_seconds:
        raise WebhookRejected(
            f"X-Fleet-Timestamp is {abs(now - sent):.0f}s away from now; "
            f"deliveries are accepted within {window_seconds:.0f}s",
            result="replayed",
        )


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRejected("payload is not JSON", result="invalid", status=400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("payload is not a JSON object", result="invalid", status=400)
    return payload


def _object(payload: dict[str, Any], field: str) -> dict[str, Any]:
    """``payload[field]`` when it is a JSON object; {} when absent; refused otherwise."""
    value = payload.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebhookRejected(f"'{field}' is not a JSON object", result="invalid", status=400)
    return value


def _urls(*candidates: Any) -> tuple[str, ...]:
    return tuple(url for url in candidates if isinstance(url, str) and url)


def _ref(payload: dict[str, Any]) -> str:
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise WebhookRejected("push payload has no full 'ref'", result="invalid", status=400)
    return ref


def parse_github(event: str | None, body: bytes) -> PushEvent | None:
    """The push in a GitHub delivery; None for other events (``ping``, ``issues``...)."""
    if event != "push":
        return None
    payload = _json(body)
    repository = _object(payload, "repository")
    return PushEvent(
        "github",
        _ref(payload),
        _urls(
            repository.get("clone_url"),
            repository.get("ssh_url"),
            repository.get("git_url"),
            repository.get("html_url"),
        ),
        payload.get("after"),
    )


def parse_gitlab(event: str | None, body: bytes) -> PushEvent | None:
    """The push in a GitLab delivery (``Push Hook`` or ``Tag Push Hook``)."""
    if event not in ("Push Hook", "Tag Push Hook"):
        return None
    payload = _json(body)
    project = _object(payload, "project")
    repository = _object(payload, "repository")
    return PushEvent(
        "gitlab",
        _ref(payload),
        _urls(
            project.get("git_http_url"),
            project.get("git_ssh_url"),
            project.get("web_url"),
            repository.get("git_http_url"),
            repository.get("git_ssh_url"),
        ),
        payload.get("after"),
    )


def parse_generic(body: bytes) -> PushEvent:
    """``{"ref": "refs/heads/main", "repository": "<url>" (optional), "after": "<sha>"}``."""
    payload = _json(body)
    repository = payload.get("repository")
    return PushEvent("generic", _ref(payload), _urls(repository), payload.get("after"))


def repository_key(url: str) -> str:
    """``host/path`` without scheme, user, port or ``.git``: the same repository by any URL."""
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme == "file":
            return parts.path.rstrip("/").removesuffix(".git")
        host, path = (parts.hostname or ""), parts.path
    else:
        match = _SCP_LIKE.match(text)
        if match is None or text.startswith(("/", ".")):
            return text.rstrip("/").removesuffix(".git")
        host, path = match["host"], match["path"]
    path = path.strip("/").removesuffix(".git").rstrip("/")
    return f"{host.lower()}/{path}"


def follows_ref(followed: str, pushed: str) -> bool:
    """Whether an agent following ``followed`` should look again after a push of ``pushed``.

    ``followed`` is what the agent reports as ``source.ref``: a full ref name, a bare branch
    name, or the descriptive forms ``branch main``, ``tag v1``, ``semver '^1.0'``,
    ``ref refs/pull/7/head``. A semver range follows every tag push; a pinned commit
    follows nothing.
    """
    followed = followed.strip()
    kind, _, rest = followed.partition(" ")
    rest = rest.strip().strip("'\"")
    if followed.startswith("refs/"):
        return followed == pushed
    if kind == "branch" and rest:
        return pushed == f"refs/heads/{rest}"
    if kind == "tag" and rest:
        return pushed == f"refs/tags/{rest}"
    if kind == "semver" or followed.startswith("semver:"):
        return pushed.startswith("refs/tags/")
    if kind == "ref" and rest:
        return pushed == rest
    if kind == "commit" or " " in followed:
        return False
    return pushed in (f"refs/heads/{followed}", f"refs/tags/{followed}")


def concerns(push: PushEvent, source_url: str | None, source_ref: str | None) -> bool:
    """Whether a cluster reporting this source should reconcile after ``push``."""
    if not source_ref or not follows_ref(source_ref, push.ref):
        return False
    if not push.repository_urls or not source_url:
        return True
    followed = repository_key(source_url)
    return any(repository_key(url) == followed for url in push.repository_urls)
