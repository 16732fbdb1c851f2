"""Structural OpenAPI v3 schemas for CRDs, converted from pydantic models' JSON Schema.

The API server accepts only *structural* schemas: every node has a ``type`` (or says it
preserves unknown fields), no ``$ref``, ``properties`` and ``additionalProperties`` never
together, no ``anyOf`` carrying types. Pydantic emits JSON Schema 2020-12, so this module
rewrites it:

- ``$ref`` is inlined; ``Optional[X]`` (``anyOf: [X, null]``) becomes ``X``: the API server
  drops a ``null`` written for a field that is not ``nullable`` instead of storing it.
- An object model that keeps unknown keys (``extra="allow"``, as fleet's spec models do
  so Flux repositories with fields fleet does not model still apply) and a free-form
  ``dict[str, Any]`` (Helm ``values``) get ``x-kubernetes-preserve-unknown-fields: true``.
- A Go duration (fleet's ``Duration``) gets Flux's pattern instead of ``format: duration``.
- ``default`` is dropped: the API server would write defaults into every stored object,
  so ``kubectl get -o yaml`` would no longer show what the user applied; fleet's models
  apply their defaults when they read the object.
- ``const`` becomes a one-value ``enum``; ``title`` goes.

Keywords this module does not know are an error rather than silently lost validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pydantic

GO_DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""The pattern Flux's CRDs put on ``interval``, ``timeout`` and the other durations."""

_COPIED: Final = frozenset(
    {"description", "enum", "format", "maxLength", "minLength", "pattern", "minimum", "maximum"}
)
_DROPPED: Final = frozenset({"title", "default"})


class SchemaError(ValueError):
    """A model's JSON Schema uses a construct a structural schema cannot express."""


def structural_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model``'s JSON form (by its aliases)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, Any] = schema.get("$defs", {})
    return _convert(schema, definitions, path=model.__name__, resolving=())


def _convert(
    node: Mapping[str, Any],
    definitions: Mapping[str, Any],
    *,
    path: str,
    resolving: tuple[str, ...],
) -> dict[str, Any]:
    if "$ref" in node:
        name = str(node["$ref"]).rpartition("/")[2]
        if name in resolving:
            raise SchemaError(f"{path}: recursive model {name} cannot be inlined")
        target = definitions.get(name)
        if target is None:
            raise SchemaError(f"{path}: unresolved reference {node['$ref']}")
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions, path=path, resolving=(*resolving, name))
    if "anyOf" in node:
        return _convert_any_of(node, definitions, path=path, resolving=resolving)

    unknown = (
        set(node)
        - _COPIED
        - _DROPPED
        - {
            "$defs",
            "type",
            "properties",
            "required",
            "items",
            "additionalProperties",
            "const",
        }
    )
    if unknown:
        raise SchemaError(f"{path}: unsupported JSON Schema keyword(s) {sorted(unknown)}")

    out: dict[str, Any] = {k: node[k] for k in _COPIED if k in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    if out.get("format") == "duration":
        del out["format"]
        out["pattern"] = GO_DURATION_PATTERN
    kind = node.get("type")
    if kind is None:
        # `Any`: any JSON value, kept as written.
        out["x-kubernetes-preserve-unknown-fields"] = True
        return _ordered(out)
    if not isinstance(kind, str):
        raise SchemaError(f"{path}: a list of types {kind} is not structural")
    if kind == "null":
        raise SchemaError(f"{path}: a field that can only be null has no schema")
    out["type"] = kind

    if kind == "object":
        _convert_object(node, out, definitions, path=path, resolving=resolving)
    elif kind == "array":
        items = node.get("items")
        out["items"] = (
            _convert(items, definitions, path=f"{path}[]", resolving=resolving)
            if isinstance(items, Mapping)
            else {"x-kubernetes-preserve-unknown-fields": True}
        )
    return _ordered(out)


def _convert_object(
    node: Mapping[str, Any],
    out: dict[str, Any],
    definitions: Mapping[str, Any],
    *,
    path: str,
    resolving: tuple[str, ...],
) -> None:
    properties = node.get("properties") or {}
    extra = node.get("additionalProperties")
    if properties:
        out["properties"] = {
            key: _convert(value, definitions, path=f"{path}.{key}", resolving=resolving)
            for key, value in properties.items()
        }
        if node.get("required"):
            out["required"] = list(node["required"])
        if extra is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, Mapping):
            raise SchemaError(f"{path}: properties with a schema for other keys are not structural")
    elif isinstance(extra, Mapping) and extra:
        out["additionalProperties"] = _convert(
            extra, definitions, path=f"{path}.*", resolving=resolving
        )
    else:
        # `dict[str, Any]`, or a model without fields: free-form, kept as written.
        out["x-kubernetes-preserve-unknown-fields"] = True


def _convert_any_of(
    node: Mapping[str, Any],
    definitions: Mapping[str, Any],
    *,
    path: str,
    resolving: tuple[str, ...],
) -> dict[str, Any]:
    variants = [v for v in node["anyOf"] if v.get("type") != "null"]
    outer = {k: v for k, v in node.items() if k not in ("anyOf", *_DROPPED)}
    if len(variants) == 1:
        return _convert({**variants[0], **outer}, definitions, path=path, resolving=resolving)
    types = {v.get("type") for v in variants}
    if types == {"integer", "string"}:
        return _ordered({**outer, "x-kubernetes-int-or-string": True})
    raise SchemaError(f"{path}: a union of {sorted(map(str, types))} is not structural")


_ORDER: Final = ("description", "type")


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    """Description and type first, the rest by name: stable, readable CRD YAML."""
    head: dict[str, Any] = {k: schema[k] for k in _ORDER if k in schema}
    return {**head, **{k: schema[k] for k in sorted(schema) if k not in head}}
