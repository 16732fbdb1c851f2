"""Building blocks shared by the Flux-compatible models: base class, durations, metadata.

Every model reads camelCase YAML (``dependsOn``) into snake_case attributes
(``depends_on``), keeps keys it does not know instead of failing, and can list which of
the keys it read fleet does not act on, so the agent can say so on the unit's status
rather than silently ignoring a user's intent.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

import pydantic
from pydantic.alias_generators import to_camel

from fleet.models import duration, errors


class FluxModel(pydantic.BaseModel):
    """Base of every Git-side model: camelCase aliases, unknown keys kept and reportable."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
    )

    UNSUPPORTED: ClassVar[frozenset[str]] = frozenset()
    """Attribute names fleet parses but does not act on; reported when a user sets them."""
    REPORTS_UNKNOWN_KEYS: ClassVar[bool] = True
    """False where unknown keys are normal (object metadata has uid, resourceVersion...)."""

    def unsupported_fields(self, prefix: str = "") -> list[str]:
        """Dotted paths (by the YAML names) of keys set here that fleet does not act on."""
        return sorted(_unsupported(self, prefix))


def _unsupported(model: FluxModel, prefix: str) -> Iterator[str]:
    def path(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    for name, info in type(model).model_fields.items():
        alias = info.alias or name
        if name not in model.model_fields_set:
            continue
        value = getattr(model, name)
        if name in model.UNSUPPORTED and value not in (None, [], {}, False):
            yield path(alias)
            continue
        if isinstance(value, FluxModel):
            yield from _unsupported(value, path(alias))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, FluxModel):
                    yield from _unsupported(item, f"{path(alias)}[{index}]")
    if model.REPORTS_UNKNOWN_KEYS and model.model_extra:
        yield from (path(key) for key in model.model_extra)


def _parse_duration(value: object) -> object:
    if isinstance(value, str):
        return duration.parse_duration(value)
    if isinstance(value, datetime.timedelta):
        return value
    # Kubernetes rejects numbers here; so do we, instead of guessing seconds.
    raise ValueError(f'invalid duration {value!r}: expected a string such as "10m" or "1h30m"')


def _positive(value: datetime.timedelta) -> datetime.timedelta:
    if value <= datetime.timedelta(0):
        raise ValueError(f'invalid duration "{duration.format_duration(value)}": must be > 0')
    return value


Duration = Annotated[
    datetime.timedelta,
    pydantic.BeforeValidator(_parse_duration),
    pydantic.PlainSerializer(duration.format_duration, return_type=str, when_used="json"),
]
"""A Go duration string in YAML, a timedelta in Python."""

PositiveDuration = Annotated[Duration, pydantic.AfterValidator(_positive)]
"""A duration that drives a loop, where zero would mean spinning."""


@dataclasses.dataclass(frozen=True, order=True)
class NamespacedName:
    """Identity of a namespaced object of a known kind: the key for ``dependsOn``."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ObjectMeta(FluxModel):
    """The part of ``metadata`` fleet reads; everything else is kept as written."""

    REPORTS_UNKNOWN_KEYS = False

    name: str
    namespace: str = "default"
    """What ``kubectl apply`` would pick for a namespaced object written without one."""
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


class LocalObjectReference(FluxModel):
    name: str


class Selector(FluxModel):
    """Kustomize's target selector, as Flux's ``patches[].target`` and drift rules use it."""

    group: str | None = None
    version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    label_selector: str | None = None
    annotation_selector: str | None = None


M = TypeVar("M", bound=FluxModel)


def validate_manifest(
    model: type[M], manifest: Mapping[str, Any], *, file: str, default_namespace: str
) -> M:
    """Validate a manifest read from Git, defaulting its namespace the way the agent would.

    Only the camelCase YAML names are accepted here: a snake_case key in YAML is unknown to
    Kubernetes too, so it is kept as an unknown (and reported) field rather than read.
    """
    data = dict(manifest)
    metadata = data.get("metadata")
    if isinstance(metadata, Mapping) and not metadata.get("namespace"):
        data["metadata"] = {**metadata, "namespace": default_namespace}
    try:
        return model.model_validate(data, by_alias=True, by_name=False)
    except pydantic.ValidationError as error:
        described = errors.describe_object(manifest, default_namespace)
        raise errors.from_validation_error(error, file=file, object=described) from error
