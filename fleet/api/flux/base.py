"""What every Flux status model shares: camelCase names, Go's ``omitempty``, timestamps.

Flux's status structs are Go structs; most fields carry ``omitempty``, so a zero value
(``""``, ``0``, ``false``, an empty list or map, a nil pointer) is left out of the JSON
rather than written. :class:`StatusModel` serialises the same way, so a status fleet
writes reads exactly like one Flux wrote. Fields Go writes even when empty are named in
``KEEP_EMPTY``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

import pydantic
from pydantic.alias_generators import to_camel


def to_utc_second(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC without sub-second digits, as ``metav1.Time`` stores it.

    A naive datetime is an error: a status time without a zone would be read as UTC by
    Kubernetes and as local time by whoever wrote it.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone")
    return moment.astimezone(datetime.UTC).replace(microsecond=0)


def format_timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC to the second (``2026-12-04T19:50:35Z``), ``metav1.Time``'s JSON."""
    return to_utc_second(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime.datetime,
    pydantic.AfterValidator(to_utc_second),
    pydantic.PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A ``metav1.Time``: parsed from RFC 3339, held in UTC, written to the second."""


class StatusModel(pydantic.BaseModel):
    """Base of the status models: camelCase aliases, Go ``omitempty`` when serialised.

    Unknown keys are ignored when reading: a status written by another controller version
    may carry fields fleet does not model, and fleet writes only what it models.
    """

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )

    KEEP_EMPTY: ClassVar[frozenset[str]] = frozenset()
    """Attribute names Go writes even when zero (no ``omitempty``, or a pointer)."""

    @pydantic.model_serializer(mode="wrap")
    def _omit_empty(
        self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo
    ) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        for name, field in type(self).model_fields.items():
            key = (field.serialization_alias or name) if info.by_alias else name
            if key not in data:
                continue
            value = data[key]
            if value is None or (name not in self.KEEP_EMPTY and _is_zero(value)):
                del data[key]
        return data

    def to_status(self) -> dict[str, Any]:
        """The JSON object to write to the status subresource (Flux's field names)."""
        status: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return status

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Self:
        """Read a status as stored; raises ``pydantic.ValidationError`` when malformed."""
        return cls.model_validate(dict(status or {}))


def _is_zero(value: object) -> bool:
    # `False == 0` in Python, as a false bool is zero for Go's omitempty too.
    return value in ("", 0, [], {})
