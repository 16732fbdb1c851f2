"""One reconcile of one HelmRelease unit, with the real ``helm`` and Flux's semantics:

chart -> values -> history (recover a stuck release) -> in sync? -> install | upgrade
-> test -> remediate on failure -> drift baseline -> outcome.

Install and upgrade are separate actions, as in Flux's helm-controller, because their
failures are remediated differently: a failed install is uninstalled before the next
attempt, a failed upgrade rolled back to the last revision that was served complete (or
uninstalled, per ``upgrade.remediation.strategy``). Failures are counted against the
desired state (chart, values, spec); once ``retries`` are used up the unit is stalled
until that state changes or someone runs ``fleet reconcile``.

The agent never server-side-applies a release's objects: helm writes them (three-way
merge under helm's field manager), and drift is corrected with JSON patches under that
same manager. Nothing here writes status: the loop writes it once from the Outcome.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from agent.applier import Applier
from agent.livecache import LiveCache
from agent.reconciler import Outcome
from agent.units import UnitDefinition
from fleet.api import unit as unit_api
from fleet.core import drift, inventory, managedfields
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey
from fleet.helm import commands, objects, release
from fleet.helm import values as helm_values
from fleet.helm.charts import ChartArtifact, ChartRepositories, ChartSourceError
from fleet.helm.cli import Helm, HelmError, post_renderer
from fleet.kube import KubeClient, KubeError, NotFound
from fleet.models import HelmRelease, ManifestError, NamespacedName
from fleet.models.helmrelease import Remediation

log = logging.getLogger(__name__)

Object = dict[str, Any]
GitChartResolver = Callable[[HelmRelease], Awaitable[ChartArtifact]]

HELM_FIELD_MANAGER = "helm"
"""Helm 3's own field manager (the binary's name): drift corrections are written under
it, so a release's fields stay owned by one manager and never by the agent's."""
DRY_RUN_FIELD_MANAGER = "fleet-agent-drift-check"
"""Only for server-side dry runs that normalize a manifest; nothing is ever persisted."""
HISTORY_ON_STATUS = 5
FLUX_NAME_LABEL = "helm.toolkit.fluxcd.io/name"
FLUX_NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"


@dataclasses.dataclass
class ReleaseContext:
    """What every HelmRelease reconcile of one cluster shares."""

    client: KubeClient
    helm: Helm
    charts: ChartRepositories
    applier: Applier
    cache: LiveCache
    git_chart: GitChartResolver
    """Finds a chart folder in a GitRepository checkout (the loop knows the sources)."""
    scratch_dir: Path
    """Where values files live for the length of one helm run."""


@dataclasses.dataclass
class ReleaseMemory:
    """What the agent remembers about one release between reconciles.

    The counters and the last failure are written to the Unit's status and read back
    after a restart; the drift baseline is rebuilt from the cluster instead.
    """

    attempt: str | None = None
    """Digest of the desired state (chart, values, spec) the failure counters refer to."""
    install_failures: int = 0
    upgrade_failures: int = 0
    last_action: str | None = None
    last_reason: str | None = None
    last_message: str | None = None
    name: str | None = None
    namespace: str | None = None
    history: list[release.Revision] = dataclasses.field(default_factory=list)
    values_digest: str | None = None
    """Digest of the values of the last successful release."""
    test_failure: str | None = None
    """Why the last ``helm test`` failed when failures are ignored; None once one passes."""
    objects: dict[ObjectKey, objects.ReleaseObject] = dataclasses.field(default_factory=dict)
    baseline_for: str | None = None
    """The release revision and drift settings ``objects`` describe."""
    drift: dict[ObjectKey, str] = dataclasses.field(default_factory=dict)
    """Drift seen and not corrected (warn mode), by object."""
    lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)
    """Held by helm actions and drift corrections, so they never interleave."""
    busy: bool = False
    """A helm action is running: the watch events it causes are not drift."""

    @contextlib.asynccontextmanager
    async def acting(self) -> AsyncIterator[None]:
        """Hold the release for a helm action. The drift baseline is dropped first, so no
        event caused by the action is ever compared with the previous revision; it is
        built again for whatever revision the action leaves."""
        async with self.lock:
            self.busy = True
            self.objects, self.baseline_for = {}, None
            try:
                yield
            finally:
                self.busy = False

    def failures(self, action: str | None) -> int:
        return self.upgrade_failures if action == "upgrade" else self.install_failures

    def reset(self, attempt: str | None) -> None:
        self.attempt = attempt
        self.install_failures = self.upgrade_failures = 0
        self.last_action = self.last_reason = self.last_message = None

    def to_status(self, spec: HelmRelease) -> dict[str, Any]:
        newest = release.latest(self.history)
        remediation = _remediation(spec, self.last_action)
        left = release.retries_left(remediation.retries, self.failures(self.last_action))
        status: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "revision": newest.revision if newest else None,
            "status": newest.status if newest else None,
            "chart": newest.chart if newest else None,
            "appVersion": (newest.app_version or None) if newest else None,
            "valuesDigest": self.values_digest,
            "attempt": self.attempt,
            "lastAction": self.last_action,
            "installFailures": self.install_failures,
            "upgradeFailures": self.upgrade_failures,
            "retriesLeft": "unlimited" if left is None else left,
            "lastFailureReason": self.last_reason,
            "lastFailure": self.last_message,
            "ignoredTestFailure": self.test_failure,
            "history": [
                {
                    "revision": r.revision,
                    "status": r.status,
                    "chart": r.chart,
                    "updated": r.updated,
                    "description": release.short_error(r.description)[:200],
                }
                for r in self.history[-HISTORY_ON_STATUS:]
            ],
        }
        if self.drift:
            status["drift"] = [self.drift[k] for k in sorted(self.drift)]
        return {k: v for k, v in status.items() if v is not None}

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> ReleaseMemory:
        """What a previous agent left on the Unit's status."""
        found = (status or {}).get("release") or {}
        return cls(
            attempt=found.get("attempt"),
            install_failures=int(found.get("installFailures") or 0),
            upgrade_failures=int(found.get("upgradeFailures") or 0),
            last_action=found.get("lastAction"),
            last_reason=found.get("lastFailureReason"),
            last_message=found.get("lastFailure"),
            name=found.get("name"),
            namespace=found.get("namespace"),
            values_digest=found.get("valuesDigest"),
        )


