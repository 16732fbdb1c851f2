"""``fleet diff``: what the agent would change if a local checkout were the fleet repository.

The unit is rendered from the checkout (uncommitted changes included) exactly as the
agent renders it: the same kustomize pipeline, the same unit labels, the same namespace
defaulting. Each object then goes to the API server as a server-side dry-run apply
under the agent's field manager, and the answer is compared with the live object, so
what is shown is what an apply would really do, defaulting and field ownership
included. Inventory entries the render no longer holds are listed as pruned.

Exit codes follow ``kubectl diff``: 0 no changes, 1 changes, 2 something failed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from agent import reconciler
from agent import units as unit_defs
from agent.units import SplitRender, UnitDefinition, UnitKey
from fleet import untrusted
from fleet.api import unit as unit_api
from fleet.cli import kubeargs, unitview
from fleet.cli.kubeargs import CliError, progress
from fleet.core import inventory, manifests, objectdiff
from fleet.core.objectdiff import Action, Change
from fleet.kube import ApiUnavailable, Invalid, KubeClient, KubeError, NotFound
from fleet.models import ManifestError, NamespacedName
from fleet.render import kustomize

Object = dict[str, Any]

DEFAULT_NAMESPACE = "default"
"""Where the agent puts namespaced objects written without a namespace (its default)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    diff = subparsers.add_parser(
        "diff",
        help="what the agent would change if a local checkout were pushed",
        description="Render a unit from a local checkout of the fleet repository as the "
        "agent would, dry-run apply every object on the cluster, and print what would "
        "change: new objects (+), changed fields (~, as a unified diff) and pruned "
        "objects (-). Exit code 0: no changes, 1: changes, 2: error.",
    )
    diff.add_argument(
        "name", nargs="?", default=unit_api.ROOT_UNIT, metavar="NAME", help="unit (default: root)"
    )
    diff.add_argument(
        "--path",
        required=True,
        type=Path,
        help="local checkout of the fleet repository (uncommitted changes count)",
    )
    diff.add_argument(
        "--cluster",
        help="cluster name, to render clusters/<cluster> (default: the path the agent's "
        "root unit follows)",
    )
    kubeargs.add_kube_flags(diff)
    diff.set_defaults(func=lambda args: kubeargs.run(_diff, args, error_code=2))


async def _diff(args: argparse.Namespace) -> int:
    checkout = Path(args.path).expanduser().resolve()
    if not checkout.is_dir():
        raise CliError(f"--path {args.path}: not a directory")
    async with kubeargs.connect(args) as client:
        units = await _live_units(client, args.namespace)
        cluster_path = _cluster_path(args, units)
        definition, split, warnings = await _locate(client, checkout, cluster_path, args, units)
        for warning in warnings:
            progress("⚠", warning)
        live_unit = next(
            (u for u in units if u["metadata"]["name"] == definition.resource_name), None
        )
        changes = await diff_unit(client, definition, split, live_unit, units, args.namespace)
    for line in objectdiff.format_changes(changes):
        print(untrusted.printable(line, multiline=True))
    sys.stdout.flush()
    code = objectdiff.exit_code(changes)
    name = unitview.display_name(definition.resource_name)
    progress("✔" if code == 0 else "►", f"unit {name}: {objectdiff.summary(changes)}")
    return code


async def _live_units(client: KubeClient, namespace: str) -> list[Object]:
    """The agent's Units; none on a cluster the agent never ran on (no CRD yet)."""
    try:
        items, _ = await client.list(unit_api.API_VERSION, unit_api.KIND, namespace)
    except NotFound:
        return []
    return items


def _cluster_path(args: argparse.Namespace, units: Sequence[Mapping[str, Any]]) -> str:
    if args.cluster:
        return f"clusters/{args.cluster}"
    root = next((u for u in units if u["metadata"]["name"] == unit_api.ROOT_UNIT), None)
    path = ((root or {}).get("spec") or {}).get("path")
    if not path:
        raise CliError(
            f"pass --cluster NAME: namespace {args.namespace} has no root unit to read the "
            "cluster path from"
        )
    return str(path)


def _target(name: str, units: Sequence[Mapping[str, Any]]) -> NamespacedName | str:
    """The key of the unit meant by NAME, or NAME itself when only a render can tell."""
    if name == unit_api.ROOT_UNIT:
        return unit_defs.ROOT_KEY.namespaced_name
    namespace, slash, short = name.partition("/")
    if slash:
        return NamespacedName(namespace, short)
    try:
        unit = unitview.find_unit(units, name, "")
    except unitview.UnitLookupError:
        return name
    spec = unit.get("spec") or {}
    return NamespacedName(str(spec.get("namespace")), str(spec.get("name")))


