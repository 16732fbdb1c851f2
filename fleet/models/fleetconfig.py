"""``fleet.yaml``: the clusters of the fleet and the promotion waves between them.

A wave selects clusters (by name or labels), depends on earlier waves, and says how a
revision enters it: after the dependencies soaked for a while, with or without an
approval, in batches of at most ``maxParallel`` clusters; and what happens when the
revision fails there (``rollback: auto`` moves the wave back by itself).
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from fleet.core import manifests, plan
from fleet.models import common, errors

FLEET_FILE = "fleet.yaml"
WAVE_REF_PREFIX = "refs/heads/fleet/wave/"
"""Each wave's clusters follow a branch of their own; the promoter moves it."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ClusterEntry(common.FluxModel):
    name: str
    labels: dict[str, str] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not _NAME.match(name) or len(name) > 63:
            raise ValueError(f'"{name}" is not a valid cluster name (lowercase DNS label)')
        return name


class PrometheusCheck(common.FluxModel):
    address: str
    """Base URL of a Prometheus HTTP API (``http://prometheus:9090``)."""
    query: str
    """PromQL read as an alerting rule reads it: it holds while it returns at least one
    sample (write the condition as a filter, ``rate(...) < 0.01``), or a scalar that is
    not 0. ``{clusters}`` becomes a regular expression matching the dependency waves'
    clusters, ``{wave}`` the wave being promoted into."""

    @pydantic.field_validator("address")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _http_url(value)


class HttpCheck(common.FluxModel):
    url: str
    """Fetched once per cluster of the dependency waves with ``{cluster}`` replaced by its
    name; holds while every one answers 2xx."""

    @pydantic.field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _http_url(value.replace("{cluster}", "cluster"), value)


class Verification(common.FluxModel):
    """A check that must hold, continuously for the wave's soak, before a revision enters."""

    name: str
    interval: common.PositiveDuration = datetime.timedelta(seconds=30)
    """How often the hub evaluates it."""
    timeout: common.PositiveDuration = datetime.timedelta(seconds=10)
    """One evaluation that takes longer fails (and the hold restarts)."""
    prometheus: PrometheusCheck | None = None
    http: HttpCheck | None = None

    @pydantic.field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f'"{name}" is not a valid check name (lowercase DNS label)')
        return name

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> Verification:
        if (self.prometheus is None) == (self.http is None):
            raise ValueError(f'check "{self.name}" needs exactly one of prometheus or http')
        return self


def _http_url(value: str, shown: str | None = None) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f'"{shown or value}" is not an http(s) URL')
    return shown or value


