"""One reconcile of one unit, as a straight pipeline (Flux's kustomize-controller shape):

variables -> render -> split -> validate -> apply -> inventory -> prune -> health -> outcome.

Nothing here writes status: the caller writes it once from the returned ``Outcome``,
whatever happened. Any failure before apply leaves the cluster untouched; a failure
during apply or prune keeps every object that may exist in the inventory, so nothing is
ever orphaned.
"""

from __future__ import annotations

import base64
import dataclasses
import marshal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from agent.applier import Applier
from agent.livecache import LiveCache
from agent.renderer import Renderer
from agent.units import (
    HELMRELEASE,
    KUSTOMIZATION,
    SplitRender,
    UnitDefinition,
    UnitKey,
    split_render,
)
from fleet.api import unit as unit_api
from fleet.core import drift, health, inventory, selector
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey, api_group, is_helmrelease, is_kustomization
from fleet.core.selector import SelectorError
from fleet.kube import KubeClient, KubeError, NotFound
from fleet.models import ManifestError
from fleet.render import kustomize

Object = dict[str, Any]

MAX_LISTED_PROBLEMS = 5


@dataclasses.dataclass
class Outcome:
    """What a reconcile found; the caller turns it into status, events and requeues."""

    ready: bool
    reason: str
    message: str
    revision: str
    applied: bool = False
    """True when this revision was applied (and pruned) in full: lastAppliedRevision moves."""
    stalled: bool = False
    """A terminal error: retrying the same revision cannot help."""
    inventory: list[InventoryEntry] | None = None
    """The unit's inventory after this run; None keeps the stored one."""
    split: SplitRender | None = None
    """The render, sorted; None when the render failed (children stay as they were)."""
    warnings: list[str] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    duration: float = 0.0
    applied_revision: str | None = None
    """What now runs, when that is not ``revision`` (a HelmRelease rolled back after a
    failed upgrade); lastAppliedRevision moves to it."""
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    """Further Kubernetes Events to record (type, reason, message): remediations, drift."""
    progressing: bool = False
    """Not a failure but a wait that ends by itself (the source is being fetched): its
    Event is ``Normal``/``Progressing``, never a Warning."""
    pending: bool = False
    """Applied, and waiting for what its health depends on: Ready is Unknown
    (``Progressing``), as Flux's during health checks, and the revision is not applied
    yet for a dependent."""
    awaiting: list[UnitKey] = dataclasses.field(default_factory=list)
    """Flux objects the agent reconciles itself (Kustomizations, HelmReleases) that
    ``wait`` or ``healthChecks`` name: the unit is Ready only once they are."""


MadeFrom = tuple[str, str, str]
"""What a render was made from: checkout, unit spec digest, variables digest."""


@dataclasses.dataclass(frozen=True, slots=True)
class KeptRender:
    """A unit's last render, kept serialised (``marshal``) between its reconciles: decoded,
    a thousand units' objects are a hundred thousand small dicts held for good; a resync
    decodes one unit's at a time, in microseconds."""

    made_from: MadeFrom
    objects: bytes
    warnings: tuple[str, ...]

    @classmethod
    def of(cls, made_from: MadeFrom, result: kustomize.RenderResult) -> KeptRender:
        return cls(made_from, marshal.dumps(result.objects), tuple(result.warnings))

    def result(self) -> kustomize.RenderResult:
        """A fresh copy of the render: whoever uses it may change it."""
        return kustomize.RenderResult(marshal.loads(self.objects), list(self.warnings))