def _remediation(hr: HelmRelease, action: str | None) -> Remediation:
    return hr.spec.upgrade.remediation if action == "upgrade" else hr.spec.install.remediation


def release_labels(unit: UnitDefinition) -> dict[str, str]:
    """Labels the post-renderer puts on every object of the release."""
    key = unit.key
    return {
        unit_api.UNIT_NAME_LABEL: key.name,
        unit_api.UNIT_NAMESPACE_LABEL: key.namespace,
        unit_api.UNIT_KIND_LABEL: key.kind,
        FLUX_NAME_LABEL: key.name,
        FLUX_NAMESPACE_LABEL: key.namespace,
    }


def clients(ctx: ReleaseContext, hr: HelmRelease) -> tuple[KubeClient, Helm]:
    """The API client and helm, as the release's service account when it names one."""
    account = hr.spec.service_account_name
    if not account:
        return ctx.client, ctx.helm
    namespace = hr.metadata.namespace
    return (
        ctx.client.as_service_account(namespace, account),
        ctx.helm.with_access(ctx.helm.access.as_service_account(namespace, account)),
    )


def _warnings(hr: HelmRelease) -> list[str]:
    spec = hr.spec
    found = []
    unsupported = hr.unsupported_fields()
    if unsupported:
        found.append(f"fields not supported, ignored: {', '.join(unsupported)}")
    if spec.storage_namespace and spec.storage_namespace != hr.release_namespace:
        found.append(
            f"spec.storageNamespace {spec.storage_namespace}: helm's CLI keeps a release's "
            f"history in the release namespace; it is stored in {hr.release_namespace}"
        )
    if spec.install.crds_policy == "CreateReplace":
        found.append("spec.install.crds CreateReplace is not supported; CRDs are only created")
    if spec.upgrade.crds != "Skip":
        found.append(f"spec.upgrade.crds {spec.upgrade.crds} is not supported; helm skips CRDs")
    return found


def _revision(version: str, values_digest: str) -> str:
    """What a release runs, for lastAppliedRevision: chart version and values digest."""
    return f"{version}@values:{values_digest.removeprefix('sha256:')[:12]}"


