"""Multi-document YAML into Kubernetes objects, refusing what would hurt the agent later.

Pure: text in, plain dicts out. Files come from Git, so anyone with push access controls
them; an alias bomb, an oversized file or two objects claiming the same identity must
fail here, with the file, document, object and field named, rather than exhaust memory
or let the last writer silently win during apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from fleet.models.errors import ManifestError, describe_object

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Larger than any sane manifest file (the biggest CRD bundles are ~1-2 MiB)."""
MAX_EXPANDED_NODES = 1_000_000
"""YAML nodes one document may have once aliases are expanded; real CRDs stay < 100k."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml when present), with timestamps left as strings.

    Kubernetes reads ``2024-01-01`` as a string; a Python date would not even survive
    being sent to the API as JSON.
    """


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(document: Any) -> str:
    """One YAML document, keys in their order, written by libyaml when present: the
    pure-Python emitter was a good part of preparing each unit's render."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False)


Manifest = dict[str, Any]

FLUX_KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
FLUX_SOURCE_GROUP = "source.toolkit.fluxcd.io"
FLUX_HELM_GROUP = "helm.toolkit.fluxcd.io"


@dataclasses.dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of an object in a cluster: group, kind, namespace and name (no version).

    The version is left out on purpose: ``apps/v1`` and ``apps/v1beta1`` Deployments
    with the same name are the same object to the API server.
    """

    group: str
    """API group, ``""`` for the core group (ConfigMap, Service...)."""
    kind: str
    namespace: str
    """``""`` for cluster-scoped objects, or a namespaced object written without one."""
    name: str

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> ObjectKey:
        """Key of a manifest; raises ValueError if it has no kind or no ``metadata.name``."""
        kind = manifest.get("kind")
        metadata = manifest.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError("object has no kind")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind} has no metadata.name")
        namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        return cls(
            group=api_group(manifest.get("apiVersion")),
            kind=kind,
            namespace=namespace if isinstance(namespace, str) else "",
            name=name,
        )

    def __str__(self) -> str:
        """``Deployment.apps/podinfo/web``, ``ConfigMap/ns/cfg``, ``Namespace/podinfo``.

        Flux's log format (``Kind/namespace/name``) with the group appended to the kind
        the way kubectl writes resources (``deployment.apps``), so keys of different
        groups never print alike.
        """
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        if self.namespace:
            return f"{kind}/{self.namespace}/{self.name}"
        return f"{kind}/{self.name}"

    def to_inventory_id(self) -> str:
        """Flux's inventory entry id: ``<namespace>_<name>_<group>_<kind>``.

        As in cli-utils' ObjMetadata, a colon in the name (RBAC names such as
        ``system:metrics``) is written as a double underscore.
        """
        name = self.name.replace(":", "__")
        return f"{self.namespace}_{name}_{self.group}_{self.kind}"

    @classmethod
    def from_inventory_id(cls, inventory_id: str) -> ObjectKey:
        """Inverse of :meth:`to_inventory_id`; raises ValueError on a malformed id."""
        namespace, separator, rest = inventory_id.partition("_")
        parts = rest.rsplit("_", 2)
        if not separator or len(parts) != 3 or not parts[0] or not parts[2]:
            raise ValueError(f"invalid inventory id {inventory_id!r}")
        name, group, kind = parts
        return cls(group=group, kind=kind, namespace=namespace, name=name.replace("__", ":"))


def api_group(api_version: object) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> ``""`` (the core group)."""
    if not isinstance(api_version, str):
        return ""
    group, _, _ = api_version.rpartition("/")
    return group


def load_manifests(
    text: str | bytes,
    source_file: str,
    *,
    max_bytes: int = MAX_MANIFEST_BYTES,
    max_nodes: int = MAX_EXPANDED_NODES,
    first_document: int = 1,
) -> list[Manifest]:
    """Parse multi-document YAML into objects, in document order; raises ManifestError.

    Empty documents are skipped and ``kind: List`` documents are expanded into their
    items, as kubectl does. Refused: files over ``max_bytes``, documents whose aliases
    expand past ``max_nodes`` nodes (or refer to themselves), documents that are not
    mappings, objects without apiVersion, kind or metadata.name (or generateName), and
    two objects with the same group, kind, namespace and name.
    ``first_document`` numbers the documents in messages when ``text`` is a slice of a
    larger stream.
    """
    objects: list[Manifest] = []
    defined_in: dict[ObjectKey, int] = {}
    documents = parse_yaml(
        text, source_file, max_bytes=max_bytes, max_nodes=max_nodes, first_document=first_document
    )
    for number, document in documents:
        location = f"{source_file}, document {number}"
        for manifest in _expand_lists(document):
            _check_object(manifest, location)
            objects.append(manifest)
            if not manifest["metadata"].get("name"):
                continue  # generateName objects have no identity until created
            key = ObjectKey.from_manifest(manifest)
            if key in defined_in:
                raise ManifestError(
                    location,
                    str(key),
                    None,
                    f"duplicate object: already defined in document {defined_in[key]}",
                )
            defined_in[key] = number
    return objects


def parse_yaml(
    text: str | bytes,
    source_file: str,
    *,
    max_bytes: int = MAX_MANIFEST_BYTES,
    max_nodes: int = MAX_EXPANDED_NODES,
    first_document: int = 1,
) -> list[tuple[int, Any]]:
    """Safely parse any multi-document YAML: ``(document number, data)`` per non-empty one.

    The same limits as :func:`load_manifests` (size, alias expansion, nesting), without
    requiring the documents to be Kubernetes objects: for kustomization files and such.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
    if size > max_bytes:
        raise ManifestError(
            source_file, None, None, f"file is {size} bytes, over the {max_bytes}-byte limit"
        )
    return list(_documents(text, source_file, max_nodes, first_document))


