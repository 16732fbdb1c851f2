"""OpenSSH known_hosts: parse the file and decide whether a presented host key is trusted.

Pure code. Hosts are looked up the way ``ssh`` does: ``host`` for port 22 and
``[host]:port`` otherwise, against plain patterns (with ``*``, ``?`` and ``!`` negation) and
hashed ``|1|salt|hmac`` entries. ``@revoked`` lines refuse a key; ``@cert-authority`` lines
are skipped because libgit2 never presents host certificates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from enum import Enum

DEFAULT_SSH_PORT = 22
_HASHED_PREFIX = "|1|"


class HostKeyVerdict(Enum):
    """The outcome of checking one presented key against known_hosts."""

    TRUSTED = "trusted"
    UNKNOWN_HOST = "unknown host"
    MISMATCH = "mismatch"
    REVOKED = "revoked"


def host_lookup_name(host: str, port: int | None) -> str:
    """The name known_hosts files use for a host: ``host`` on port 22, else ``[host]:port``."""
    host = host.lower()
    if port is None or port == DEFAULT_SSH_PORT:
        return host
    return f"[{host}]:{port}"


def key_type_of(blob: bytes) -> str:
    """The algorithm name that starts an SSH public key blob (``ssh-ed25519``...)."""
    if len(blob) < 4:
        return "unknown"
    (length,) = struct.unpack(">I", blob[:4])
    name = blob[4 : 4 + length]
    return name.decode("ascii", "replace") if len(name) == length else "unknown"


def fingerprint(sha256_digest: bytes) -> str:
    """OpenSSH's fingerprint form, ``SHA256:<unpadded base64>``."""
    return "SHA256:" + base64.b64encode(sha256_digest).decode().rstrip("=")


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    escaped = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(f"^{escaped}$", re.IGNORECASE)


@dataclass(frozen=True)
class KnownHostEntry:
    """One usable line of a known_hosts file."""

    hosts: str
    """The host field as written: comma-separated patterns or one hashed entry."""
    key_type: str
    key_blob: bytes
    marker: str | None = None
    line_number: int = 0

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.key_blob).digest()

    def applies_to(self, lookup_name: str) -> bool:
        """Whether this line speaks about ``lookup_name`` (``host`` or ``[host]:port``)."""
        if self.hosts.startswith(_HASHED_PREFIX):
            return _hashed_matches(self.hosts, lookup_name)
        matched = False
        for pattern in self.hosts.split(","):
            negated = pattern.startswith("!")
            if _glob_to_regex(pattern.removeprefix("!")).match(lookup_name):
                if negated:
                    return False
                matched = True
        return matched


def _hashed_matches(field: str, lookup_name: str) -> bool:
    try:
        _, _, salt_b64, digest_b64 = field.split("|")
        salt = base64.b64decode(salt_b64, validate=True)
        digest = base64.b64decode(digest_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    expected = hmac.new(salt, lookup_name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(expected, digest)


@dataclass(frozen=True)
class KnownHosts:
    """The usable entries of a known_hosts file, plus the lines that could not be read."""

    entries: tuple[KnownHostEntry, ...]
    skipped_lines: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> KnownHosts:
        entries: list[KnownHostEntry] = []
        skipped: list[int] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            marker = None
            if fields[0].startswith("@"):
                marker, fields = fields[0], fields[1:]
            if len(fields) < 3 or marker not in (None, "@revoked", "@cert-authority"):
                skipped.append(number)
                continue
            try:
                blob = base64.b64decode(fields[2], validate=True)
            except binascii.Error:
                skipped.append(number)
                continue
            if key_type_of(blob) != fields[1]:
                skipped.append(number)
                continue
            entries.append(KnownHostEntry(fields[0], fields[1], blob, marker, number))
        return cls(tuple(entries), tuple(skipped))

    def entries_for(self, host: str, port: int | None) -> tuple[KnownHostEntry, ...]:
        """Plain and revoked entries that apply to this host and port."""
        name = host_lookup_name(host, port)
        return tuple(
            entry
            for entry in self.entries
            if entry.marker != "@cert-authority" and entry.applies_to(name)
        )

    def check(self, host: str, port: int | None, key_sha256: bytes) -> HostKeyVerdict:
        """Judge the key a host presented, given as the SHA-256 of its public key blob."""
        entries = self.entries_for(host, port)
        matching = [e for e in entries if hmac.compare_digest(e.sha256, key_sha256)]
        if any(e.marker == "@revoked" for e in matching):
            return HostKeyVerdict.REVOKED
        if matching:
            return HostKeyVerdict.TRUSTED
        if any(e.marker is None for e in entries):
            return HostKeyVerdict.MISMATCH
        return HostKeyVerdict.UNKNOWN_HOST