async def compose_values(
    client: KubeClient, hr: HelmRelease, artifact: ChartArtifact
) -> dict[str, Any]:
    """valuesFiles, then valuesFrom in order, then values; raises ValuesError or
    LookupError naming what is missing."""
    layers: list[tuple[str, str, str | None]] = []
    chart_spec = hr.chart_spec
    for name in chart_spec.values_files if chart_spec else []:
        text = artifact.read_file(name)
        if text is None:
            if chart_spec is not None and chart_spec.ignore_missing_values_files:
                continue
            raise LookupError(f"values file {name} not found in chart {artifact.name}")
        layers.append((f"chart {artifact.name} {name}", text, None))
    namespace = hr.metadata.namespace
    for reference in hr.spec.values_from:
        where = f"{reference.kind} {namespace}/{reference.name}"
        found = await client.get("v1", reference.kind, reference.name, namespace)
        if found is None:
            if reference.optional:
                continue
            raise LookupError(f"valuesFrom: {where} not found")
        data = dict(found.get("data") or {})
        if reference.kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        if reference.values_key not in data:
            if reference.optional:
                continue
            raise LookupError(f"valuesFrom: key '{reference.values_key}' not found in {where}")
        key = reference.values_key
        layers.append((f"{where} key {key}", data[key], reference.target_path))
    return helm_values.compose(layers, hr.spec.values)


async def resolve_chart(ctx: ReleaseContext, hr: HelmRelease) -> ChartArtifact:
    chart_spec = hr.chart_spec
    if chart_spec is None:
        raise ChartSourceError("spec.chartRef is not supported; name the chart in spec.chart")
    reference = chart_spec.source_ref
    if reference.kind == "HelmRepository":
        key = NamespacedName(reference.namespace or hr.metadata.namespace, reference.name)
        return await ctx.charts.resolve(key, chart_spec.chart, chart_spec.version)
    if reference.kind == "GitRepository":
        return await ctx.git_chart(hr)
    raise ChartSourceError(f"charts from a {reference.kind} are not supported")


@dataclasses.dataclass
class _Run:
    """One reconcile's working state."""

    ctx: ReleaseContext
    unit: UnitDefinition
    memory: ReleaseMemory
    client: KubeClient
    helm: Helm
    warnings: list[str]
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    @property
    def hr(self) -> HelmRelease:
        return self.unit.release

    @property
    def label(self) -> str:
        return f"{self.hr.release_namespace}/{self.hr.release_name}"

    async def history(self) -> list[release.Revision]:
        found = await self.helm.history(self.hr.release_name, self.hr.release_namespace)
        self.memory.history = found
        return found

    async def helm_run(self, args: list[str], action: str, timeout: float) -> str:
        return await self.helm.run(args, action=action, release_name=self.label, timeout=timeout)


async def reconcile_release(
    ctx: ReleaseContext, unit: UnitDefinition, memory: ReleaseMemory, *, forced: bool = False
) -> Outcome:
    started = time.monotonic()
    client, helm = clients(ctx, unit.release)
    run = _Run(ctx, unit, memory, client, helm, _warnings(unit.release))
    try:
        outcome = await _reconcile(run, forced)
    except HelmError as error:
        outcome = Outcome(False, "ReconciliationFailed", str(error), "", warnings=run.warnings)
    except KubeError as error:
        outcome = Outcome(False, "ReconciliationFailed", error.message, "", warnings=run.warnings)
    outcome.events = run.events + outcome.events
    outcome.duration = time.monotonic() - started
    return outcome


