"""A release's values, composed the way Flux's helm-controller composes them. Pure.

Order: the chart's ``valuesFiles`` (when listed), then every ``valuesFrom`` entry in
order, then the HelmRelease's inline ``values``; each layer is deep-merged over the ones
before it (maps merge key by key, anything else is replaced), as Helm merges ``-f``
files. An entry with a ``targetPath`` sets one value at a dotted path instead, typed as
``helm --set`` types it unless it is quoted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

Values = dict[str, Any]


class ValuesError(ValueError):
    """Values cannot be composed: a document is no mapping, a target path is malformed."""


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> Values:
    """``overlay`` deep-merged over ``base`` (Helm's MergeMaps); neither is modified."""
    result: Values = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merge(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_document(text: str, where: str) -> Values:
    """A values document (YAML); an empty one is ``{}``. Raises ValuesError naming ``where``."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValuesError(f"{where}: invalid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValuesError(f"{where}: values must be a mapping, got {type(loaded).__name__}")
    return loaded


_SEGMENT = re.compile(r"^(?P<name>.*?)(?P<indexes>(\[\d+\])*)$")


def parse_path(path: str) -> list[str | int]:
    """``a.b\\.c[0].d`` -> ``["a", "b.c", 0, "d"]``: Helm's ``--set`` path syntax."""
    if not path:
        raise ValuesError("empty target path")
    parts: list[str] = []
    current = ""
    escaped = False
    for char in path:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    tokens: list[str | int] = []
    for part in parts:
        match = _SEGMENT.match(part)
        if match is None or not match["name"]:
            raise ValuesError(f'target path "{path}": empty key')
        tokens.append(match["name"])
        tokens.extend(int(i) for i in re.findall(r"\[(\d+)\]", match["indexes"]))
    return tokens


def typed_value(raw: str) -> Any:
    """How ``helm --set`` reads a value: booleans, null and integers are typed; quoted
    text (single or double quotes) stays a string, without its quotes."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    if re.fullmatch(r"-?(0|[1-9]\d*)", raw):
        return int(raw)
    return raw


def set_path(values: Values, path: str, value: Any) -> Values:
    """``values`` with ``value`` placed at ``path``, creating maps and lists on the way."""
    tokens = parse_path(path)
    result = copy.deepcopy(values)
    node: Any = result
    for index, token in enumerate(tokens):
        last = index == len(tokens) - 1
        if isinstance(token, int):
            if not isinstance(node, list):
                raise ValuesError(f'target path "{path}": [{token}] indexes a non-list')
            node.extend([None] * (token + 1 - len(node)))
        elif not isinstance(node, dict):
            raise ValuesError(f'target path "{path}": "{token}" is under a non-map')
        if last:
            node[token] = value
            break
        child = node[token] if isinstance(token, int) else node.get(token)
        if not isinstance(child, dict | list):
            child = [] if isinstance(tokens[index + 1], int) else {}
            node[token] = child
        node = child
    return result


def compose(
    layers: Sequence[tuple[str, str, str | None]], inline: Mapping[str, Any] | None
) -> Values:
    """Merge ``(where, text, targetPath)`` layers in order, then ``inline`` on top."""
    result: Values = {}
    for where, text, target_path in layers:
        if target_path:
            try:
                result = set_path(result, target_path, typed_value(text.strip()))
            except ValuesError as error:
                raise ValuesError(f"{where}: {error}") from error
        else:
            result = merge(result, parse_document(text, where))
    return merge(result, inline or {})


def digest(values: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the values in canonical JSON: equal values, equal digest."""
    encoded = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()