def _is_target(definition: UnitDefinition, target: NamespacedName | str) -> bool:
    if isinstance(target, NamespacedName):
        return definition.kind == "Kustomization" and definition.key.namespaced_name == target
    return target in (definition.key.name, definition.resource_name)


def _uses_fleet_repository(definition: UnitDefinition, units: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the unit renders from the fleet repository (the checkout), as the agent
    decides it: the root does; a child when its sourceRef is the bootstrap repository."""
    if definition.key == unit_defs.ROOT_KEY:
        return True
    live = next((u for u in units if u["metadata"]["name"] == definition.resource_name), None)
    source = ((live or {}).get("spec") or {}).get("source")
    if source:
        return bool(source == str(unit_defs.ROOT_SOURCE))
    reference = definition.kustomization.spec.source_ref
    return reference is None or reference.name == unit_defs.FLUX_ROOT_SOURCE_NAME


async def _locate(
    client: KubeClient,
    checkout: Path,
    cluster_path: str,
    args: argparse.Namespace,
    units: Sequence[Mapping[str, Any]],
) -> tuple[UnitDefinition, SplitRender, list[str]]:
    """Render from the root down until the unit NAME names is found; its render."""
    target = _target(args.name, units)
    root = UnitDefinition(
        unit_defs.root_kustomization(cluster_path, datetime.timedelta(minutes=1)),
        None,
        cluster_path,
    )
    pending = [root]
    seen: set[UnitKey] = set()
    while pending:
        definition = pending.pop(0)
        if definition.key in seen:
            continue
        seen.add(definition.key)
        wanted = _is_target(definition, target)
        if not _uses_fleet_repository(definition, units):
            if wanted:
                reference = definition.kustomization.spec.source_ref
                raise CliError(
                    f"unit '{args.name}' renders from GitRepository "
                    f"{reference.namespace if reference else ''}/"
                    f"{reference.name if reference else ''}, not the fleet repository; "
                    "fleet diff renders the fleet repository only"
                )
            continue
        split, warnings = await render_unit(client, checkout, definition)
        if wanted:
            return definition, split, warnings
        pending.extend(split.children)
    raise CliError(
        f"unit '{args.name}' is not defined by {cluster_path} in {checkout} "
        "(nor by any unit below it)"
    )


async def render_unit(
    client: KubeClient, checkout: Path, definition: UnitDefinition
) -> tuple[SplitRender, list[str]]:
    """The unit's render from the checkout, split as the agent splits it; its warnings."""
    name = unitview.display_name(definition.resource_name)
    spec = definition.kustomization.spec
    try:
        variables = await reconciler.resolve_variables(client, definition)
    except LookupError as error:
        raise CliError(f"unit '{name}': {error}") from error
    try:
        rendered = await anyio.to_thread.run_sync(kustomize.render, checkout, spec, variables)
        split = unit_defs.split_render(
            definition, rendered.objects, default_namespace=DEFAULT_NAMESPACE
        )
    except (kustomize.RenderError, ManifestError) as error:
        raise CliError(f"unit '{name}' does not build: {error}") from error
    return split, list(rendered.warnings)


async def diff_unit(
    client: KubeClient,
    definition: UnitDefinition,
    split: SplitRender,
    live_unit: Mapping[str, Any] | None,
    units: Sequence[Mapping[str, Any]],
    agent_namespace: str,
) -> list[Change]:
    """Every change applying this render would make, in apply order, then prunes.

    Objects get exactly the labels the agent writes: its units' and its own (the agent is
    known by its namespace), or the dry run would show them removed.
    """
    labels = reconciler.unit_labels(definition) | {unit_api.AGENT_LABEL: agent_namespace}
    objects = [_labelled(obj, labels) for obj in split.objects]
    crds = _crd_scopes(objects)
    changes: list[Change] = []
    applicable: list[Object] = []
    for obj in objects:
        problem = await _default_namespace(client, obj, crds)
        if problem:
            changes.append(Change(Action.ERROR, _label(obj), note=problem))
        else:
            applicable.append(obj)
    force = definition.kustomization.spec.force
    for obj in applicable:
        change = await _object_change(client, obj, force=force)
        if change is not None:
            changes.append(change)
    if live_unit is not None and definition.kustomization.spec.prune:
        changes.extend(await _prunes(client, definition, live_unit, objects, labels))
    changes.extend(_unit_changes(definition, split, units))
    return changes


def _labelled(obj: Mapping[str, Any], labels: Mapping[str, str]) -> Object:
    metadata = dict(obj.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return {**obj, "metadata": metadata}


def _label(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return unitview.object_label(
        str(obj.get("kind")), str(metadata.get("namespace") or ""), str(metadata.get("name"))
    )


def _crd_scopes(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for the CRDs this render itself defines."""
    found = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            found[(str(spec.get("group")), str(kind))] = spec.get("scope") == "Namespaced"
    return found


async def _default_namespace(
    client: KubeClient, obj: Object, crds: Mapping[tuple[str, str], bool]
) -> str | None:
    """Give a namespaced object without a namespace the default one, as the agent does;
    returns a problem when neither the cluster nor the render knows the kind."""
    try:
        namespaced = (await client.resource(obj["apiVersion"], obj["kind"])).namespaced
    except NotFound as error:
        group_kind = (manifests.api_group(obj.get("apiVersion")), str(obj.get("kind")))
        if group_kind not in crds:
            return error.message
        namespaced = crds[group_kind]
    metadata = obj["metadata"]
    if namespaced and not metadata.get("namespace"):
        metadata["namespace"] = DEFAULT_NAMESPACE
    elif not namespaced and metadata.get("namespace"):
        del metadata["namespace"]
    return None


async def _object_change(client: KubeClient, obj: Object, *, force: bool) -> Change | None:
    label = _label(obj)
    metadata = obj["metadata"]
    policy = inventory.apply_policy(obj)
    if policy == "Ignore":
        return None
    try:
        live = await client.get(
            obj["apiVersion"], obj["kind"], metadata["name"], metadata.get("namespace")
        )
    except NotFound:
        live = None  # the kind comes with a CRD in this very render
    if live is not None and policy == "IfNotPresent":
        return None
    try:
        merged = await client.apply(
            obj, field_manager=unit_api.FIELD_MANAGER, force=True, dry_run=True
        )
    except ApiUnavailable:
        raise
    except NotFound as error:
        if live is None:
            return Change(Action.CREATE, label)  # its namespace or CRD is new in this render
        return Change(Action.ERROR, label, note=error.message)
    except Invalid as error:
        if live is not None and force and _immutable(error):
            return Change(Action.UPDATE, label, note="recreated: an immutable field changed")
        return Change(Action.ERROR, label, note=error.message)
    except KubeError as error:
        return Change(Action.ERROR, label, note=error.message)
    if live is None:
        return Change(Action.CREATE, label)
    return objectdiff.update(live, merged, label)


def _immutable(error: KubeError) -> bool:
    return "immutable" in error.message or "Forbidden: updates to" in error.message


async def _prunes(
    client: KubeClient,
    definition: UnitDefinition,
    live_unit: Mapping[str, Any],
    objects: Sequence[Mapping[str, Any]],
    labels: Mapping[str, str],
) -> list[Change]:
    """Inventory entries the render dropped that the agent would delete, with its guards."""
    previous = inventory.inventory_from_status(live_unit.get("status"))
    current = inventory.inventory_of(objects)
    annotations = definition.kustomization.metadata.annotations
    allow = annotations.get(inventory.ALLOW_MASS_PRUNE_ANNOTATION) == "true"
    decision = inventory.plan_prune(previous, current, allow_mass_prune=allow)
    if decision.refused:
        name = unitview.display_name(definition.resource_name)
        return [
            Change(
                Action.PRUNE_REFUSED, f"{unitview.UNIT_KIND_LABEL}/{name}", note=decision.refused
            )
        ]
    changes = []
    for entry in decision.delete:
        key = entry.key
        try:
            live = await client.get(entry.api_version, key.kind, key.name, key.namespace or None)
        except NotFound:
            live = None
        if live is None or inventory.prune_disabled(live):
            continue
        live_labels = (live.get("metadata") or {}).get("labels") or {}
        if any(live_labels.get(k) != v for k, v in labels.items()):
            continue  # another owner took it: the agent leaves it alone
        changes.append(Change(Action.PRUNE, unitview.entry_label(entry)))
    return changes


def _unit_changes(
    definition: UnitDefinition, split: SplitRender, units: Sequence[Mapping[str, Any]]
) -> list[Change]:
    """Child units this render adds or drops (the agent starts or removes them)."""
    parent = str(definition.key)
    live = {
        unitview.unit_label(str(u["metadata"]["name"]))
        for u in units
        if (u.get("spec") or {}).get("parent") == parent
    }
    rendered = {unitview.unit_label(child.resource_name) for child in split.units}
    return [Change(Action.ADD_UNIT, label) for label in sorted(rendered - live)] + [
        Change(Action.REMOVE_UNIT, label) for label in sorted(live - rendered)
    ]
