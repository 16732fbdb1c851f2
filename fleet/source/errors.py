"""Errors of the sources (Git repositories, OCI registries), grouped by what to do about them.

Every error names the repository URL (with any password redacted) and the ref it was
following, and where a spec field is to blame, that field (``spec.ref.tag``).
``SourceUnavailable`` is worth retrying soon; the ``SourceAuthError`` family and
``SourceConfigError`` need someone to change a Secret or a spec; ``RefNotFound`` means the
ref is gone while the last good revision may still be served.
"""

from __future__ import annotations


class SourceError(Exception):
    """Any failure of a source."""

    def __init__(self, detail: str, *, url: str = "", ref: str = "", field: str = "") -> None:
        self.detail = f"{field}: {detail}" if field else detail
        self.url = url
        self.ref = ref
        self.field = field
        """The spec field the error is about, e.g. ``spec.layerSelector.mediaType``."""
        self.duration_seconds: float | None = None
        """How long the failed fetch ran; set by ``GitSource.fetch`` for metrics."""
        where = " ".join(part for part in (url, f"({ref})" if ref else "") if part)
        super().__init__(f"{where}: {self.detail}" if where else self.detail)


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


class DigestMismatch(SourceError):
    """Content the registry served does not hash to the digest that names it."""


class LayerNotFound(SourceConfigError):
    """No layer of the artifact has the media type ``spec.layerSelector`` asks for."""


class UnsafeArchive(SourceError):
    """An artifact's tar holds an entry that cannot be extracted safely, or is too large."""
