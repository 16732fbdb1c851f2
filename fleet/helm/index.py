"""A Helm repository's ``index.yaml`` and the choice of a chart version from it. Pure.

A ``version`` constraint is a semver range in the syntax Flux users write (``*``,
``1.x``, ``~1.2``, ``>=1.0 <2.0``); the newest version inside it wins and, as in Helm
and Flux, prereleases are chosen only when the range names one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import yaml

from fleet.source import semver


class ChartIndexError(ValueError):
    """An index cannot be read, or holds no version of the chart that fits."""


@dataclasses.dataclass(frozen=True)
class ChartVersion:
    """One entry of an index: a chart at one version and where its package lies."""

    name: str
    version: str
    urls: tuple[str, ...]
    digest: str = ""
    """sha256 of the package as the index lists it; empty when the index has none."""
    app_version: str = ""

    def package_url(self, repository_url: str) -> str:
        """The first URL, resolved against the repository's (index URLs may be relative)."""
        if not self.urls:
            raise ChartIndexError(f"chart {self.name} {self.version} lists no download URL")
        base = repository_url if repository_url.endswith("/") else repository_url + "/"
        return urljoin(base, self.urls[0])


def parse_index(text: str | bytes, url: str) -> dict[str, list[ChartVersion]]:
    """Chart name -> its versions, from an index.yaml; raises ChartIndexError naming ``url``."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ChartIndexError(f"{url}: index.yaml is not valid YAML: {error}") from error
    if not isinstance(loaded, Mapping) or not isinstance(loaded.get("entries"), Mapping):
        raise ChartIndexError(f"{url}: not a Helm repository index (no entries)")
    charts: dict[str, list[ChartVersion]] = {}
    for name, entries in loaded["entries"].items():
        versions = []
        for entry in entries or []:
            if not isinstance(entry, Mapping) or "version" not in entry:
                continue
            versions.append(_entry(str(name), entry))
        charts[str(name)] = versions
    return charts


def _entry(name: str, entry: Mapping[str, Any]) -> ChartVersion:
    return ChartVersion(
        name=name,
        version=str(entry["version"]),
        urls=tuple(str(u) for u in entry.get("urls") or ()),
        digest=str(entry.get("digest") or ""),
        app_version=str(entry.get("appVersion") or ""),
    )


def parse_constraint(constraint: str) -> semver.Range:
    """A chart version constraint; empty means any, as Helm reads it."""
    try:
        return semver.parse_range(constraint.strip() or "*")
    except semver.InvalidRange as error:
        raise ChartIndexError(f'invalid chart version "{constraint}": {error}') from error


def select(versions: Sequence[ChartVersion], chart: str, constraint: str, url: str) -> ChartVersion:
    """The newest version of ``chart`` inside ``constraint``; raises ChartIndexError saying
    what the repository does offer when nothing fits."""
    if not versions:
        raise ChartIndexError(f"chart '{chart}' not found in {url}")
    wanted = parse_constraint(constraint)
    by_version = {v.version: v for v in versions}
    found = semver.newest_matching(wanted, by_version)
    if found is None:
        offered = sorted(
            (v for v in (semver.parse_version(t) for t in by_version) if v is not None),
            reverse=True,
        )
        shown = ", ".join(str(v) for v in offered[:8]) or "none"
        raise ChartIndexError(
            f"no version of chart '{chart}' matches '{constraint}' in {url} (offered: {shown})"
        )
    return by_version[found[0]]
