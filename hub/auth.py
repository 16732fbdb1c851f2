"""Hub tokens: issued once, stored as salted HMAC-SHA256, checked in constant time.

A token reads ``fleet_<id>_<secret>``: the id finds the stored record without revealing
anything, the secret is checked against its hash. Cluster tokens let one agent report and
stream as its own cluster and nothing else; user tokens carry a role, ``read-only`` (every
query and stream) or ``admin`` (also queues reconciles).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from hub.store import TokenRecord

Role = Literal["cluster", "read-only", "admin"]
USER_ROLES: tuple[Role, ...] = ("read-only", "admin")
TOKEN_PREFIX = "fleet"
_TOKEN = re.compile(r"^fleet_([0-9a-f]{12})_([A-Za-z0-9_-]{32,})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by their token."""

    token_id: str
    kind: Literal["cluster", "user"]
    subject: str
    role: Role
    labels: dict[str, str] = field(default_factory=dict)

    def may_read(self) -> bool:
        return self.role in USER_ROLES

    def is_admin(self) -> bool:
        return self.role == "admin"

    def is_cluster(self, name: str) -> bool:
        return self.kind == "cluster" and self.subject == name


def _digest(salt: str, secret: str) -> str:
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


def issue_token(
    kind: Literal["cluster", "user"],
    subject: str,
    role: Role,
    now: float,
    labels: dict[str, str] | None = None,
) -> tuple[str, TokenRecord]:
    """A new token: the text to hand out once, and the record to store (no secret in it)."""
    if (kind == "cluster") != (role == "cluster"):
        raise ValueError("cluster tokens have the role 'cluster'; users 'read-only' or 'admin'")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    record = TokenRecord(
        id=token_id,
        kind=kind,
        subject=subject,
        role=role,
        labels=dict(labels or {}),
        salt=salt,
        hash=_digest(salt, secret),
        created_at=now,
    )
    return f"{TOKEN_PREFIX}_{token_id}_{secret}", record


def split_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(text.strip())
    return (match[1], match[2]) if match else None


def verify(secret: str, record: TokenRecord) -> bool:
    """True if ``secret`` is the record's and the token is not revoked."""
    if record.revoked_at is not None:
        return False
    return hmac.compare_digest(_digest(record.salt, secret), record.hash)


_ROLES: dict[str, Role] = {"cluster": "cluster", "read-only": "read-only", "admin": "admin"}


def principal_of(record: TokenRecord) -> Principal | None:
    """The caller a stored token stands for; None for a record this hub cannot interpret."""
    role = _ROLES.get(record.role)
    if role is None or record.kind not in ("cluster", "user"):
        return None
    kind: Literal["cluster", "user"] = "cluster" if record.kind == "cluster" else "user"
    return Principal(record.id, kind, record.subject, role, record.labels)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