async def _reconcile(run: _Run, forced: bool) -> Outcome:
    hr, memory, warnings = run.hr, run.memory, run.warnings
    attempted = ""
    try:
        artifact = await resolve_chart(run.ctx, hr)
    except ChartSourceError as error:
        stalled = hr.spec.chart_ref is not None
        return Outcome(
            False, "ArtifactFailed", str(error), attempted, stalled=stalled, warnings=warnings
        )
    try:
        values = await compose_values(run.client, hr, artifact)
    except (LookupError, helm_values.ValuesError) as error:
        return Outcome(False, "InitFailed", str(error), attempted, warnings=warnings)
    values_digest = helm_values.digest(values)
    attempted = _revision(artifact.version, values_digest)
    attempt = drift.desired_digest(
        {
            "chart": [artifact.name, artifact.version, artifact.digest],
            "values": values_digest,
            "spec": hr.spec.model_dump(mode="json", exclude={"suspend"}),
        }
    )
    if memory.attempt != attempt or forced:
        memory.reset(attempt)

    await _forget_moved_release(run)
    memory.name, memory.namespace = hr.release_name, hr.release_namespace
    history = await run.history()
    recovered = release.recovery(history)
    if recovered is not None:
        history = await _recover(run, recovered)

    newest = release.latest(history)
    if (
        newest is not None
        and newest.status == "deployed"
        and newest.is_chart(artifact.name, artifact.version)
        and await _values_match(run, values, values_digest)
    ):
        return await _in_sync(run, newest, artifact, values_digest)

    if memory.last_action is not None:
        remediation = _remediation(hr, memory.last_action)
        if release.retries_exhausted(remediation.retries, memory.failures(memory.last_action)):
            return Outcome(
                False,
                memory.last_reason or "RetriesExceeded",
                memory.last_message or f"{memory.last_action} retries exhausted",
                attempted,
                stalled=True,
                applied_revision=await _running(run, history, artifact.name),
                warnings=warnings,
            )
    return await _act(run, release.next_step(history), artifact, values, values_digest, attempted)


async def _values_match(run: _Run, values: Mapping[str, Any], values_digest: str) -> bool:
    """Whether the deployed release has these values (merged over its own with
    ``preserveValues``, as the upgrade would)."""
    current = await run.helm.values(run.hr.release_name, run.hr.release_namespace)
    if run.hr.spec.upgrade.preserve_values:
        return helm_values.digest(helm_values.merge(current, values)) == helm_values.digest(current)
    return helm_values.digest(current) == values_digest


async def _forget_moved_release(run: _Run) -> None:
    """The spec now names another release (releaseName or targetNamespace changed): the
    old one is uninstalled, as Flux does."""
    memory, hr = run.memory, run.hr
    if memory.name is None or (memory.name, memory.namespace) == (
        hr.release_name,
        hr.release_namespace,
    ):
        return
    old = f"{memory.namespace}/{memory.name}"
    async with memory.acting():
        try:
            await run.helm_run(
                commands.uninstall(hr, name=memory.name, namespace=memory.namespace),
                "uninstall",
                hr.spec.effective_timeout.total_seconds(),
            )
        except HelmError as error:
            run.warnings.append(f"could not uninstall the previous release {old}: {error.message}")
            return
    memory.drift = {}
    run.events.append(("Normal", "UninstallSucceeded", f"uninstalled previous release {old}"))


async def _recover(run: _Run, stuck: release.Recovery) -> list[release.Revision]:
    hr = run.hr
    timeout = hr.spec.effective_timeout.total_seconds()
    async with run.memory.acting():
        if stuck.target is not None:
            await run.helm_run(commands.rollback(hr, stuck.target.revision), "rollback", timeout)
        else:
            await run.helm_run(commands.uninstall(hr), "uninstall", timeout)
    message = stuck.describe(run.label)
    log.warning("%s", message, extra={"unit": run.unit.key})
    run.events.append(("Warning", "ReleaseRecovered", message))
    return await run.history()


async def _in_sync(
    run: _Run, newest: release.Revision, artifact: ChartArtifact, values_digest: str
) -> Outcome:
    attempted = _revision(artifact.version, values_digest)
    memory = run.memory
    memory.reset(memory.attempt)
    memory.values_digest = values_digest
    entries = await _refresh_baseline(run, newest.revision)
    await check_drift(run.ctx, run.unit, memory, run.client, events=run.events)
    action = "upgrade" if "Upgrade" in newest.description else "install"
    if "Rollback" in newest.description:
        action = "rollback"
    return Outcome(
        True,
        f"{action.capitalize()}Succeeded",
        f"Helm {action} succeeded for release {run.label}.v{newest.revision} with chart "
        f"{artifact.name}@{artifact.version}",
        attempted,
        applied=True,
        applied_revision=attempted,
        inventory=entries,
        warnings=run.warnings,
    )


