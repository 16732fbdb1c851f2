"""Errors about what a user wrote in Git, phrased so they can find and fix it.

Every problem names the file, the object (``Kind/namespace/name``) and the field, the
three things a person needs to open the right line: ``clusters/dev/apps.yaml:
Kustomization/flux-system/apps: spec.interval: invalid duration "5 minutes"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic


class ManifestError(ValueError):
    """A manifest in Git is malformed or violates the API; retrying will not help."""

    def __init__(self, file: str, object: str | None, field: str | None, message: str) -> None:
        self.file = file
        """Where the manifest came from: a path, or a render such as ``kustomize build ./apps``."""
        self.object = object
        """``Kind/namespace/name`` when known; None when the document has no usable identity."""
        self.field = field
        """Dotted path inside the object (``spec.dependsOn[0].name``), None for the whole."""
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.file]
        if self.object:
            parts.append(self.object)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep pickling (multiprocessing, pytest-xdist) working with the 4-argument init.
        return (type(self), (self.file, self.object, self.field, self.message))


def describe_object(manifest: Mapping[str, Any], default_namespace: str | None = None) -> str:
    """``Kind/namespace/name`` (or ``Kind/name``) of a manifest, as far as it is readable."""
    kind = manifest.get("kind") if isinstance(manifest.get("kind"), str) else None
    metadata = manifest.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name") or metadata.get("generateName")
    namespace = metadata.get("namespace") or default_namespace
    parts = [kind or "<no kind>"]
    if isinstance(namespace, str) and namespace:
        parts.append(namespace)
    parts.append(name if isinstance(name, str) and name else "<no name>")
    return "/".join(parts)


def field_path(location: Sequence[int | str]) -> str:
    """``("spec", "dependsOn", 0, "name")`` -> ``spec.dependsOn[0].name``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def from_validation_error(
    error: pydantic.ValidationError, *, file: str, object: str | None
) -> ManifestError:
    """Turn pydantic's report into one ManifestError naming the first bad field.

    Further problems are appended to the message, so one failed reconcile shows them all
    rather than one per commit.
    """
    problems = [(_location(item), _message(item)) for item in error.errors()]
    if not problems:
        return ManifestError(file, object, None, str(error))
    field, message = problems[0]
    if len(problems) > 1:
        others = "; ".join(f"{path}: {text}" if path else text for path, text in problems[1:])
        message = f"{message} (also {others})"
    return ManifestError(file, object, field or None, message)


def _location(item: Mapping[str, Any]) -> str:
    # Pydantic appends union-member and validator tags to the location; they mean nothing
    # to someone reading their YAML.
    location = [
        part
        for part in item.get("loc", ())
        if isinstance(part, int) or not (part.startswith("function-") or "[" in part)
    ]
    return field_path(location)


_PREFIXES = ("Value error, ", "Assertion failed, ")


def _message(item: Mapping[str, Any]) -> str:
    kind = item.get("type", "")
    if kind == "missing":
        return "required field is missing"
    message = str(item.get("msg", ""))
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    value = item.get("input")
    if kind in {"bool_type", "string_type", "int_type", "dict_type", "list_type", "model_type"}:
        return f"{message[0].lower()}{message[1:]}, got {_show(value)}"
    if kind == "literal_error" or kind == "enum":
        return f"{message[0].lower()}{message[1:]}, got {_show(value)}"
    return message[0].lower() + message[1:] if message else message


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return repr(value)
