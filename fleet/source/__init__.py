"""The Git source of the agent: follow a ref, hand out immutable revisions, export them.

source = GitSource(url, GitRef(semver="^1.0"), GitAuth.token(token), cache_dir=cache)
result = source.fetch()            # FetchResult; raises SourceError subclasses
source.export(result.revision, checkout_dir)
"""

from fleet.source._libgit2 import set_network_timeouts
from fleet.source.auth import GitAuth
from fleet.source.errors import (
    HostKeyMismatch,
    RefNotFound,
    RevisionNotFound,
    ServerNotTrusted,
    SourceAuthError,
    SourceConfigError,
    SourceError,
    SourceUnavailable,
    UnknownHostKey,
    UnsafeTree,
)
from fleet.source.git import FetchResult, GitSource, Revision
from fleet.source.known_hosts import HostKeyVerdict, KnownHosts
from fleet.source.refs import DEFAULT_BRANCH, GitRef, RefKind
from fleet.source.semver import InvalidRange, Version, parse_range, parse_version

__all__ = [
    "DEFAULT_BRANCH",
    "FetchResult",
    "GitAuth",
    "GitRef",
    "GitSource",
    "HostKeyMismatch",
    "HostKeyVerdict",
    "InvalidRange",
    "KnownHosts",
    "RefKind",
    "RefNotFound",
    "Revision",
    "RevisionNotFound",
    "ServerNotTrusted",
    "SourceAuthError",
    "SourceConfigError",
    "SourceError",
    "SourceUnavailable",
    "UnknownHostKey",
    "UnsafeTree",
    "Version",
    "parse_range",
    "parse_version",
    "set_network_timeouts",
]
