"""Commit statuses on GitHub, GitLab, Gitea and Bitbucket Cloud, identified as Flux does
(``github.go``, ``gitlab.go``, ``gitea.go``, ``bitbucket.go``, ``util.go``):

- the commit is the SHA in the event's ``originRevision`` or ``revision`` metadata
  (``main@sha1:<sha>``, ``main/<sha>``, ``sha1:<sha>`` or the bare SHA);
- the status is named ``<kind>/<name>/<first segment of the Provider uid>`` (lowered), or the
  precomputed ``commit_status`` (Flux's ``commitStatusExpr``); Bitbucket keys it by the
  SHA-1 of that name (its keys are at most 40 characters);
- info is success, error is failure; ``Progressing`` events are skipped (Gitea: pending);
- the repository is the address's path (``https://host/owner/repo``, ``.git`` and SSH forms
  accepted), the API is on the address's host;
- existing statuses are read first and an identical one is not posted again.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from fleet.notify.errors import EventNotApplicable, InvalidProvider
from fleet.notify.event import PROGRESSING, Event
from fleet.notify.providers.base import ProviderType, require
from fleet.notify.providers.names import commit_status_id, name_and_description
from fleet.notify.request import Request, Response
from fleet.notify.spec import ProviderSpec

_SCP_LIKE = re.compile(r"^(?:[\w.+-]+@)?([\w.-]+):(?!//)(.+)$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
GITHUB_API_VERSION = "2022-11-28"
BITBUCKET_CLOUD_API = "https://api.bitbucket.org/2.0"
BITBUCKET_STATUS_URL = "https://bitbucket.org"
"""Bitbucket requires a link on every status; Flux sends its home page."""

States = dict[str, str]


def parse_git_address(address: str) -> tuple[str, str]:
    """``(https://host[:port], owner/repo)`` from a clone or web URL (Flux's
    ``parseGitAddress``: SSH becomes https, a ``.git`` suffix is dropped)."""
    scp = _SCP_LIKE.match(address)
    if scp and "://" not in address:
        return f"https://{scp.group(1)}", scp.group(2).strip("/").removesuffix(".git")
    parts = urllib.parse.urlsplit(address)
    if not parts.scheme or not parts.hostname:
        raise InvalidProvider(f"address {address!r} is not a Git repository URL")
    scheme = "https" if parts.scheme in ("ssh", "git+ssh", "git") else parts.scheme
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{scheme}://{host}", parts.path.lstrip("/").removesuffix(".git")


def owner_and_repo(spec: ProviderSpec) -> tuple[str, str, str]:
    """The API host, owner and repository name; exactly two path segments, as Flux wants."""
    require(spec, spec.address, "address (the repository URL)")
    host, repo_id = parse_git_address(spec.address)
    segments = repo_id.split("/")
    if len(segments) != 2 or not all(segments):
        raise InvalidProvider(
            f"{spec.type}: address {spec.address!r}: the repository must be <owner>/<repo>, "
            f"got {repo_id!r}"
        )
    return host, segments[0], segments[1]


def commit_sha(event: Event) -> str:
    """The commit hash of the event's revision, as fluxcd/pkg's ``ExtractHashFromRevision``."""
    revision = event.revision
    if not revision:
        raise EventNotApplicable("missing revision metadata")
    if ":" in revision:
        sha = revision.rsplit(":", 1)[1]
    elif "/" in revision:
        sha = revision.rsplit("/", 1)[1]
    else:
        sha = revision
    if len(sha) not in (40, 64) or not _HEX.match(sha):
        raise EventNotApplicable(f"failed to extract commit hash from {revision!r} revision")
    return sha.lower()


def _state(event: Event, states: States, forge: str) -> str:
    try:
        return states[event.severity]
    except KeyError:
        raise EventNotApplicable(f"can't convert {event.severity!r} to a {forge} state") from None


def _status_name(event: Event, spec: ProviderSpec) -> str:
    return spec.commit_status or commit_status_id(event, spec.provider_uid)


def _first_with(key: str, value: str) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    def find(statuses: list[dict[str, Any]]) -> dict[str, Any] | None:
        for status in statuses:
            if isinstance(status, dict) and status.get(key) == value:
                return status
        return None

    return find


def _latest_is(
    context_key: str, context: str, state: str, description: str
) -> Callable[[Response], bool]:
    """GitHub and Gitea list newest first: the newest status of this context already says
    the same thing."""

    def duplicate(response: Response) -> bool:
        statuses = response.json()
        if not isinstance(statuses, list):
            return False
        latest = _first_with(context_key, context)(statuses)
        return (
            latest is not None
            and latest.get("state") == state
            and latest.get("description") == description
        )

    return duplicate


def build_github(event: Event, spec: ProviderSpec) -> list[Request]:
    if event.reason == PROGRESSING:
        return []
    host, owner, repo = owner_and_repo(spec)
    sha = commit_sha(event)
    state = _state(event, {"info": "success", "error": "failure"}, "github")
    _, description = name_and_description(event)
    context = _status_name(event, spec)
    api = "https://api.github.com" if host == "https://github.com" else f"{host}/api/v3"
    headers = {
        "Authorization": f"Bearer {spec.token}",
        "Accept": "application/vnd.github.v3+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
    }
    repo_url = f"{api}/repos/{owner}/{repo}"
    status = {"state": state, "description": description, "context": context}
    return [
        Request(
            "GET",
            f"{repo_url}/commits/{sha}/statuses?per_page=50",
            headers=headers,
            stop_if=_latest_is("context", context, state, description),
        ),
        Request.post_json(f"{repo_url}/statuses/{sha}", status, headers),
    ]


def build_gitlab(event: Event, spec: ProviderSpec) -> list[Request]:
    if event.reason == PROGRESSING:
        return []
    require(spec, spec.address, "address (the repository URL)")
    host, project = parse_git_address(spec.address)
    if not project:
        raise InvalidProvider(f"gitlab: address {spec.address!r} names no project")
    sha = commit_sha(event)
    state = _state(event, {"info": "success", "error": "failed"}, "gitlab")
    _, description = name_and_description(event)
    name = _status_name(event, spec)
    headers = {"PRIVATE-TOKEN": spec.token}
    project_url = f"{host}/api/v4/projects/{urllib.parse.quote(project, safe='')}"

    def duplicate(response: Response) -> bool:
        statuses = response.json()
        return isinstance(statuses, list) and any(
            isinstance(s, dict)
            and s.get("sha") == sha
            and s.get("status") == state
            and s.get("description") == description
            and s.get("name") == name
            for s in statuses
        )

    query = urllib.parse.urlencode({"name": name})
    status = {"state": state, "name": name, "description": description}
    return [
        Request(
            "GET",
            f"{project_url}/repository/commits/{sha}/statuses?{query}",
            headers=headers,
            stop_if=duplicate,
        ),
        Request.post_json(f"{project_url}/statuses/{sha}", status, headers),
    ]


def build_gitea(event: Event, spec: ProviderSpec) -> list[Request]:
    host, owner, repo = owner_and_repo(spec)
    sha = commit_sha(event)
    if event.reason == PROGRESSING:
        state = "pending"
    else:
        state = _state(event, {"info": "success", "error": "failure"}, "gitea")
    _, description = name_and_description(event)
    context = _status_name(event, spec)
    headers = {"Authorization": f"token {spec.token}"}
    repo_url = f"{host}/api/v1/repos/{owner}/{repo}"
    status = {"state": state, "target_url": "", "description": description, "context": context}
    return [
        Request(
            "GET",
            f"{repo_url}/commits/{sha}/statuses?page=1&limit=50",
            headers=headers,
            stop_if=_latest_is("context", context, state, description),
        ),
        Request.post_json(f"{repo_url}/statuses/{sha}", status, headers),
    ]


def bitbucket_credentials(spec: ProviderSpec) -> tuple[str, str]:
    require(spec, spec.token, "token (<username>:<app-password>)")
    parts = spec.token.split(":")
    if len(parts) != 2:
        raise InvalidProvider("bitbucket: invalid token format, expected <user>:<password>")
    return parts[0], parts[1]


def bitbucket_api(host: str) -> str:
    """Bitbucket Cloud's API for bitbucket.org; for another host (a test server, a proxy
    that mirrors the API) ``<host>/2.0``. Flux always calls api.bitbucket.org."""
    name = urllib.parse.urlsplit(host).hostname or ""
    return BITBUCKET_CLOUD_API if name in ("bitbucket.org", "www.bitbucket.org") else f"{host}/2.0"


def build_bitbucket(event: Event, spec: ProviderSpec) -> list[Request]:
    if event.reason == PROGRESSING:
        return []
    host, owner, repo = owner_and_repo(spec)
    credentials = bitbucket_credentials(spec)
    sha = commit_sha(event)
    state = _state(event, {"info": "SUCCESSFUL", "error": "FAILED"}, "bitbucket")
    name, description = name_and_description(event)
    key = hashlib.sha1(_status_name(event, spec).encode()).hexdigest()
    statuses = f"{bitbucket_api(host)}/repositories/{owner}/{repo}/commit/{sha}/statuses/build"

    def duplicate(response: Response) -> bool:
        if response.status != 200:
            return False
        current = response.json()
        return (
            isinstance(current, dict)
            and current.get("state") == state
            and current.get("description") == description
        )

    status = {
        "key": key,
        "url": BITBUCKET_STATUS_URL,
        "state": state,
        "name": name,
        "description": description,
    }
    return [
        Request(
            "GET",
            f"{statuses}/{key}",
            basic_auth=credentials,
            stop_if=duplicate,
            accept_status=frozenset({404}),
        ),
        Request.post_json(statuses, status, basic_auth=credentials),
    ]


def _check_forge(spec: ProviderSpec) -> None:
    require(spec, spec.token, "token")
    owner_and_repo(spec)


def _check_gitlab(spec: ProviderSpec) -> None:
    require(spec, spec.token, "token")
    require(spec, spec.address, "address (the repository URL)")
    parse_git_address(spec.address)


def _check_bitbucket(spec: ProviderSpec) -> None:
    bitbucket_credentials(spec)
    owner_and_repo(spec)


GITHUB = ProviderType(
    "github", build_github, _check_forge, "GitHub (or GHES /api/v3) commit status"
)
GITLAB = ProviderType("gitlab", build_gitlab, _check_gitlab, "GitLab commit status (API v4)")
GITEA = ProviderType("gitea", build_gitea, _check_forge, "Gitea/Forgejo commit status (API v1)")
BITBUCKET = ProviderType(
    "bitbucket", build_bitbucket, _check_bitbucket, "Bitbucket Cloud build status (API 2.0)"
)
