"""A release's objects and their drift from what helm wrote. Pure.

The desired state of each object is the manifest helm stored for the release, as the API
server normalizes it (the agent asks for a server-side dry run once per release
revision), projected onto the fields the manifest sets. A live object whose projection
differs has drifted; the correction is a JSON patch that puts those fields back, so the
object keeps every field the chart does not set (and stays owned by helm's field manager,
never by the agent's server-side-apply manager).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleet.core import drift, selector
from fleet.core.manifests import ObjectKey, load_manifests
from fleet.models.helmrelease import IgnoreRule

Object = dict[str, Any]

DRIFT_OPT_OUT = "helm.toolkit.fluxcd.io/driftDetection"
"""Flux's label or annotation; ``disabled`` leaves one object out of drift detection."""
_LENGTH_MARKER = re.compile(r"^<length \d+>$")


def parse_manifest(text: str, release: str) -> list[Object]:
    """The objects of ``helm get manifest`` output."""
    return load_manifests(text, f"manifest of release {release}")


@dataclasses.dataclass(frozen=True)
class ReleaseObject:
    """One object of a release with what it should look like in the cluster."""

    key: ObjectKey
    manifest: Object
    """As helm stored it (namespace filled in), minus ignored paths: what is compared."""
    desired: Any
    """The normalized desired object projected onto ``manifest``'s fields."""
    ignored: bool = False
    """Opted out of drift detection (Flux's driftDetection: disabled label/annotation)."""

    def projection(self, live: Mapping[str, Any]) -> Any:
        return drift.project(_without_volatile(live), self.manifest)

    def drifted(self, live: Mapping[str, Any] | None) -> bool:
        if self.ignored:
            return False
        return live is None or self.projection(live) != self.desired

    def changes(self, live: Mapping[str, Any]) -> list[drift.FieldChange]:
        """What differs, as ``path: desired -> live``."""
        return list(drift.changed_fields(self.projection(live), self.desired))

    def correction(self, live: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A JSON patch (RFC 6902) that restores the drifted fields of ``live``."""
        operations: list[dict[str, Any]] = []
        removals: list[dict[str, Any]] = []
        for change in self.changes(live):
            desired = change.desired
            if isinstance(desired, str) and _LENGTH_MARKER.match(desired):
                continue  # the server itself changed a list's length; nothing to restore
            exists = _exists(live, change.path)
            if desired == drift.MISSING:
                if exists:
                    removals.append({"op": "remove", "path": change.path})
                continue
            value = _materialize(desired)
            operations.append(
                {"op": "replace" if exists else "add", "path": change.path, "value": value}
            )
        # Remove list elements from the end first, so earlier indexes stay valid.
        removals.sort(key=lambda op: _sort_key(op["path"]), reverse=True)
        return operations + removals


def baseline(
    manifest: Mapping[str, Any],
    normalized: Mapping[str, Any],
    rules: Sequence[IgnoreRule] = (),
) -> ReleaseObject:
    """A release object's desired state from its manifest and the server's dry run of it."""
    pointers = ignored_pointers(manifest, rules)
    kept = without_paths(manifest, pointers)
    return ReleaseObject(
        key=ObjectKey.from_manifest(manifest),
        manifest=kept,
        desired=drift.project(_without_volatile(normalized), kept),
        ignored=opted_out(manifest),
    )


def opted_out(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        if (metadata.get(field) or {}).get(DRIFT_OPT_OUT) == "disabled":
            return True
    return False


def ignored_pointers(obj: Mapping[str, Any], rules: Iterable[IgnoreRule]) -> list[str]:
    """The JSON pointers of every rule whose target (if any) matches ``obj``."""
    pointers: list[str] = []
    for rule in rules:
        if rule.target is None or selector_matches(rule.target, obj):
            pointers.extend(rule.paths)
    return pointers


without_paths = drift.without_paths
selector_matches = selector.target_matches


def _without_volatile(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return obj
    volatile = {"resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"}
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k not in volatile}}


def _tokens(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


def _exists(obj: Any, pointer: str) -> bool:
    node = obj
    for token in _tokens(pointer):
        if isinstance(node, dict):
            if token not in node:
                return False
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def _materialize(value: Any) -> Any:
    """A projected value as plain data: fields the server left out are left out."""
    if isinstance(value, dict):
        return {k: _materialize(v) for k, v in value.items() if v != drift.MISSING}
    if isinstance(value, list):
        return [
            _materialize(v)
            for v in value
            if not (isinstance(v, str) and (v == drift.MISSING or _LENGTH_MARKER.match(v)))
        ]
    return value


def _sort_key(pointer: str) -> tuple[Any, ...]:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in _tokens(pointer))