@dataclasses.dataclass
class ReconcileContext:
    """What every reconcile of one cluster shares."""

    client: KubeClient
    applier: Applier
    cache: LiveCache
    renderer: Renderer
    default_namespace: str = "default"
    agent: str = ""
    """This agent's namespace, written on every object it applies (``fleet.dev/agent``);
    empty in tests that run one agent and need no identity."""
    renders: dict[UnitKey, KeptRender] = dataclasses.field(default_factory=dict)
    """Each unit's last render and what it was made from (checkout, spec, variables): a
    resync of an unchanged unit renders nothing, which is most of a resync's CPU."""
    upcoming: Callable[[UnitDefinition], list[UnitDefinition]] = lambda unit: []
    """Kustomizations queued to reconcile next from the same source as ``unit``, whose
    renders can come along with its own."""
    rendering_ahead: dict[UnitKey, anyio.Event] = dataclasses.field(default_factory=dict)
    """Units a render is taking along right now, and the event set when it is done: the
    next render leaves them out, and their own reconcile waits for that render."""


def unit_labels(unit: UnitDefinition) -> dict[str, str]:
    return {
        unit_api.UNIT_NAME_LABEL: unit.key.name,
        unit_api.UNIT_NAMESPACE_LABEL: unit.key.namespace,
    }


