"""Errors of the Git source, grouped by what the caller should do about them.

Every error names the repository URL (with any password redacted) and the ref it was
following. ``SourceUnavailable`` is worth retrying soon; the ``SourceAuthError`` family and
``SourceConfigError`` need someone to change a Secret or a spec; ``RefNotFound`` means the
ref is gone while the last good revision may still be served.
"""

from __future__ import annotations


class SourceError(Exception):
    """Any failure of a Git source."""

    def __init__(self, detail: str, *, url: str = "", ref: str = "") -> None:
        self.detail = detail
        self.url = url
        self.ref = ref
        self.duration_seconds: float | None = None
        """How long the failed fetch ran; set by ``GitSource.fetch`` for metrics."""
        where = " ".join(part for part in (url, f"({ref})" if ref else "") if part)
        super().__init__(f"{where}: {detail}" if where else detail)


class SourceConfigError(SourceError, ValueError):
    """The URL, ref or credential material is malformed; retrying cannot help."""


class SourceUnavailable(SourceError):
    """The server could not be reached or failed mid-transfer; a later fetch may work."""


class SourceAuthError(SourceError):
    """The server refused our credentials, wanted some we lack, or could not be trusted."""


class ServerNotTrusted(SourceAuthError):
    """The server's identity (TLS certificate or SSH host key) failed verification."""


class UnknownHostKey(ServerNotTrusted):
    """known_hosts has no key for this SSH host, so its identity cannot be checked."""


class HostKeyMismatch(ServerNotTrusted):
    """The SSH host presented a key that known_hosts does not list for it (or revokes)."""


class RefNotFound(SourceError):
    """The branch, tag, ref name or commit does not exist on the server (any more)."""


class RevisionNotFound(SourceError):
    """The cache does not hold the commit asked for, so it cannot be exported."""


class UnsafeTree(SourceError):
    """A commit's tree holds a path that cannot be written safely (``..``, ``.git``)."""