async def _act(
    run: _Run,
    step: release.Step,
    artifact: ChartArtifact,
    values: Mapping[str, Any],
    values_digest: str,
    attempted: str,
) -> Outcome:
    hr, memory = run.hr, run.memory
    action = "upgrade" if step is release.Step.UPGRADE else "install"
    before = release.latest(memory.history)
    labels = release_labels(run.unit)
    renderer = post_renderer(labels)
    timeout = (
        (hr.spec.upgrade.timeout if action == "upgrade" else hr.spec.install.timeout)
        or hr.spec.effective_timeout
    ).total_seconds()
    async with memory.acting(), _values_file(run.ctx.scratch_dir, values) as values_file:
        if step is release.Step.REINSTALL:
            await run.helm_run(commands.uninstall(hr), "uninstall", timeout)
        if action == "install":
            args = commands.install(
                hr,
                artifact.path,
                values_file,
                replace=before is not None and step is release.Step.INSTALL,
                post_renderer=renderer,
            )
        else:
            args = commands.upgrade(hr, artifact.path, values_file, post_renderer=renderer)
        try:
            await run.helm_run(args, action, timeout)
        except HelmError as error:
            return await _failed(run, action, error, before, artifact, attempted)
        if hr.spec.test.enable:
            failure = await _test(run, action)
            if failure is not None:
                return await _failed(run, action, failure, before, artifact, attempted, test=True)
        history = await run.history()
        newest = release.latest(history)
        revision = newest.revision if newest else 0
        memory.reset(memory.attempt)
        memory.values_digest = values_digest
    entries = await _refresh_baseline(run, revision)
    message = (
        f"Helm {action} succeeded for release {run.label}.v{revision} with chart "
        f"{artifact.name}@{artifact.version}"
    )
    return Outcome(
        True,
        f"{action.capitalize()}Succeeded",
        message,
        attempted,
        applied=True,
        applied_revision=attempted,
        inventory=entries,
        warnings=run.warnings,
        counts={"applied": len(entries or [])},
    )


async def _test(run: _Run, action: str) -> HelmError | None:
    hr = run.hr
    timeout = (hr.spec.test.timeout or hr.spec.effective_timeout).total_seconds()
    run.memory.test_failure = None
    try:
        await run.helm_run(commands.test(hr), "test", timeout)
    except HelmError as error:
        remediation = _remediation(hr, action)
        ignore = remediation.ignore_test_failures
        if ignore if ignore is not None else hr.spec.test.ignore_failures:
            run.memory.test_failure = error.message
            run.warnings.append(f"helm test failed (ignored): {error.message}")
            return None
        return error
    return None


async def _failed(
    run: _Run,
    action: str,
    error: HelmError,
    before: release.Revision | None,
    artifact: ChartArtifact,
    attempted: str,
    *,
    test: bool = False,
) -> Outcome:
    """Count the failure, remediate as the spec says, and say all of it in one message."""
    hr, memory = run.hr, run.memory
    if action == "upgrade":
        memory.upgrade_failures += 1
    else:
        memory.install_failures += 1
    memory.last_action = action
    failures = memory.failures(action)
    remediation = _remediation(hr, action)
    exhausted = release.retries_exhausted(remediation.retries, failures)
    what = "test" if test else action
    reason = "TestFailed" if test else f"{action.capitalize()}Failed"
    message = (
        f"Helm {what} failed for release {run.label} with chart "
        f"{artifact.name}@{artifact.version}: {error.message}"
    )
    history = await run.history()
    newest = release.latest(history)
    # Only a revision this attempt wrote can be remediated: template and schema errors
    # stop helm before it touches anything, and the running release is left alone.
    touched = newest is not None and (before is None or newest.revision > before.revision)
    if touched and (not exhausted or remediation.remediates_last_failure):
        reason, remediated = await _remediate(run, action, remediation, history)
        message += f"; {remediated}"
    left = release.retries_left(remediation.retries, failures)
    if exhausted:
        message += f"; no retries left ({failures} failed {action} attempt(s))"
    else:
        message += f"; {'unlimited' if left is None else left} retries left"
    memory.last_reason, memory.last_message = reason, message
    history = await run.history()
    return Outcome(
        False,
        reason,
        message,
        attempted,
        stalled=exhausted,
        applied_revision=await _running(run, history, artifact.name),
        warnings=run.warnings,
    )