def _label(obj: Object, labels: Mapping[str, str]) -> Object:
    metadata = dict(obj.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return {**obj, "metadata": metadata}


def listed(problems: Sequence[str]) -> str:
    """The first few problems, and how many more there are."""
    shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


async def resolve_variables(client: KubeClient, unit: UnitDefinition) -> dict[str, str]:
    """Values for postBuild.substituteFrom, read from ConfigMaps and Secrets in the unit's
    namespace; a missing non-optional one raises LookupError naming it."""
    post_build = unit.kustomization.spec.post_build
    if post_build is None:
        return {}
    variables: dict[str, str] = {}
    for reference in post_build.substitute_from:
        found = await client.get("v1", reference.kind, reference.name, unit.key.namespace)
        if found is None:
            if reference.optional:
                continue
            where = f"{unit.key.namespace}/{reference.name}"
            raise LookupError(f"postBuild.substituteFrom: {reference.kind} {where} not found")
        data = found.get("data") or {}
        if reference.kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        variables.update({k: str(v) for k, v in data.items()})
    return variables


async def _default_namespaces(
    ctx: ReconcileContext, objects: list[Object], defined_crds: Mapping[tuple[str, str], bool]
) -> list[str]:
    """Give namespaced objects without a namespace the default one; returns problems
    (kinds that neither the cluster nor this render's CRDs define)."""
    problems: list[str] = []
    for obj in objects:
        group_kind = (api_group(obj.get("apiVersion")), str(obj.get("kind")))
        try:
            namespaced = await ctx.applier.namespaced(obj)
        except NotFound as error:
            if group_kind not in defined_crds:
                problems.append(f"{ObjectKey.from_manifest(obj)}: {error.message}")
                continue
            namespaced = defined_crds[group_kind]
        metadata = obj["metadata"]
        if namespaced and not metadata.get("namespace"):
            metadata["namespace"] = ctx.default_namespace
        elif not namespaced and metadata.get("namespace"):
            del metadata["namespace"]
    return problems


def _crds_in(objects: Sequence[Object]) -> dict[tuple[str, str], bool]:
    found = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            found[(str(spec.get("group")), str(kind))] = spec.get("scope") == "Namespaced"
    return found


def _owned_elsewhere(
    cache: LiveCache, objects: Sequence[Object], unit: UnitDefinition, agent: str = ""
) -> list[str]:
    """Objects another unit already manages (another Kustomization, a HelmRelease whose
    objects helm labelled, or any unit of another agent on this cluster, told apart by
    ``fleet.dev/agent``): applying them would start a war."""
    mine = unit_labels(unit)
    problems = []
    for obj in objects:
        live = cache.get(ObjectKey.from_manifest(obj))
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        owner = labels.get(unit_api.UNIT_NAME_LABEL)
        kind = labels.get(unit_api.UNIT_KIND_LABEL, KUSTOMIZATION)
        other = f"{kind} {labels.get(unit_api.UNIT_NAMESPACE_LABEL)}/{owner}"
        # Objects labelled before agents had an identity carry none: they stay ours.
        other_agent = labels.get(unit_api.AGENT_LABEL)
        if owner and agent and other_agent and other_agent != agent:
            problems.append(
                f"{ObjectKey.from_manifest(obj)} is already managed by unit {other} "
                f"of the agent in namespace {other_agent}"
            )
        elif owner and (kind != unit.kind or any(labels.get(k) != v for k, v in mine.items())):
            problems.append(f"{ObjectKey.from_manifest(obj)} is already managed by unit {other}")
    return problems


async def reconcile_unit(
    ctx: ReconcileContext,
    unit: UnitDefinition,
    checkout: Path,
    revision: str,
    previous: Sequence[InventoryEntry],
) -> Outcome:
    started = time.monotonic()
    outcome = await _reconcile(ctx, unit, checkout, revision, list(previous))
    outcome.duration = time.monotonic() - started
    return outcome


async def _reconcile(
    ctx: ReconcileContext,
    unit: UnitDefinition,
    checkout: Path,
    revision: str,
    previous: list[InventoryEntry],
) -> Outcome:
    spec = unit.kustomization.spec
    client = ctx.client
    if spec.service_account_name:
        client = client.as_service_account(unit.key.namespace, spec.service_account_name)

    try:
        variables = await resolve_variables(client, unit)
    except LookupError as error:
        return Outcome(False, "ReconciliationFailed", str(error), revision)
    except KubeError as error:
        return Outcome(False, "ReconciliationFailed", error.message, revision)

    made_from = _made_from(checkout, unit, variables)
    try:
        ahead = ctx.rendering_ahead.get(unit.key)
        if ahead is not None:  # another unit's render is taking this one along
            await ahead.wait()
        remembered = ctx.renders.get(unit.key)
        if remembered is not None and remembered.made_from == made_from:
            rendered = remembered.result()
        else:
            rendered = await _render(ctx, unit, checkout, variables)
            ctx.renders[unit.key] = KeptRender.of(made_from, rendered)
    except kustomize.RenderError as error:
        return Outcome(False, "BuildFailed", str(error), revision, stalled=True)
    except ManifestError as error:
        return Outcome(False, "BuildFailed", str(error), revision, stalled=True)

    try:
        split = split_render(unit, rendered.objects, default_namespace=ctx.default_namespace)
    except ManifestError as error:
        return Outcome(False, "BuildFailed", str(error), revision, stalled=True)
    warnings = list(rendered.warnings)
    unsupported_fields = unit.kustomization.unsupported_fields()
    if unsupported_fields:
        warnings.append(f"fields not supported, ignored: {', '.join(unsupported_fields)}")
    if split.unsupported:
        warnings.append(f"Flux objects not carried out yet: {', '.join(split.unsupported)}")

    labels = unit_labels(unit) | ({unit_api.AGENT_LABEL: ctx.agent} if ctx.agent else {})
    objects = [_label(obj, labels) for obj in split.objects]
    problems = await _default_namespaces(ctx, objects, _crds_in(objects))
    if problems:
        return Outcome(False, "ReconciliationFailed", listed(problems), revision, split=split)
    # Watching first lets the cache tell unchanged objects apart without requests.
    for api_version, kind in {(o["apiVersion"], o["kind"]) for o in objects}:
        await ctx.cache.ensure_watch(api_version, kind)
    conflicts = _owned_elsewhere(ctx.cache, objects, unit, ctx.agent)
    if conflicts:
        return Outcome(
            False, "ReconciliationFailed", listed(conflicts), revision, split=split, stalled=True
        )

    desired = {ObjectKey.from_manifest(o): o for o in objects}
    current = inventory.inventory_of(objects)
    try:
        ignore_rules = _ignore_rules(unit)
    except (SelectorError, ValueError) as error:
        return Outcome(
            False, "BuildFailed", f"spec.driftIgnoreRules: {error}", revision, stalled=True
        )
    report = await ctx.applier.apply_all(client, objects, force=spec.force, ignore=ignore_rules)
    counts = {"applied": len(report.applied), "unchanged": len(report.unchanged)}
    if not report.ok:
        survivors = _union(previous, [e for e in current if e.key in set(report.applied)])
        failures = [f"{key}: {message}" for key, message in report.failures]
        return Outcome(
            False,
            "ReconciliationFailed",
            listed(failures),
            revision,
            inventory=survivors,
            split=split,
            warnings=warnings,
            counts=counts,
        )

    new_inventory = current
    if spec.prune:
        allow = (
            unit.kustomization.metadata.annotations.get(inventory.ALLOW_MASS_PRUNE_ANNOTATION)
            == "true"
        )
        decision = inventory.plan_prune(previous, current, allow_mass_prune=allow)
        if decision.refused:
            stale_kept = [e for e in previous if e.key not in desired]
            return Outcome(
                False,
                "PruneFailed",
                decision.refused,
                revision,
                stalled=True,
                inventory=_union(current, stale_kept),
                split=split,
                warnings=warnings,
                counts=counts,
            )
        pruned = await ctx.applier.prune(client, decision.delete, unit_labels=labels)
        counts["pruned"] = len(pruned.deleted)
        if pruned.failures:
            survivors = [entry for entry, _ in pruned.failures]
            failures = [f"{e.key}: {message}" for e, message in pruned.failures]
            return Outcome(
                False,
                "PruneFailed",
                listed(failures),
                revision,
                inventory=_union(current, survivors),
                split=split,
                warnings=warnings,
                counts=counts,
            )
        warnings.extend(f"kept {e.key}: {why}" for e, why in pruned.kept)

    unhealthy = await _wait_healthy(ctx, client, unit, objects)
    outcome = Outcome(
        ready=unhealthy is None,
        reason="HealthCheckFailed" if unhealthy else "ReconciliationSucceeded",
        message=unhealthy or f"Applied revision: {revision}",
        revision=revision,
        applied=True,
        inventory=new_inventory,
        split=split,
        warnings=warnings,
        counts=counts,
    )
    outcome.awaiting = awaited_units(unit, split)
    return outcome


def awaited_units(unit: UnitDefinition, split: SplitRender) -> list[UnitKey]:
    """The units whose Ready the unit's health waits for: with ``wait``, every unit it
    defines; else those its ``healthChecks`` name (the kinds are the agent's own, so the
    cluster holds no status for them to read)."""
    spec = unit.kustomization.spec
    if spec.wait:
        return [child.key for child in split.units]
    found = []
    for check in spec.health_checks:
        kind = _unit_kind(check.api_version, check.kind)
        if kind is not None:
            found.append(UnitKey(kind, check.namespace or unit.key.namespace, check.name))
    return found


def _unit_kind(api_version: str | None, kind: str) -> str | None:
    manifest = {"apiVersion": api_version or "", "kind": kind}
    if is_kustomization(manifest):
        return KUSTOMIZATION
    if is_helmrelease(manifest):
        return HELMRELEASE
    return None


def _made_from(checkout: Path, unit: UnitDefinition, variables: Mapping[str, str]) -> MadeFrom:
    """What a render depends on: a remembered render with the same is still right."""
    return (str(checkout), unit.spec_digest, drift.desired_digest(variables))


async def _render(
    ctx: ReconcileContext, unit: UnitDefinition, checkout: Path, variables: Mapping[str, str]
) -> kustomize.RenderResult:
    """Render the unit, and the units queued next from the same checkout along with it
    (their renders wait in ``ctx.renders``): when a revision reaches a thousand units,
    one kustomize process then builds many of them. Units whose variables come from the
    cluster (postBuild.substituteFrom) render on their own turn."""
    ahead = []
    for other in ctx.upcoming(unit):
        post_build = other.kustomization.spec.post_build
        if other.key in ctx.rendering_ahead or (post_build and post_build.substitute_from):
            continue
        made_from = _made_from(checkout, other, {})
        remembered = ctx.renders.get(other.key)
        if remembered is None or remembered.made_from != made_from:
            ahead.append((other, made_from))
    done = anyio.Event()
    for other, _ in ahead:
        ctx.rendering_ahead[other.key] = done
    try:
        first, *others = await ctx.renderer.render_many(
            checkout,
            [
                (unit.kustomization.spec, variables),
                *((other.kustomization.spec, {}) for other, _ in ahead),
            ],
        )
        for (other, made_from), result in zip(ahead, others, strict=True):
            if isinstance(result, kustomize.RenderResult):
                ctx.renders[other.key] = KeptRender.of(made_from, result)
    finally:
        for other, _ in ahead:
            del ctx.rendering_ahead[other.key]
        done.set()
    if isinstance(first, kustomize.RenderError):
        raise first
    assert first is not None
    return first


def _ignore_rules(unit: UnitDefinition) -> Callable[[Object], tuple[str, ...]]:
    """Each object's fields that the unit leaves to others (``spec.driftIgnoreRules``).

    Raises when a rule is malformed, so a typo is reported instead of silently ignored.
    """
    rules = unit.kustomization.spec.drift_ignore_rules
    for rule in rules:
        for path in rule.paths:
            drift.without_paths({}, [path])  # raises ValueError on a non-pointer path
        if rule.target is not None and rule.target.label_selector:
            selector.selector_matches(rule.target.label_selector, {})

    def paths(obj: Object) -> tuple[str, ...]:
        return tuple(
            p for rule in rules if selector.target_matches(rule.target, obj) for p in rule.paths
        )

    return paths


def _union(
    first: Sequence[InventoryEntry], second: Sequence[InventoryEntry]
) -> list[InventoryEntry]:
    seen = {e.key: e for e in first}
    for entry in second:
        seen.setdefault(entry.key, entry)
    return list(seen.values())


def _health_targets(
    unit: UnitDefinition, objects: Sequence[Object]
) -> list[tuple[str, str, str, str]]:
    """(apiVersion, kind, namespace, name) of what ``wait`` or ``healthChecks`` name."""
    spec = unit.kustomization.spec
    if spec.wait:
        return [
            (o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in objects
        ]
    targets = []
    for check in spec.health_checks:
        if _unit_kind(check.api_version, check.kind) is not None:
            continue  # judged by the loop from the unit's own status (awaited_units)
        api_version = check.api_version or "v1"
        targets.append((api_version, check.kind, check.namespace or "", check.name))
    return targets


async def _wait_healthy(
    ctx: ReconcileContext, client: KubeClient, unit: UnitDefinition, objects: Sequence[Object]
) -> str | None:
    """None when every target is Current within the unit's timeout, else why not."""
    targets = _health_targets(unit, objects)
    if not targets:
        return None
    timeout = unit.kustomization.spec.effective_timeout.total_seconds()
    deadline = time.monotonic() + timeout
    keys = [ObjectKey(api_group(a), kind, namespace, name) for a, kind, namespace, name in targets]
    with ctx.cache.watching(keys) as changed:
        while True:
            pending: list[str] = []
            failed: list[str] = []
            for (api_version, kind, namespace, name), key in zip(targets, keys, strict=True):
                live = ctx.cache.get(key)
                if live is None:
                    try:
                        live = await client.get(api_version, kind, name, namespace or None)
                    except KubeError as error:
                        pending.append(f"{key}: {error.message}")
                        continue
                verdict = health.assess(live)
                if verdict.status is health.HealthStatus.FAILED:
                    failed.append(f"{key}: {verdict.message}")
                elif not verdict.ready:
                    pending.append(f"{key}: {verdict.message}")
            if failed:
                return f"health check failed: {listed(failed)}"
            if not pending:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"timeout waiting for: {listed(pending)} after {timeout:.0f}s"
            with anyio.move_on_after(min(remaining, 2.0)):
                await changed.wait()