def ensure_unique(objects: Iterable[Mapping[str, Any]], source_file: str) -> None:
    """Raise ManifestError if two objects share group, kind, namespace and name.

    Kustomize refuses such duplicates within one build; across files and units they
    would fight over the same live object, so the agent refuses them too.
    """
    seen: set[ObjectKey] = set()
    for manifest in objects:
        try:
            key = ObjectKey.from_manifest(manifest)
        except ValueError:
            continue  # generateName objects have no identity until created
        if key in seen:
            raise ManifestError(
                source_file, str(key), None, "duplicate object: defined more than once"
            )
        seen.add(key)


def _documents(
    text: str | bytes, source_file: str, max_nodes: int, first_document: int
) -> Iterator[tuple[int, Any]]:
    loader = _Loader(text)
    number = first_document
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.YAMLError as error:
                raise ManifestError(
                    f"{source_file}, document {number}", None, None, _yaml_problem(error)
                ) from error
            location = f"{source_file}, document {number}"
            if node is not None:
                _check_expansion(node, location, max_nodes)
                try:
                    document = loader.construct_document(node)
                except yaml.YAMLError as error:
                    raise ManifestError(location, None, None, _yaml_problem(error)) from error
                if document is not None:
                    yield number, document
            number += 1
    except RecursionError as error:
        raise ManifestError(
            f"{source_file}, document {number}", None, None, "YAML is nested too deeply"
        ) from error
    finally:
        loader.dispose()


def _yaml_problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or str(error)
        context = f" ({error.context})" if error.context else ""
        return f"invalid YAML{where}: {problem}{context}"
    return f"invalid YAML: {error}"


def _check_expansion(root: yaml.Node, location: str, max_nodes: int) -> None:
    """Count the nodes a document would have with every alias expanded, without expanding.

    Each distinct node is visited once and its expanded size memoised, so a Billion
    Laughs document is refused in time linear in its text.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        key = id(node)
        if children_counted:
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > max_nodes:
                raise ManifestError(
                    location,
                    None,
                    None,
                    f"YAML aliases expand to more than {max_nodes} nodes (an alias bomb?)",
                )
            sizes[key] = total
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ManifestError(location, None, None, "YAML alias refers to itself")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield key_node
            yield value_node
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _expand_lists(document: Any) -> Iterator[Any]:
    if (
        isinstance(document, dict)
        and document.get("apiVersion") == "v1"
        and document.get("kind") == "List"
        and isinstance(document.get("items"), list)
    ):
        yield from document["items"]
    else:
        yield document


def _check_object(manifest: Any, location: str) -> None:
    if not isinstance(manifest, dict):
        got = "a list" if isinstance(manifest, list) else f"a {type(manifest).__name__}"
        raise ManifestError(location, None, None, f"expected a Kubernetes object, got {got}")
    described = describe_object(manifest)
    for field in ("apiVersion", "kind"):
        value = manifest.get(field)
        if value is None:
            raise ManifestError(location, described, field, "required field is missing")
        if not isinstance(value, str) or not value:
            raise ManifestError(location, described, field, "must be a non-empty string")
    metadata = manifest.get("metadata")
    if metadata is None:
        raise ManifestError(location, described, "metadata", "required field is missing")
    if not isinstance(metadata, dict):
        raise ManifestError(location, described, "metadata", "must be a mapping")
    for field in ("name", "generateName", "namespace"):
        value = metadata.get(field)
        if value is not None and (not isinstance(value, str) or not value):
            raise ManifestError(
                location, described, f"metadata.{field}", "must be a non-empty string"
            )
    if not metadata.get("name") and not metadata.get("generateName"):
        raise ManifestError(location, described, "metadata.name", "required field is missing")


def is_kustomization(manifest: Mapping[str, Any]) -> bool:
    """A Flux Kustomization (a reconcile unit), not kustomize's own kustomization file."""
    return _is(manifest, FLUX_KUSTOMIZE_GROUP, "Kustomization")


def is_gitrepository(manifest: Mapping[str, Any]) -> bool:
    return _is(manifest, FLUX_SOURCE_GROUP, "GitRepository")


def is_helmrelease(manifest: Mapping[str, Any]) -> bool:
    return _is(manifest, FLUX_HELM_GROUP, "HelmRelease")


def is_helmrepository(manifest: Mapping[str, Any]) -> bool:
    return _is(manifest, FLUX_SOURCE_GROUP, "HelmRepository")


def _is(manifest: Mapping[str, Any], group: str, kind: str) -> bool:
    return manifest.get("kind") == kind and api_group(manifest.get("apiVersion")) == group
