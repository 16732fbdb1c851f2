"""The boundary with pygit2: credentials, SSH host key checks and error translation.

pygit2 hands its ``certificate_check`` callback no certificate (``None``), and its default
accepts every SSH host key. libgit2 does pass the host key to the C callback, so this module
re-attaches pygit2's cffi extern ``_certificate_check_cb`` to a function that reads the key
and lets ``SourceCallbacks`` judge it against the source's own known_hosts. Callbacks of any
other type go on to pygit2's original function unchanged. If the hook ever stops being
called (a pygit2 upgrade), ``SourceCallbacks.certificate_check`` refuses SSH hosts instead of
trusting them, so the failure is loud, never silent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pygit2
from pygit2 import callbacks as pygit2_callbacks
from pygit2.enums import CredentialType
from pygit2.ffi import C, ffi

from fleet.source import errors
from fleet.source.auth import GitAuth
from fleet.source.known_hosts import HostKeyVerdict, fingerprint, key_type_of
from fleet.source.urls import GitURL, Transport

# libgit2 >= 1.2 git_cert_hostkey, as laid out on 64-bit Linux: parent (int), type (int),
# md5[16], sha1[20], sha256[32], raw_type (int), hostkey (const char *), hostkey_len (size_t).
# pygit2 declares only the first fields, so the rest is read by offset and cross-checked:
# when libgit2 hands both the raw key and its SHA-256, they must agree.
_CERT_SSH_SHA256 = 1 << 2
_CERT_SSH_RAW = 1 << 3
_OFFSET_TYPE = 4
_OFFSET_SHA256 = 44
_OFFSET_HOSTKEY = 80
_OFFSET_HOSTKEY_LEN = 88
_REDACTED = "***"


@dataclass(frozen=True)
class PresentedHostKey:
    """The SSH host key a server presented during the handshake."""

    sha256: bytes
    key_type: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sha256)


class _HostKeyUnreadable(Exception):
    """libgit2 handed a certificate this module cannot interpret."""


def _read_presented_host_key(cert: Any) -> PresentedHostKey:
    base = ffi.cast("unsigned char *", cert)
    flags = ffi.cast("int *", base + _OFFSET_TYPE)[0]
    if not flags & _CERT_SSH_SHA256:
        raise _HostKeyUnreadable("libgit2 gave no SHA-256 of the host key")
    digest = bytes(ffi.buffer(base + _OFFSET_SHA256, 32))
    key_type = "unknown"
    if flags & _CERT_SSH_RAW:
        pointer = ffi.cast("char **", base + _OFFSET_HOSTKEY)[0]
        length = ffi.cast("size_t *", base + _OFFSET_HOSTKEY_LEN)[0]
        if pointer == ffi.NULL or not 0 < length < 65536:
            raise _HostKeyUnreadable("libgit2's host key structure has an unexpected layout")
        blob = bytes(ffi.buffer(pointer, length))
        if hashlib.sha256(blob).digest() != digest:
            raise _HostKeyUnreadable("libgit2's host key structure has an unexpected layout")
        key_type = key_type_of(blob)
    return PresentedHostKey(digest, key_type)


_pygit2_certificate_check = pygit2_callbacks._certificate_check_cb


def _certificate_check_with_host_key(cert: Any, valid: int, host: Any, payload: Any) -> int:
    callbacks = ffi.from_handle(payload)
    if not isinstance(callbacks, SourceCallbacks) or (cert.cert_type != C.GIT_CERT_HOSTKEY_LIBSSH2):
        return int(_pygit2_certificate_check(cert, valid, host, payload))
    try:
        hostname = ffi.string(host).decode("utf-8", "replace")
        try:
            presented = _read_presented_host_key(cert)
        except _HostKeyUnreadable as unreadable:
            raise callbacks.error(
                errors.ServerNotTrusted, f"cannot verify the SSH host key: {unreadable}"
            ) from None
        callbacks.verify_host_key(hostname, presented)
    except BaseException as refusal:
        # pygit2 re-raises this after libgit2 unwinds (GIT_EUSER + _stored_exception).
        callbacks._stored_exception = refusal  # type: ignore[assignment]
        return int(C.GIT_EUSER)
    return 0


# Re-attach the C callback libgit2 calls to our function. Any exception escaping it makes
# cffi return GIT_ECERTIFICATE, so a bug here refuses the connection instead of trusting it.
ffi.def_extern(name="_certificate_check_cb", error=C.GIT_ECERTIFICATE)(
    _certificate_check_with_host_key
)


class SourceCallbacks(pygit2.RemoteCallbacks):
    """Credentials and server verification for one fetch of one source."""

    def __init__(self, auth: GitAuth, url: GitURL, ref: str) -> None:
        super().__init__()
        self.auth = auth
        self.url = url
        self.ref = ref
        self.host_key_verified = False
        self._secret_requests = 0

    def error(self, kind: type[errors.SourceError], detail: str) -> errors.SourceError:
        secrets = (*self.auth.secret_values, *self.url.secret_values)
        return kind(scrub(detail, secrets), url=self.url.redacted, ref=self.ref)

    def verify_host_key(self, hostname: str, presented: PresentedHostKey) -> None:
        """Accept the key only if the source's known_hosts lists it for this host and port."""
        port = self.url.effective_port
        # libgit2 connects to the host of our URL; trust that name, not a reverse lookup.
        host = self.url.host or hostname
        known_hosts = self.auth.parsed_known_hosts
        verdict = known_hosts.check(host, port, presented.sha256)
        if verdict is HostKeyVerdict.TRUSTED:
            self.host_key_verified = True
            return
        shown = f"{presented.key_type} key {presented.fingerprint}"
        if verdict is HostKeyVerdict.UNKNOWN_HOST:
            raise self.error(
                errors.UnknownHostKey,
                f"host {host}:{port} is not in known_hosts (it presented {shown}); "
                f"add its key, e.g. from `ssh-keyscan -p {port} {host}`",
            )
        listed = sorted({e.key_type for e in known_hosts.entries_for(host, port)})
        reason = (
            "is revoked in known_hosts"
            if verdict is HostKeyVerdict.REVOKED
            else (f"does not match known_hosts (which lists {', '.join(listed)} for this host)")
        )
        raise self.error(
            errors.HostKeyMismatch,
            f"host {host}:{port} presented {shown}, which {reason}; "
            "the host key changed or someone is intercepting the connection",
        )

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        if self.url.transport is Transport.SSH:
            # Only reached if the cffi hook above is not in place: refuse rather than trust.
            raise self.error(
                errors.ServerNotTrusted,
                "SSH host key verification is unavailable with this pygit2 build",
            )
        if not valid:
            raise self.error(
                errors.ServerNotTrusted,
                f"TLS certificate of {host.decode(errors='replace')} is not trusted",
            )
        return True

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> Any:
        if allowed_types == CredentialType.USERNAME:
            return pygit2.Username(username_from_url or self.auth.username or "git")
        self._secret_requests += 1
        if self._secret_requests > 1:
            # libgit2 asks again after a rejection; answering the same would loop.
            raise self.error(errors.SourceAuthError, "the server rejected the credentials")
        auth = self.auth
        if auth.identity and allowed_types & CredentialType.SSH_MEMORY:
            return pygit2.KeypairFromMemory(
                username_from_url or auth.username or "git",
                auth.identity_pub,
                auth.identity,
                auth.passphrase or "",
            )
        if auth.password is not None and allowed_types & CredentialType.USERPASS_PLAINTEXT:
            return pygit2.UserPass(auth.username or username_from_url or "git", auth.password)
        raise self.error(
            errors.SourceAuthError,
            "the server asks for credentials and none of a usable kind are configured",
        )

    def custom_headers(self) -> list[str] | None:
        if self.auth.bearer_token and self.url.transport in (Transport.HTTP, Transport.HTTPS):
            return [f"Authorization: Bearer {self.auth.bearer_token}"]
        return None


