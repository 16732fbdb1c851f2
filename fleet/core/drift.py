"""Has a live object drifted from what the agent applied? Pure comparisons.

The comparison looks only at the fields the agent writes (the desired manifest's shape),
projected out of the live object. The projection of the server's answer to an apply is
remembered; a later live object whose projection differs was changed by someone else.
Server-side normalization (``500m`` vs ``0.5``) therefore never looks like drift: both
sides of the comparison come from the server.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

_MISSING = "<missing>"
MISSING = _MISSING
"""What a projection holds where the live object lacks a field the desired one sets."""


def project(live: Any, desired: Any) -> Any:
    """The parts of ``live`` at the paths that ``desired`` sets.

    Lists are compared element by element; a length change is part of the projection.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return _MISSING if live is None else live
        return {
            key: project(live.get(key), value) for key, value in desired.items() if key != "status"
        }
    if isinstance(desired, list):
        if not isinstance(live, list):
            return _MISSING if live is None else live
        projected: list[Any] = [
            project(live[i] if i < len(live) else None, d) for i, d in enumerate(desired)
        ]
        if len(live) != len(desired):
            projected.append(f"<length {len(live)}>")
        return projected
    return _MISSING if live is None else live


def as_stored(desired: Mapping[str, Any]) -> Mapping[str, Any]:
    """``desired`` as the API server stores it, where that differs from what was sent.

    A core Secret's ``stringData`` is write-only: the server folds it into ``data``
    (base64, ``stringData`` winning over ``data`` for the same key) and never returns it.
    Compared as sent, an out-of-band edit of such a key would never look like drift.
    """
    string_data = desired.get("stringData")
    if not (
        desired.get("kind") == "Secret"
        and desired.get("apiVersion") == "v1"
        and isinstance(string_data, Mapping)
    ):
        return desired
    data = dict(desired.get("data") or {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    folded = {k: v for k, v in desired.items() if k != "stringData"}
    folded["data"] = data
    return folded


def fingerprint(live: Mapping[str, Any], desired: Mapping[str, Any]) -> str:
    """A short digest of ``project(live, desired)``: cheap to keep for thousands of objects."""
    projected = project(_without_volatile(live), _without_volatile(as_stored(desired)))
    encoded = json.dumps(projected, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def desired_digest(desired: Mapping[str, Any]) -> str:
    encoded = json.dumps(desired, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def _without_volatile(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return obj
    volatile = {"resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"}
    if not volatile & metadata.keys():
        return obj
    trimmed = {k: v for k, v in metadata.items() if k not in volatile}
    return {**obj, "metadata": trimmed}


def contains(live: Any, desired: Any) -> bool:
    """Whether every field of ``desired`` is present in ``live`` with the same value.

    Used when no fingerprint is remembered (after an agent restart): true means an apply
    would change nothing the agent cares about, so it can be skipped.
    """
    if isinstance(desired, Mapping) and "stringData" in desired:
        desired = as_stored(desired)
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            contains(live.get(k), v) for k, v in desired.items() if k != "status"
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


@dataclasses.dataclass(frozen=True)
class FieldChange:
    path: str
    """A JSON pointer, e.g. ``/spec/replicas`` or ``/spec/template/spec/containers/0/image``."""
    desired: Any
    live: Any
    hidden: bool = False
    """A Secret's field: its values never appear in messages, events or logs."""

    def __str__(self) -> str:
        if self.hidden:
            return f"{self.path}: (Secret value hidden)"
        return f"{self.path}: {_short(self.desired)} -> {_short(self.live)}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if value is not _MISSING else "(removed)"
    return text if len(text) <= 60 else text[:57] + "..."


def changed_fields(live: Any, desired: Any, path: str = "") -> Iterator[FieldChange]:
    """Where ``live`` differs from ``desired`` at the paths desired sets; the values of a
    Secret (a core ``kind: Secret``) are hidden in the changes' text."""
    secret = (
        isinstance(desired, Mapping)
        and desired.get("kind") == "Secret"
        and desired.get("apiVersion") == "v1"
    )
    compared = as_stored(desired) if secret else desired
    for change in _changed_fields(live, compared, path):
        yield dataclasses.replace(change, hidden=True) if secret else change


def _changed_fields(live: Any, desired: Any, path: str = "") -> Iterator[FieldChange]:
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            yield FieldChange(path or "/", desired, live if live is not None else _MISSING)
            return
        for key, value in desired.items():
            if key == "status" or (
                path == "/metadata" and key in {"resourceVersion", "managedFields"}
            ):
                continue
            yield from _changed_fields(live.get(key), value, f"{path}/{_escape(str(key))}")
    elif isinstance(desired, list):
        if not isinstance(live, list):
            yield FieldChange(path, desired, live if live is not None else _MISSING)
            return
        for index, value in enumerate(desired):
            yield from _changed_fields(
                live[index] if index < len(live) else None, value, f"{path}/{index}"
            )
        if len(live) > len(desired):
            yield FieldChange(f"{path}/{len(desired)}", _MISSING, live[len(desired)])
    elif live != desired:
        yield FieldChange(path, desired, live if live is not None else _MISSING)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer_tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise ValueError(f"ignore path {pointer!r} is not a JSON pointer (it must start with '/')")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _lookup(obj: Any, tokens: Sequence[str]) -> tuple[bool, Any]:
    for token in tokens:
        if isinstance(obj, Mapping) and token in obj:
            obj = obj[token]
        elif isinstance(obj, list) and token.isdigit() and int(token) < len(obj):
            obj = obj[int(token)]
        else:
            return False, None
    return True, obj


def keep_live_values(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, pointers: Sequence[str]
) -> dict[str, Any]:
    """``desired`` with each ignored path set to its live value (driftIgnoreRules).

    The agent keeps owning an ignored field but never changes it: replicas scaled by an
    autoscaler stay where it put them. On creation (no live object) desired values stand.
    """
    result = copy.deepcopy(dict(desired))
    if live is None:
        return result
    for pointer in pointers:
        tokens = _pointer_tokens(pointer)
        found, value = _lookup(live, tokens)
        parent_found, parent = _lookup(result, tokens[:-1])
        if not parent_found:
            continue
        last = tokens[-1]
        if isinstance(parent, dict):
            if found:
                parent[last] = copy.deepcopy(value)
            else:
                parent.pop(last, None)
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent) and found:
            parent[int(last)] = copy.deepcopy(value)
    return result


def without_paths(desired: Mapping[str, Any], pointers: Iterable[str]) -> dict[str, Any]:
    """``desired`` without the fields at ``pointers`` (absent ones are skipped): what drift
    is judged on when some fields are left to others (drift ignore rules)."""
    result = copy.deepcopy(dict(desired))
    for pointer in pointers:
        tokens = _pointer_tokens(pointer)
        found, parent = _lookup(result, tokens[:-1])
        if not found:
            continue
        last = tokens[-1]
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            del parent[int(last)]
    return result