async def _remediate(
    run: _Run, action: str, remediation: Remediation, history: Sequence[release.Revision]
) -> tuple[str, str]:
    """Roll back or uninstall; the Ready reason and what was done."""
    hr = run.hr
    newest = release.latest(history)
    target = release.last_served(history, before=newest.revision if newest else None)
    if action == "upgrade" and remediation.strategy == "rollback" and target is not None:
        timeout = (hr.spec.rollback.timeout or hr.spec.effective_timeout).total_seconds()
        try:
            await run.helm_run(commands.rollback(hr, target.revision), "rollback", timeout)
        except HelmError as error:
            failed = f"rollback to revision {target.revision} failed: {error.message}"
            return "RollbackFailed", failed
        done = f"rolled back to revision {target.revision} ({target.chart})"
        run.events.append(("Normal", "RollbackSucceeded", f"{run.label}: {done}"))
        return "RollbackSucceeded", done
    timeout = (hr.spec.uninstall.timeout or hr.spec.effective_timeout).total_seconds()
    try:
        await run.helm_run(commands.uninstall(hr), "uninstall", timeout)
    except HelmError as error:
        return "UninstallFailed", f"uninstall failed: {error.message}"
    run.memory.drift = {}
    run.events.append(("Normal", "UninstallSucceeded", f"{run.label}: uninstalled"))
    return "UninstallSucceeded", "uninstalled the release"


async def _running(run: _Run, history: Sequence[release.Revision], chart: str) -> str | None:
    """lastAppliedRevision after a failure: what the deployed revision (a rollback's
    copy of an older one, or the untouched previous one) runs; None when nothing is."""
    newest = release.latest(history)
    if newest is None or newest.status != "deployed":
        return None
    version = newest.chart.removeprefix(f"{chart}-")
    current = await run.helm.values(run.hr.release_name, run.hr.release_namespace)
    return _revision(version, helm_values.digest(current))


