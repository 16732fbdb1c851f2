"""Credentials for a Git source, in the shape of Flux's GitRepository ``secretRef``.

A Flux Secret holds ``username``/``password`` (HTTP basic, or a token as password),
``bearerToken`` (HTTP ``Authorization: Bearer``), or ``identity`` (+ optional
``identity.pub``), ``known_hosts`` and ``password`` (the key's passphrase) for SSH.
``GitAuth.from_secret_data`` reads exactly those keys; ``from_directory`` reads a mounted
Secret volume. Secret values never appear in ``repr``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet.source.errors import SourceConfigError
from fleet.source.known_hosts import KnownHosts

SECRET_KEYS = ("username", "password", "bearerToken", "identity", "identity.pub", "known_hosts")
TOKEN_USERNAME = "git"
"""Username sent with a token as password; GitHub, GitLab and Gitea all accept any name."""


def _text(value: str | bytes | Path) -> str:
    if isinstance(value, Path):
        return value.read_text()
    if isinstance(value, bytes):
        return value.decode()
    return value


@dataclass(frozen=True)
class GitAuth:
    """How to authenticate to a Git server and, for SSH, how to recognise it."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    identity: str | None = field(default=None, repr=False)
    """SSH private key text (PEM or OpenSSH format)."""
    identity_pub: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    """known_hosts text; required for SSH, since an unverified host could serve anything."""

    def __post_init__(self) -> None:
        if self.password is not None and self.bearer_token is not None:
            raise SourceConfigError("set either a password or a bearer token, not both")
        if self.identity is not None and "PRIVATE KEY" not in self.identity:
            raise SourceConfigError("identity does not look like a PEM or OpenSSH private key")
        if self.known_hosts is not None and not self.parsed_known_hosts.entries:
            raise SourceConfigError("known_hosts holds no usable host key line")

    @classmethod
    def none(cls) -> GitAuth:
        return cls()

    @classmethod
    def basic(cls, username: str, password: str) -> GitAuth:
        return cls(username=username, password=password)

    @classmethod
    def token(cls, token: str, username: str = TOKEN_USERNAME) -> GitAuth:
        """A personal access or deploy token sent as HTTP basic password, as Flux does."""
        return cls(username=username, password=token)

    @classmethod
    def bearer(cls, token: str) -> GitAuth:
        return cls(bearer_token=token)

    @classmethod
    def ssh(
        cls,
        identity: str | bytes | Path,
        known_hosts: str | bytes | Path,
        *,
        passphrase: str | None = None,
        identity_pub: str | bytes | Path | None = None,
    ) -> GitAuth:
        """SSH key auth; str/bytes are the key material itself, a Path is read from disk."""
        return cls(
            identity=_text(identity),
            known_hosts=_text(known_hosts),
            passphrase=passphrase,
            identity_pub=_text(identity_pub) if identity_pub is not None else None,
        )

    @classmethod
    def from_secret_data(
        cls, data: Mapping[str, str | bytes], *, base64_encoded: bool = False
    ) -> GitAuth:
        """Credentials from a Secret's data (Flux keys); set base64_encoded for raw ``.data``."""
        values: dict[str, str] = {}
        for key, raw in data.items():
            if key not in SECRET_KEYS:
                continue
            try:
                value = base64.b64decode(raw, validate=True) if base64_encoded else raw
                values[key] = _text(value)
            except (binascii.Error, UnicodeDecodeError) as error:
                raise SourceConfigError(f"secret key {key!r} is not valid text") from error
        if "identity" in values:
            # In Flux's SSH secrets, "password" is the passphrase of the private key.
            return cls(
                identity=values["identity"],
                identity_pub=values.get("identity.pub"),
                passphrase=values.get("password"),
                known_hosts=values.get("known_hosts"),
                username=values.get("username"),
            )
        return cls(
            username=values.get("username"),
            password=values.get("password"),
            bearer_token=values.get("bearerToken"),
            known_hosts=values.get("known_hosts"),
        )

    @classmethod
    def from_directory(cls, directory: Path) -> GitAuth:
        """Credentials from a mounted Secret volume: one file per key."""
        files = {key: directory / key for key in SECRET_KEYS}
        data = {key: path.read_text() for key, path in files.items() if path.is_file()}
        return cls.from_secret_data(data)

    @property
    def parsed_known_hosts(self) -> KnownHosts:
        return KnownHosts.parse(self.known_hosts or "")

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Values to scrub from any message that leaves the source."""
        values = (self.password, self.bearer_token, self.identity, self.passphrase)
        return tuple(v for v in values if v)