DEFAULT_CONNECT_TIMEOUT_SECONDS = 30.0
"""Long enough for a slow TLS handshake across continents, short enough to retry soon."""
DEFAULT_READ_TIMEOUT_SECONDS = 60.0
"""Longest silence on an open connection; libgit2's own default waits forever."""


def set_network_timeouts(
    connect_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    read_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS,
) -> None:
    """Bound libgit2's connects and reads; the setting is process-wide, as libgit2 has it."""
    pygit2.settings.server_connect_timeout = int(connect_seconds * 1000)
    pygit2.settings.server_timeout = int(read_seconds * 1000)


def ensure_network_timeouts() -> None:
    """Apply the defaults unless someone already chose timeouts (libgit2's 0 = never)."""
    if pygit2.settings.server_timeout == 0 and pygit2.settings.server_connect_timeout == 0:
        set_network_timeouts()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret value in a message with ``***``.

    Secrets shorter than four characters are replaced only where they stand alone, so a
    password ``p`` does not turn "http" into "htt***".
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SCRUB_ANYWHERE:
            text = text.replace(secret, _REDACTED)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", _REDACTED, text)
    return text


_MIN_SCRUB_ANYWHERE = 4
# libgit2 phrases auth failures in several ways; a mere "401" could be part of a port.
_AUTH_HINTS = (
    "status code: 401",
    "status code: 403",
    "authentication",
    "failed to authenticate",
    "credentials",
    "permission denied",
)


@contextmanager
def map_exceptions(url: GitURL, ref: str, auth: GitAuth, *, network: bool = True) -> Iterator[None]:
    """Turn pygit2 errors (and, around network work, OS errors) into the source's errors.

    Secrets are scrubbed from every message. Local file work passes ``network=False`` so a
    full disk stays an OSError instead of looking like an unreachable server.
    """
    secrets = (*auth.secret_values, *url.secret_values)

    def make(kind: type[errors.SourceError], error: BaseException) -> errors.SourceError:
        detail = scrub(str(error) or type(error).__name__, secrets)
        return kind(detail, url=url.redacted, ref=ref)

    try:
        yield
    except errors.SourceError:
        raise
    except pygit2.CertificateError as error:
        raise make(errors.ServerNotTrusted, error) from None
    except pygit2.AuthError as error:
        raise make(errors.SourceAuthError, error) from None
    except pygit2.GitError as error:
        text = str(error).lower()
        kind = (
            errors.SourceAuthError
            if any(hint in text for hint in _AUTH_HINTS)
            else errors.SourceUnavailable
        )
        # `from None`: the pygit2 error text is already in the message, and a chained
        # traceback would carry the unscrubbed original to logs.
        raise make(kind, error) from None
    except OSError as error:
        if not network:
            raise
        raise make(errors.SourceUnavailable, error) from None