class Wave(common.FluxModel):
    name: str
    clusters: list[str] = pydantic.Field(default_factory=list)
    """Cluster names; together with ``selector`` they make the wave's clusters."""
    selector: dict[str, str] = pydantic.Field(default_factory=dict)
    """Labels a cluster must all carry to belong to the wave."""
    depends_on: list[str] = pydantic.Field(default_factory=list)
    soak: common.Duration = datetime.timedelta(0)
    """How long every cluster of the dependencies must have run a revision Ready before it
    may enter this wave."""
    approval: Literal["required", "none"] = "none"
    rollback: Literal["auto", "manual"] = "manual"
    max_parallel: int | str | None = None
    """Clusters promoted at a time: a count or a percentage (``"25%"``); all when unset."""
    max_stale: int = 0
    """Stale or unreachable clusters of a dependency that may be skipped by the gate."""
    ref: str | None = None
    """The Git ref its clusters follow; default ``refs/heads/fleet/wave/<name>``."""
    verify: list[Verification] = pydantic.Field(default_factory=list)
    """Checks over the dependency waves' clusters that must hold for the soak too."""

    @pydantic.field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f'"{name}" is not a valid wave name (lowercase DNS label)')
        return name

    @pydantic.field_validator("max_parallel")
    @classmethod
    def _count_or_percent(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return None
        if isinstance(value, int):
            if value < 1:
                raise ValueError("must be at least 1")
            return value
        match = re.fullmatch(r"(\d{1,3})%", value.strip())
        if not match or not 0 < int(match[1]) <= 100:
            raise ValueError(f'"{value}" is neither a count nor a percentage like "25%"')
        return value.strip()

    @property
    def effective_ref(self) -> str:
        return self.ref or f"{WAVE_REF_PREFIX}{self.name}"

    def batch_size(self, clusters: int) -> int:
        """Clusters per step of a rollout through ``clusters`` clusters (at least one)."""
        if self.max_parallel is None:
            return max(clusters, 1)
        if isinstance(self.max_parallel, int):
            return self.max_parallel
        percent = int(self.max_parallel.rstrip("%"))
        return max(1, clusters * percent // 100)


class FleetConfig(common.FluxModel):
    """The validated contents of fleet.yaml."""

    api_version: Literal["fleet.dev/v1alpha1"] = "fleet.dev/v1alpha1"
    kind: Literal["Fleet"] = "Fleet"
    metadata: dict[str, Any] = pydantic.Field(default_factory=dict)
    clusters: list[ClusterEntry]
    waves: list[Wave] = pydantic.Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> FleetConfig:
        _unique([c.name for c in self.clusters], "clusters", "cluster")
        _unique([w.name for w in self.waves], "waves", "wave")
        known_clusters = {c.name for c in self.clusters}
        known_waves = {w.name for w in self.waves}
        owner: dict[str, str] = {}
        for index, wave in enumerate(self.waves):
            for name in wave.clusters:
                if name not in known_clusters:
                    raise _at(f"waves[{index}].clusters", f'unknown cluster "{name}"')
            for dependency in wave.depends_on:
                if dependency not in known_waves:
                    raise _at(f"waves[{index}].dependsOn", f'unknown wave "{dependency}"')
            members = self.members(wave)
            if not members:
                raise _at(f"waves[{index}]", f'wave "{wave.name}" selects no cluster')
            for member in members:
                if member in owner:
                    raise _at(
                        f"waves[{index}]",
                        f'cluster "{member}" is in waves "{owner[member]}" and "{wave.name}"',
                    )
                owner[member] = wave.name
        for index, wave in enumerate(self.waves):
            _unique([v.name for v in wave.verify], f"waves[{index}].verify", "check")
            if wave.verify and not wave.depends_on:
                raise _at(
                    f"waves[{index}].verify",
                    f'wave "{wave.name}" has no dependsOn: there is nothing to verify',
                )
        problems = plan.find_dependency_problems({w.name: w.depends_on for w in self.waves})
        for index, wave in enumerate(self.waves):
            message = problems.message(wave.name)
            if message:
                raise _at(f"waves[{index}].dependsOn", message.replace("dependency", "wave", 1))
        return self

    def members(self, wave: Wave) -> list[str]:
        """The clusters of a wave, in fleet.yaml order."""
        return [
            c.name
            for c in self.clusters
            if c.name in wave.clusters
            or (wave.selector and all(c.labels.get(k) == v for k, v in wave.selector.items()))
        ]

    def wave(self, name: str) -> Wave:
        for wave in self.waves:
            if wave.name == name:
                return wave
        raise KeyError(f'no wave "{name}" in {FLEET_FILE}')

    def wave_of(self, cluster: str) -> Wave | None:
        return next((w for w in self.waves if cluster in self.members(w)), None)

    def order(self) -> list[Wave]:
        """Waves with their dependencies first."""
        names = plan.dependency_order({w.name: w.depends_on for w in self.waves})
        return [self.wave(n) for n in names]


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _at(field: str, message: str) -> _FieldError:
    return _FieldError(field, message)


def _unique(names: list[str], field: str, what: str) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise _at(f"{field}[{index}].name", f'{what} "{name}" is defined twice')
        seen.add(name)


def load_fleet_config(text: str | bytes, file: str = FLEET_FILE) -> FleetConfig:
    """Parse and validate fleet.yaml; raises ManifestError naming the file and field."""
    documents = manifests.parse_yaml(text, file)
    if len(documents) != 1 or not isinstance(documents[0][1], Mapping):
        raise errors.ManifestError(file, None, None, "expected exactly one YAML mapping")
    try:
        return FleetConfig.model_validate(dict(documents[0][1]), by_alias=True, by_name=False)
    except pydantic.ValidationError as error:
        for item in error.errors():
            cause = (item.get("ctx") or {}).get("error")
            if isinstance(cause, _FieldError):
                raise errors.ManifestError(file, "Fleet", cause.field, str(cause)) from error
        raise errors.from_validation_error(error, file=file, object="Fleet") from error
