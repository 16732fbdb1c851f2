"""Does an object match a kustomize-style target selector? Pure.

Used by ``driftIgnoreRules[].target`` of Kustomizations and ``driftDetection.ignore``
of HelmReleases (shaped like Flux's ``patches[].target``): group, version, kind, name and
namespace are anchored regular expressions, as in kustomize; label and annotation
selectors use Kubernetes' syntax: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``,
``a in (x,y)``, ``a notin (x)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from fleet.core.manifests import api_group


class Target(Protocol):
    group: str | None
    version: str | None
    kind: str | None
    name: str | None
    namespace: str | None
    label_selector: str | None
    annotation_selector: str | None


class SelectorError(ValueError):
    """A label or annotation selector that does not parse."""


_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=)\s*(?P<value>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split(selector: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def selector_matches(selector: str, values: Mapping[str, str]) -> bool:
    """Whether labels (or annotations) ``values`` satisfy a Kubernetes selector."""
    for requirement in _split(selector):
        match = _REQUIREMENT.match(requirement)
        if not match:
            raise SelectorError(f"cannot parse selector requirement {requirement.strip()!r}")
        key = match["key"]
        if match["neg"]:
            if match["op"] or match["setop"]:
                raise SelectorError(f"'!' takes a key only: {requirement.strip()!r}")
            if key in values:
                return False
        elif match["op"] in ("=", "=="):
            if values.get(key) != match["value"]:
                return False
        elif match["op"] == "!=":
            if values.get(key) == match["value"]:
                return False
        elif match["setop"]:
            options = {v.strip() for v in match["values"].split(",") if v.strip()}
            present = key in values and values[key] in options
            if present != (match["setop"] == "in"):
                return False
        elif key not in values:
            return False
    return True


def target_matches(target: Target | None, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is selected by ``target`` (no target selects everything).

    As in kustomize, group, version, kind, name and namespace are anchored regular
    expressions, and an empty one selects everything.
    """
    if target is None:
        return True
    api_version = str(obj.get("apiVersion", ""))
    metadata = obj.get("metadata") or {}
    fields = (
        (target.group, api_group(api_version)),
        (target.version, api_version.rpartition("/")[2]),
        (target.kind, str(obj.get("kind", ""))),
        (target.name, str(metadata.get("name", ""))),
        (target.namespace, str(metadata.get("namespace", ""))),
    )
    for pattern, value in fields:
        if pattern and re.fullmatch(pattern, value) is None:
            return False
    if target.label_selector and not selector_matches(
        target.label_selector, metadata.get("labels") or {}
    ):
        return False
    return not (
        target.annotation_selector
        and not selector_matches(target.annotation_selector, metadata.get("annotations") or {})
    )
