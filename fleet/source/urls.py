"""Git remote URLs: which transport, which host and port, and a form safe to log.

Pure code. Accepts what Flux and git accept: ``https://``, ``http://``, ``ssh://``,
scp-like ``git@host:path``, ``git://``, ``file://`` and local paths.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

from fleet.redact import redact_url

_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<path>.+)$")


class Transport(StrEnum):
    HTTPS = "https"
    HTTP = "http"
    SSH = "ssh"
    GIT = "git"
    FILE = "file"


_DEFAULT_PORTS = {Transport.HTTPS: 443, Transport.HTTP: 80, Transport.SSH: 22, Transport.GIT: 9418}


@dataclass(frozen=True)
class GitURL:
    """A parsed remote URL; ``text`` is passed to libgit2 unchanged."""

    text: str
    transport: Transport
    host: str | None
    port: int | None
    username: str | None
    has_password: bool

    @property
    def effective_port(self) -> int | None:
        return self.port or _DEFAULT_PORTS.get(self.transport)

    @property
    def redacted(self) -> str:
        """The URL without credentials (see ``fleet.redact``), for messages and logs."""
        return redact_url(self.text)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The password embedded in the URL, if any, to scrub from messages."""
        if not self.has_password:
            return ()
        password = urlsplit(self.text).password
        return (password,) if password else ()

    @property
    def cache_key(self) -> str:
        """A directory name for this repository that ignores credentials in the URL."""
        if self.transport in (Transport.HTTP, Transport.HTTPS, Transport.SSH, Transport.GIT):
            parts = urlsplit(self.text)
            host = parts.netloc.rpartition("@")[2]
            canonical = urlunsplit(parts._replace(netloc=host))
        else:
            canonical = self.text
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _from_split(text: str, parts: SplitResult, transport: Transport) -> GitURL:
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"invalid port in {text!r}") from error
    if not parts.hostname:
        raise ValueError(f"no host in {text!r}")
    return GitURL(text, transport, parts.hostname, port, parts.username, parts.password is not None)


def parse_git_url(text: str) -> GitURL:
    """Classify a remote URL; raises ValueError for something git could not fetch from."""
    text = text.strip()
    if not text:
        raise ValueError("empty repository URL")
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return GitURL(text, Transport.FILE, None, None, None, False)
        try:
            transport = Transport(scheme)
        except ValueError:
            raise ValueError(f"unsupported URL scheme {scheme!r} in {text!r}") from None
        return _from_split(text, parts, transport)
    if text.startswith(("/", "./", "../", "~")) or Path(text).exists():
        return GitURL(text, Transport.FILE, None, None, None, False)
    match = _SCP_LIKE.match(text)
    if match:
        host = match["host"].strip("[]")
        return GitURL(text, Transport.SSH, host, None, match["user"], False)
    raise ValueError(f"cannot tell what kind of repository URL {text!r} is")