@contextlib.asynccontextmanager
async def _values_file(folder: Path, values: Mapping[str, Any]) -> Any:
    """The values as a private file for one helm run (they may hold secrets)."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="values-", suffix=".json", dir=folder)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(values, handle)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


async def _refresh_baseline(run: _Run, revision: int) -> list[InventoryEntry] | None:
    """The release's objects (its inventory) and, with drift detection on, what each
    should look like: the manifest as the API server normalizes it (a dry run). Done
    once per release revision and drift settings; None when nothing changed since."""
    ctx, hr, memory = run.ctx, run.hr, run.memory
    settings = hr.spec.drift_detection
    key = f"{revision}|{drift.desired_digest(settings.model_dump(mode='json'))}"
    if memory.baseline_for == key:
        return None
    text = await run.helm.manifest(hr.release_name, hr.release_namespace)
    try:
        manifest_objects = objects.parse_manifest(text, run.label)
    except ManifestError as error:
        run.warnings.append(f"cannot read the release manifest: {error}")
        return None
    problems: list[str] = []
    for obj in manifest_objects:
        metadata = obj.setdefault("metadata", {})
        try:
            namespaced = await ctx.applier.namespaced(obj)
        except KubeError as error:
            problems.append(f"{ObjectKey.from_manifest(obj)}: {error.message}")
            continue
        if namespaced and not metadata.get("namespace"):
            metadata["namespace"] = hr.release_namespace
    entries = inventory.inventory_of(manifest_objects)
    memory.drift = {}
    baseline: dict[ObjectKey, objects.ReleaseObject] = {}
    for obj in manifest_objects if settings.mode != "disabled" else []:
        try:
            normalized = await run.client.apply(
                obj, field_manager=DRY_RUN_FIELD_MANAGER, force=True, dry_run=True
            )
        except KubeError as error:
            problems.append(f"{ObjectKey.from_manifest(obj)}: {error.message}")
            continue
        found = objects.baseline(obj, normalized, rules=settings.ignore)
        baseline[found.key] = found
        await ctx.cache.ensure_watch(obj["apiVersion"], obj["kind"])
    memory.objects = baseline
    # Whatever could not be read is tried again on the next reconcile.
    memory.baseline_for = None if problems else key
    if problems:
        shown = "; ".join(problems[:3])
        run.warnings.append(f"drift baseline incomplete, retried next time: {shown}")
        log.warning("%s: drift baseline incomplete: %s", run.label, shown)
    return entries


@dataclasses.dataclass
class DriftFinding:
    key: ObjectKey
    changes: list[str]
    who: str | None
    corrected: bool


async def check_drift(
    ctx: ReleaseContext,
    unit: UnitDefinition,
    memory: ReleaseMemory,
    client: KubeClient | None = None,
    *,
    only: ObjectKey | None = None,
    events: list[tuple[str, str, str]] | None = None,
) -> list[DriftFinding]:
    """Compare the release's objects (or one) with the cluster; correct them when drift
    detection is enabled, report them when it warns. Events go to ``events``."""
    hr = unit.release
    mode = hr.spec.drift_detection.mode
    if mode == "disabled" or not memory.objects:
        return []
    client = client or clients(ctx, hr)[0]
    findings: list[DriftFinding] = []
    async with memory.lock:
        targets = [memory.objects[only]] if only in memory.objects else []
        if only is None:
            targets = list(memory.objects.values())
        for target in targets:
            live = ctx.cache.get(target.key)
            if live is None:
                live = await _get(client, target)
            if not target.drifted(live):
                memory.drift.pop(target.key, None)
                continue
            changed = target.changes(live) if live is not None else []
            changes = (
                ["object deleted"]
                if live is None
                else [str(c) for c in changed][:5] or ["fields changed"]
            )
            who = (
                managedfields.who_changed(
                    live,
                    [c.path for c in changed],
                    exclude=[HELM_FIELD_MANAGER, unit_api.FIELD_MANAGER],
                )
                if live is not None
                else None
            )
            corrected = False
            if mode == "enabled":
                try:
                    await _correct(client, target, live)
                    corrected = True
                except KubeError as error:
                    log.warning("could not correct drift of %s: %s", target.key, error.message)
            findings.append(DriftFinding(target.key, changes, who, corrected))
            by = f" by {who}" if who else ""
            if corrected:
                memory.drift.pop(target.key, None)
                message = f"{target.key} changed{by}; reverted: {'; '.join(changes)}"
                if events is not None:
                    events.append(("Normal", "DriftCorrected", message))
            else:
                message = f"{target.key} changed{by}: {'; '.join(changes)}"
                if memory.drift.get(target.key) != message and events is not None:
                    events.append(("Warning", "DriftDetected", message))
                memory.drift[target.key] = message
    return findings


async def _get(client: KubeClient, target: objects.ReleaseObject) -> Object | None:
    manifest = target.manifest
    try:
        return await client.get(
            manifest["apiVersion"], manifest["kind"], target.key.name, target.key.namespace or None
        )
    except NotFound:
        return None


async def _correct(
    client: KubeClient, target: objects.ReleaseObject, live: Mapping[str, Any] | None
) -> None:
    """Put the object back as helm wrote it: re-create it, or JSON-patch the drifted
    fields, under helm's field manager (never a server-side apply by the agent)."""
    manifest = target.manifest
    info = await client.resource(manifest["apiVersion"], manifest["kind"])
    namespace = target.key.namespace or None
    query = {"fieldManager": HELM_FIELD_MANAGER}
    if live is None:
        await client.request(
            "POST",
            info.path(namespace),
            body=manifest,
            query=query,
            what=f"re-create {target.key}",
        )
        return
    patch = target.correction(live)
    if not patch:
        return
    await client.request(
        "PATCH",
        info.path(namespace, target.key.name),
        body=patch,
        query=query,
        content_type="application/json-patch+json",
        what=f"correct drift of {target.key}",
    )


async def uninstall_release(
    ctx: ReleaseContext, unit: UnitDefinition, memory: ReleaseMemory
) -> str | None:
    """The HelmRelease left Git: uninstall its release. Returns a problem, or None."""
    hr = unit.release
    _, helm = clients(ctx, hr)
    name = memory.name or hr.release_name
    namespace = memory.namespace or hr.release_namespace
    async with memory.acting():
        try:
            await helm.run(
                commands.uninstall(hr, name=name, namespace=namespace),
                action="uninstall",
                release_name=f"{namespace}/{name}",
                timeout=(hr.spec.uninstall.timeout or hr.spec.effective_timeout).total_seconds(),
            )
        except HelmError as error:
            return error.message
    memory.drift = {}
    return None
