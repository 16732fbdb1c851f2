"""The agent: keeps every unit of one cluster reconciled with Git, and heals drift.

Sources are polled on their interval; a new revision queues the units that use it.
Workers take units from a work queue, run the pipeline of the unit's kind (a
Kustomization's render-and-apply, a HelmRelease's helm actions), write the unit's status
once, and requeue it (interval when Ready, retryInterval with backoff when not, nothing
when a Kustomization is stalled until a new revision arrives). Every managed object is
watched; an out-of-band change is reverted at once and recorded as drift: re-applied for
a Kustomization, patched back to what helm wrote for a HelmRelease (when its drift
detection asks for it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc

from agent import boundary, releases
from agent import status as unit_status
from agent import units as unit_defs
from agent.applier import Applier, ApplyReport
from agent.events import EventFilter
from agent.livecache import LiveCache
from agent.metrics import AgentMetrics
from agent.reconciler import Outcome, ReconcileContext, reconcile_unit, unit_labels
from agent.releases import ReleaseContext, ReleaseMemory
from agent.renderer import MAX_BATCH, Renderer
from agent.settings import AgentSettings
from agent.sources import Sources
from agent.store import UnitStore
from agent.units import HELMRELEASE, KUSTOMIZATION, ROOT_KEY, ROOT_SOURCE, UnitDefinition, UnitKey
from agent.workqueue import WorkQueue
from fleet.api import unit as unit_api
from fleet.core import drift, managedfields, plan
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey
from fleet.helm import charts
from fleet.helm.charts import ChartArtifact, ChartRepositories, ChartSourceError
from fleet.helm.cli import Helm, KubeAccess
from fleet.kube import KubeClient, KubeError
from fleet.models import GitRepository, HelmRelease, HelmRepository, NamespacedName
from fleet.render import kustomize

log = logging.getLogger(__name__)

Object = dict[str, Any]

RENDER_AHEAD = MAX_BATCH - 1
"""Queued units whose renders come along with one that renders (one kustomize process)."""
UNIT_MANAGED_LABEL = "app.kubernetes.io/managed-by"


@dataclasses.dataclass
class UnitState:
    """Everything the agent remembers about one unit between reconciles."""

    definition: UnitDefinition
    status: unit_status.UnitStatus = dataclasses.field(default_factory=unit_status.UnitStatus)
    """What the unit's status says; replaced by ``status.fold`` after each reconcile."""
    stalled_on: str | None = None
    """``revision|spec digest`` of a terminal failure: not retried until either changes."""
    failures: int = 0
    suspended_by_request: bool = False
    requested: str | None = None
    """A requestedAt not yet picked up: the next reconcile to start reports it handled, so
    ``fleet reconcile`` never takes a reconcile that began before its request for its own."""
    fetching_for: str | None = None
    """A ``--with-source`` requestedAt whose source fetch is still running."""
    force_next: bool = False
    release: ReleaseMemory = dataclasses.field(default_factory=ReleaseMemory)
    """A HelmRelease unit's release: failure counters, history, drift baseline."""
    save_lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)
    lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)
    """Held for a whole reconcile, and by a removal: a unit being removed is never
    reconciled at the same time (which could re-create what the removal prunes)."""

    @property
    def key(self) -> UnitKey:
        return self.definition.key

    @property
    def ready(self) -> bool:
        return self.status.ready

    @property
    def inventory(self) -> tuple[InventoryEntry, ...]:
        return self.status.inventory

    @property
    def suspended(self) -> bool:
        return self.definition.suspend or self.suspended_by_request

    @property
    def ready_at_its_revision(self) -> bool:
        """Flux's test for a dependency: Ready, and not half way to a newer revision."""
        return self.status.ready_at_its_revision


@dataclasses.dataclass(frozen=True)
class UnitIndex:
    """Lookups over the unit set, rebuilt only when the set changes: scanning every unit
    after each reconcile is quadratic in the fleet's size."""

    children: Mapping[UnitKey, list[UnitKey]]
    dependents: Mapping[UnitKey, list[UnitKey]]
    by_resource_name: Mapping[str, UnitKey]
    problems: plan.DependencyProblems[UnitKey]
    """Cycles and missing dependencies."""

    @classmethod
    def of(cls, units: Mapping[UnitKey, UnitState]) -> UnitIndex:
        children: dict[UnitKey, list[UnitKey]] = {}
        dependents: dict[UnitKey, list[UnitKey]] = {}
        for key, state in units.items():
            if state.definition.parent is not None:
                children.setdefault(state.definition.parent, []).append(key)
            for dependency in state.definition.depends_on:
                dependents.setdefault(dependency, []).append(key)
        graph = {key: state.definition.depends_on for key, state in units.items()}
        return cls(
            children,
            dependents,
            {state.definition.resource_name: key for key, state in units.items()},
            plan.find_dependency_problems(graph),
        )


class Agent:
    def __init__(self, settings: AgentSettings, client: KubeClient) -> None:
        self.settings = settings
        self.client = client
        self.metrics = AgentMetrics()
        self.cache = LiveCache(client, self._on_live_change)
        self.unit_cache = LiveCache(
            client,
            self._on_unit_change,
            label_selector=f"{UNIT_MANAGED_LABEL}=fleet-agent",
            namespace=settings.namespace,
            keep=_unit_metadata,
        )
        self.applier = Applier(client, self.cache, concurrency=settings.apply_concurrency)
        self.store = UnitStore(client, settings.namespace)
        self.event_filter = EventFilter()
        self.sources = Sources(settings.agent_work_dir, client)
        self.queue: WorkQueue[UnitKey] = WorkQueue()
        self.units: dict[UnitKey, UnitState] = {}
        self.context = ReconcileContext(
            client,
            self.applier,
            self.cache,
            Renderer(settings.render_workers),
            default_namespace=settings.default_namespace,
            agent=settings.namespace,
            upcoming=self._upcoming,
        )
        helm_dir = settings.agent_work_dir / "helm"
        helm = Helm(helm_dir / "home", KubeAccess(settings.kubeconfig, settings.context))
        self.charts = ChartRepositories(helm_dir / "charts", client, helm)
        self.release_context = ReleaseContext(
            client,
            helm,
            self.charts,
            self.applier,
            self.cache,
            self._git_chart,
            helm_dir / "scratch",
        )
        self._stored: dict[str, Object] = {}
        self._units_version = 0
        self._index: tuple[int, UnitIndex] | None = None
        self._source_wakeups: dict[NamespacedName, anyio.Event] = {}
        self._polled: set[NamespacedName] = set()
        self._tasks: anyio.abc.TaskGroup | None = None
        self.started = anyio.Event()

    async def run(self) -> None:
        """Run until cancelled."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            await tasks.start(self.cache.run)
            await tasks.start(self.unit_cache.run)
            await self.store.install()
            self._stored = await self.store.load()
            root = UnitDefinition(
                unit_defs.root_kustomization(self.settings.cluster_path, self.settings.interval),
                None,
                self.settings.cluster_path,
            )
            self._adopt(root)
            self.sources.track(
                ROOT_SOURCE,
                self.settings.repo,
                self.settings.ref,
                self.settings.auth,
                self.settings.interval.total_seconds(),
            )
            await self.unit_cache.ensure_watch(unit_api.API_VERSION, unit_api.KIND)
            self._start_polling(ROOT_SOURCE)
            for _ in range(self.settings.workers):
                tasks.start_soon(self._worker)
            self.started.set()
            await anyio.sleep_forever()

    def request_reconcile(self, unit: UnitKey | None = None, *, with_source: bool = False) -> None:
        """Reconcile a unit (or all) now; optionally fetch its source first (webhooks)."""
        if with_source:
            for source in self._polled:
                self._wake_source(source)
        for key in [unit] if unit else list(self.units):
            if key in self.units:
                self.units[key].force_next = True
                self.queue.add(key)

    def _adopt(self, definition: UnitDefinition) -> UnitState:
        """Track a unit, picking up what a previous agent stored for it."""
        existing = self.units.get(definition.key)
        if existing is not None:
            changed = existing.definition.model != definition.model
            existing.definition = definition
            if changed:
                existing.stalled_on = None
                self._units_changed()
                self.queue.add(definition.key)
            return existing
        state = UnitState(definition)
        stored = self._stored.get(definition.resource_name)
        if stored is not None:
            status = stored.get("status") or {}
            state.status = unit_status.UnitStatus.from_status(status)
            annotations = stored["metadata"].get("annotations") or {}
            state.suspended_by_request = annotations.get(unit_api.SUSPEND_ANNOTATION) == "true"
            state.release = ReleaseMemory.from_status(status)
        self.units[definition.key] = state
        self._units_changed()
        self.queue.add(definition.key)
        return state

    def _start_polling(self, key: NamespacedName) -> None:
        if key in self._polled:
            return
        self._polled.add(key)
        assert self._tasks is not None
        self._tasks.start_soon(self._poll_source, key)

    def _wake_source(self, key: NamespacedName) -> None:
        event = self._source_wakeups.get(key)
        if event is not None:
            event.set()

    async def _poll_source(self, key: NamespacedName) -> None:
        while (tracked := self.sources.get(key)) is not None:
            await self._fetch(key)
            wakeup = self._source_wakeups[key] = anyio.Event()
            with anyio.move_on_after(tracked.interval):
                await wakeup.wait()
        self._polled.discard(key)

    async def _fetch(self, key: NamespacedName) -> None:
        """Fetch a source; queue its units when the revision moved or the fetch failed."""
        started = time.monotonic()
        result = await self.sources.fetch(key)
        label = str(key)
        self.metrics.fetch_duration.labels(label).observe(time.monotonic() - started)
        if result is None:
            self.metrics.fetch_errors.labels(label).inc()
        if result is None or result.changed:
            for state in list(self.units.values()):
                if self._source_key(state.definition) == key:
                    self.queue.add(state.key)

    def _source_key(self, definition: UnitDefinition) -> NamespacedName | None:
        """The Git source a unit reads: a Kustomization's tree, a HelmRelease's chart
        folder (None for a chart from a HelmRepository)."""
        if isinstance(definition.model, HelmRelease):
            chart = definition.model.chart_spec
            if chart is None or chart.source_ref.kind != "GitRepository":
                return None
            namespace, name = chart.source_ref.namespace, chart.source_ref.name
        else:
            reference = definition.model.spec.source_ref
            if reference is None or definition.key == ROOT_KEY:
                return ROOT_SOURCE
            namespace, name = reference.namespace, reference.name
        key = NamespacedName(namespace or definition.key.namespace, name)
        if self.sources.get(key) is None and name == unit_defs.FLUX_ROOT_SOURCE_NAME:
            return ROOT_SOURCE
        return key

    async def _git_chart(self, release: HelmRelease) -> ChartArtifact:
        """A HelmRelease's chart folder in the checkout of its GitRepository."""
        chart = release.chart_spec
        assert chart is not None
        definition = self.units[UnitKey(HELMRELEASE, *_parts(release.key))].definition
        source_key = self._source_key(definition)
        tracked = self.sources.get(source_key) if source_key else None
        if source_key is None or tracked is None:
            raise ChartSourceError(f"source GitRepository '{source_key}' not found")
        if tracked.revision is None:
            raise ChartSourceError(f"source {tracked.url} has no revision yet: {tracked.error}")
        try:
            checkout = await self.sources.checkout(source_key, tracked.revision)
        except kustomize.RenderError as error:
            raise ChartSourceError(str(error)) from error
        build = tracked.revision.commit[:12] if chart.reconcile_strategy == "Revision" else None
        label = f"GitRepository/{source_key}"
        return await anyio.to_thread.run_sync(
            lambda: charts.chart_from_directory(checkout, chart.chart, label, build=build)
        )

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._reconcile(key)
            except Exception:  # writing the outcome failed: reconciles themselves never raise
                log.exception("reconcile crashed", extra={"unit": key})
                state = self.units.get(key)
                failures = state.failures if state is not None else 1
                retry = state.definition.retry_interval.total_seconds() if state else 10.0
                self.queue.add_after(key, boundary.retry_delay(retry, failures))
            finally:
                self.queue.done(key)

    @property
    def index(self) -> UnitIndex:
        """Children, dependents, names and dependency problems of the current units."""
        if self._index is None or self._index[0] != self._units_version:
            self._index = (self._units_version, UnitIndex.of(self.units))
        return self._index[1]

    def _upcoming(self, definition: UnitDefinition) -> list[UnitDefinition]:
        """Kustomizations queued next that read the same source as ``definition``."""
        source = self._source_key(definition)
        found = []
        for key in self.queue.upcoming(4 * RENDER_AHEAD):
            state = self.units.get(key)
            if (
                state is not None
                and key.kind == KUSTOMIZATION
                and not state.suspended
                and self._source_key(state.definition) == source
            ):
                found.append(state.definition)
                if len(found) == RENDER_AHEAD:
                    break
        return found

    def _units_changed(self) -> None:
        self._units_version += 1

    async def _reconcile(self, key: UnitKey) -> None:
        state = self.units.get(key)
        if state is None:
            return
        async with state.lock:
            if self.units.get(key) is not state:
                return  # removed while this reconcile waited for its turn
            await self._reconcile_locked(state)

    async def _reconcile_locked(self, state: UnitState) -> None:
        forced, state.force_next = state.force_next, False
        if state.requested:
            state.status = unit_status.handled(state.status, state.requested)
            state.requested = None
        if state.suspended:
            await self._save(state)
            return
        revision = state.status.last_attempted_revision or ""
        if state.definition.kind == HELMRELEASE:
            run = self._reconcile_release(state, forced)
        else:
            run = self._reconcile_kustomization(state, forced)
        outcome = await boundary.guarded(lambda: run, revision=revision, unit=state.key)
        if outcome is not None:
            await self._finish(state, outcome)

    async def _blocked(self, state: UnitState, revision: str) -> Outcome | bool:
        """dependsOn: a broken graph stalls the unit (its outcome), an unready dependency
        holds it back (with a recheck; True); False when the unit may run now."""
        key, definition = state.key, state.definition
        problem = self.index.problems.message(key)
        if problem:
            return Outcome(False, "DependencyInvalid", problem, revision, stalled=True)
        blocking = [d for d in definition.depends_on if not self.units[d].ready_at_its_revision]
        if blocking:
            names = ", ".join(f"'{d}'" for d in blocking)
            message = f"dependency {names} is not ready"
            state.status = unit_status.waiting(state.status, "DependencyNotReady", message)
            await self._save(state)
            self.queue.add_after(key, self.settings.dependency_requeue.total_seconds())
            return True
        return False

    def _stall_marker(self, state: UnitState, revision: str) -> str:
        return f"{revision}|{state.definition.digest}"

    async def _reconcile_release(self, state: UnitState, forced: bool) -> Outcome | None:
        # A HelmRelease is never skipped as stalled here: its pipeline compares the
        # desired state (which a new chart version or a values ConfigMap can change
        # without any commit) with the one its failures were counted against.
        blocked = await self._blocked(state, state.status.last_attempted_revision or "")
        if blocked is not False:
            return blocked if isinstance(blocked, Outcome) else None
        return await releases.reconcile_release(
            self.release_context, state.definition, state.release, forced=forced
        )

    async def _reconcile_kustomization(self, state: UnitState, forced: bool) -> Outcome | None:
        """The outcome of one reconcile; None when there was nothing to do (stalled at
        this revision, or waiting for a dependency)."""
        definition = state.definition
        source_key = self._source_key(definition)
        assert source_key is not None
        tracked = self.sources.get(source_key)
        if tracked is None:
            message = f"source GitRepository '{source_key}' not found"
            return self._failure(state, "ArtifactFailed", message)
        revision = tracked.revision
        if revision is None:
            message = f"source {tracked.url} has no revision yet: {tracked.error or 'fetching'}"
            outcome = self._failure(state, "ArtifactFailed", message)
            outcome.progressing = tracked.error is None
            return outcome
        marker = self._stall_marker(state, revision.display)
        if state.stalled_on == marker and not forced:
            return None
        blocked = await self._blocked(state, revision.display)
        if blocked is not False:
            return blocked if isinstance(blocked, Outcome) else None
        try:
            checkout = await self.sources.checkout(source_key, revision)
        except kustomize.RenderError as error:
            # A tree with a symlink leaving it fails every unit of it; retrying won't help.
            return Outcome(False, "ArtifactFailed", str(error), revision.display, stalled=True)
        return await reconcile_unit(
            self.context, definition, checkout, revision.display, list(state.inventory)
        )

    def _failure(
        self, state: UnitState, reason: str, message: str, *, stalled: bool = False
    ) -> Outcome:
        revision = state.status.last_attempted_revision or ""
        return Outcome(False, reason, message, revision, stalled=stalled)

    async def _finish(self, state: UnitState, outcome: Outcome) -> None:
        """Fold an outcome into the unit's status, write it once, record what changed as
        Events, requeue."""
        key = state.key
        definition = state.definition
        was_ready = state.ready
        before = state.status.condition(unit_status.READY)
        repeated = before is not None and (before.reason, before.message) == (
            outcome.reason,
            outcome.message,
        )
        state.status = unit_status.fold(state.status, outcome)
        # A stalled Kustomization waits for a new revision or spec; a HelmRelease's
        # desired state can change without either, so it has no marker.
        stalled_at = outcome.revision or state.status.last_attempted_revision or ""
        state.stalled_on = (
            self._stall_marker(state, stalled_at)
            if outcome.stalled and definition.kind == KUSTOMIZATION
            else None
        )

        if outcome.applied and outcome.split is not None:
            # Sources first: a child that reconciles at once must find its source.
            await self._sync_sources(outcome.split.sources, outcome.split.helm_repositories)
            await self._sync_children(state, outcome.split.units)

        series = self.metrics.unit(_labels(key))
        series.observe_reconcile(outcome.duration)
        series.ready = 1 if outcome.ready else 0
        series.inventory = len(state.inventory)
        series.applied += outcome.counts.get("applied", 0)
        series.pruned += outcome.counts.get("pruned", 0)

        extra = {"unit": key, "revision": outcome.revision}
        for type_, reason, message in outcome.events:
            await self.store.record_event(definition.resource_name, type_, reason, message)
            if reason == "DriftCorrected":
                self._count_drift(state)
        if outcome.ready:
            state.failures = 0
            if not was_ready or outcome.counts.get("applied") or outcome.counts.get("pruned"):
                log.info("%s (%s)", outcome.message, _counts(outcome.counts), extra=extra)
                await self._record_result(state, "Normal", outcome.reason, outcome.message)
        else:
            state.failures += 1
            # A stalled HelmRelease is looked at every interval; say it once.
            log.log(
                logging.DEBUG if repeated or outcome.progressing else logging.WARNING,
                "%s: %s",
                outcome.reason,
                outcome.message,
                extra=extra,
            )
            if outcome.progressing:
                await self._record_result(state, "Normal", "Progressing", outcome.message)
            else:
                await self._record_result(state, "Warning", outcome.reason, outcome.message)
        delay = boundary.next_run(
            outcome,
            failures=state.failures,
            interval=definition.interval.total_seconds(),
            retry_interval=definition.retry_interval.total_seconds(),
            recheck_stalled=definition.kind == HELMRELEASE,
        )
        if delay != math.inf:
            self.queue.add_after(key, delay)
        await self._save(state)
        if state.ready_at_its_revision:
            for dependent in self.index.dependents.get(key, ()):
                other = self.units.get(dependent)
                if other is not None and not other.ready_at_its_revision:
                    self.queue.add(dependent)

    async def _record_result(self, state: UnitState, type_: str, reason: str, message: str) -> None:
        """An Event for a reconcile's result, when it says something new (agent/events.py)."""
        name = state.definition.resource_name
        if self.event_filter.admit(name, type_, reason, message):
            await self.store.record_event(name, type_, reason, message)

    async def _sync_children(self, parent: UnitState, children: list[UnitDefinition]) -> None:
        unit_defs.check_unique_children(children)
        for child in children:
            self._adopt(child)
        current = {c.key for c in children}
        orphans = [s for s in self._children_of(parent) if s.key not in current]
        for orphan in orphans:
            if parent.definition.kustomization.spec.prune:
                await self._remove_unit(orphan)
            else:
                self._stop_managing(orphan)

    def _stop_managing(self, state: UnitState) -> None:
        """Leave a unit (and the units it defined) and everything they own in place."""
        for child in self._children_of(state):
            self._stop_managing(child)
        self.units.pop(state.key, None)
        self.context.renders.pop(state.key, None)
        self.metrics.forget_unit(_labels(state.key))
        self._units_changed()

    def _children_of(self, state: UnitState) -> list[UnitState]:
        return [self.units[k] for k in self.index.children.get(state.key, ()) if k in self.units]

    def unit_named(self, resource_name: str) -> UnitState | None:
        """The unit whose Unit object has this name."""
        key = self.index.by_resource_name.get(resource_name)
        return self.units.get(key) if key is not None else None

    async def _remove_unit(self, state: UnitState) -> None:
        """A unit left Git: delete what it owns (per its prune and deletionPolicy, or by
        uninstalling its release), then it. The units it defined go first, as Flux's
        garbage collection of their Kustomization objects would take them."""
        async with state.lock:  # waits for a reconcile of it in flight, then none starts
            if self.units.get(state.key) is not state:
                return
            for child in self._children_of(state):
                prune = state.definition.kind == HELMRELEASE or (
                    state.definition.kustomization.spec.prune
                )
                if prune:
                    await self._remove_unit(child)
                else:
                    self._stop_managing(child)
            await self._remove_own_objects(state)

    async def _remove_own_objects(self, state: UnitState) -> None:
        if state.definition.kind == HELMRELEASE:
            problem = await releases.uninstall_release(
                self.release_context, state.definition, state.release
            )
            if problem:
                log.warning("uninstalling %s failed: %s", state.key, problem)
            await self._forget_unit(state)
            return
        spec = state.definition.kustomization.spec
        policy = spec.deletion_policy
        delete_objects = policy == "Delete" or (
            policy in ("MirrorPrune", "WaitForTermination") and spec.prune
        )
        if delete_objects and state.inventory:
            report = await self.applier.prune(
                self.client,
                list(reversed(state.inventory)),
                unit_labels=unit_labels(state.definition),
            )
            if report.failures:
                log.warning(
                    "removing unit %s left objects behind: %s",
                    state.key,
                    report.failures,
                    extra={"unit": state.key},
                )
        await self._forget_unit(state)

    async def _forget_unit(self, state: UnitState) -> None:
        del self.units[state.key]
        self.context.renders.pop(state.key, None)
        self.metrics.forget_unit(_labels(state.key))
        self._units_changed()
        try:
            await self.store.delete(state.definition.resource_name)
        except KubeError as error:
            log.warning("could not delete Unit %s: %s", state.definition.resource_name, error)

    async def _sync_sources(
        self, repositories: list[GitRepository], helm_repositories: list[HelmRepository]
    ) -> None:
        for repository in repositories:
            try:
                await self.sources.define(repository)
            except Exception as error:  # reported on the units that reference it
                log.warning("cannot follow GitRepository %s: %s", repository.key, error)
                continue
            self._start_polling(repository.key)
        for helm_repository in helm_repositories:
            try:
                await self.charts.define(helm_repository)
            except ChartSourceError as error:  # reported on the releases that use it
                log.warning("cannot follow HelmRepository %s: %s", helm_repository.key, error)

    def _status(self, state: UnitState) -> dict[str, Any]:
        status = state.status.to_status()
        if state.definition.kind == HELMRELEASE:
            status["release"] = state.release.to_status(state.definition.release)
        if state.key == ROOT_KEY:
            tracked = self.sources.get(ROOT_SOURCE)
            if tracked is not None:
                status["source"] = {
                    "url": tracked.url,
                    "revision": tracked.revision.display if tracked.revision else None,
                    "ready": tracked.error is None,
                    "message": tracked.error or "fetched",
                }
        return {k: v for k, v in status.items() if v is not None}

    def _spec(self, state: UnitState) -> dict[str, Any]:
        definition = state.definition
        common = {
            "kind": definition.kind,
            "namespace": definition.key.namespace,
            "name": definition.key.name,
            "parent": str(definition.parent) if definition.parent else None,
            "file": definition.file,
            "interval": str(definition.interval),
            "suspend": state.suspended,
            "dependsOn": [str(d) for d in definition.depends_on],
        }
        if isinstance(definition.model, HelmRelease):
            return common | _release_spec(definition.model, self._source_key(definition))
        spec = definition.model.spec
        return common | {
            "path": spec.path,
            "source": str(self._source_key(definition)),
            "prune": spec.prune,
            "wait": spec.wait,
        }

    async def _save(self, state: UnitState) -> None:
        labels = {
            UNIT_MANAGED_LABEL: "fleet-agent",
            unit_api.UNIT_NAMESPACE_LABEL: state.key.namespace,
            unit_api.UNIT_NAME_LABEL: state.key.name,
        }
        if state.key.kind != KUSTOMIZATION:
            labels[unit_api.UNIT_KIND_LABEL] = state.key.kind
        self.metrics.unit(_labels(state.key)).suspended = 1 if state.suspended else 0
        # One write at a time per unit: a drift correction and a reconcile finishing
        # together must not land in the wrong order and leave the older status behind.
        async with state.save_lock:
            try:
                await self.store.save(
                    state.definition.resource_name, self._spec(state), labels, self._status(state)
                )
            except KubeError as error:
                log.warning("could not write status: %s", error, extra={"unit": state.key})

    async def _on_live_change(self, event: str, key: ObjectKey, live: Object) -> None:
        """A watched object changed: if someone else changed what we applied, revert it."""
        labels = (live.get("metadata") or {}).get("labels") or {}
        owner = UnitKey(
            labels.get(unit_api.UNIT_KIND_LABEL, KUSTOMIZATION),
            labels.get(unit_api.UNIT_NAMESPACE_LABEL, ""),
            labels.get(unit_api.UNIT_NAME_LABEL, ""),
        )
        state = self.units.get(owner)
        if state is None or state.suspended:
            return
        if owner.kind == HELMRELEASE:
            if key in state.release.objects:
                assert self._tasks is not None
                self._tasks.start_soon(self._check_release_object, state, key)
            return
        if key in self.applier.in_flight:
            return
        remembered = self.applier.state.get(key)
        if remembered is None:
            return  # not (or no longer) applied by this agent: being pruned, or not yet applied
        if event != "DELETED" and remembered.matches(live):
            return
        desired = remembered.desired
        seen = time.monotonic()
        changed = [] if event == "DELETED" else list(drift.changed_fields(live, desired))
        changes = ["object deleted"] if event == "DELETED" else [str(c) for c in changed][:5]
        # The managers of the changed fields (``kubectl`` after a scale), not whoever
        # wrote the object last (often the controller manager, about something else).
        who = (
            None
            if event == "DELETED"
            else managedfields.who_changed(
                live, [c.path for c in changed], exclude=[unit_api.FIELD_MANAGER]
            )
        )
        assert self._tasks is not None
        self._tasks.start_soon(self._heal, state, key, changes, who, seen)

    async def _heal(
        self,
        state: UnitState,
        key: ObjectKey,
        changes: list[str],
        who: str | None,
        seen: float,
    ) -> None:
        # Take what is remembered now, not at the event: a reconcile may have applied a
        # newer revision of the object since, and that one must win.
        remembered = self.applier.state.get(key)
        if remembered is None or key in self.applier.in_flight:
            return
        desired = remembered.desired
        client = self.client
        spec = state.definition.kustomization.spec
        if spec.service_account_name:
            client = client.as_service_account(state.key.namespace, spec.service_account_name)
        report = ApplyReport()
        try:
            await self.applier.apply_one(
                client, desired, force=spec.force, report=report, ignore=remembered.ignore
            )
        except KubeError as error:
            log.warning("could not revert drift of %s: %s", key, error, extra={"unit": state.key})
            return
        if not report.applied:
            return
        self.metrics.heal_duration.observe(time.monotonic() - seen)
        self._count_drift(state)
        by = f" by {who}" if who else ""
        message = f"{key} changed{by}; reverted: {'; '.join(changes) or 'fields changed'}"
        log.info("drift corrected: %s", message, extra={"unit": state.key, "object": key})
        await self.store.record_event(
            state.definition.resource_name, "Normal", "DriftCorrected", message
        )
        await self._save(state)

    def _count_drift(self, state: UnitState) -> None:
        self.metrics.unit(_labels(state.key)).drift_corrections += 1
        state.status = unit_status.drifted(state.status)

    async def _check_release_object(self, state: UnitState, key: ObjectKey) -> None:
        """A watched object of a release changed: correct or report it per driftDetection."""
        if state.release.busy:
            return  # helm is acting on the release: these are its own writes
        seen = time.monotonic()
        events: list[tuple[str, str, str]] = []
        drift_before = dict(state.release.drift)
        try:
            findings = await releases.check_drift(
                self.release_context, state.definition, state.release, only=key, events=events
            )
        except KubeError as error:
            log.warning("drift check of %s failed: %s", key, error, extra={"unit": state.key})
            return
        for type_, reason, message in events:
            log.info("%s: %s", reason, message, extra={"unit": state.key, "object": key})
            await self.store.record_event(state.definition.resource_name, type_, reason, message)
        if any(f.corrected for f in findings):
            self.metrics.heal_duration.observe(time.monotonic() - seen)
            self._count_drift(state)
        if findings or drift_before != state.release.drift:
            await self._save(state)

    async def _on_unit_change(self, event: str, key: ObjectKey, unit: Object) -> None:
        """A person asked something of a unit through its annotations."""
        if event == "DELETED":
            return
        annotations = unit["metadata"].get("annotations") or {}
        unit_key = unit_defs.key_of_unit(unit)
        state = self.units.get(unit_key)
        if state is None:
            return
        suspended = annotations.get(unit_api.SUSPEND_ANNOTATION) == "true"
        if suspended != state.suspended_by_request:
            state.suspended_by_request = suspended
            log.info("unit %s", "suspended" if suspended else "resumed", extra={"unit": unit_key})
            self.queue.add(unit_key)
        requested = annotations.get(unit_api.REQUESTED_AT_ANNOTATION)
        if requested and requested not in (
            state.status.last_handled_reconcile_at,
            state.requested,
            state.fetching_for,
        ):
            if annotations.get(unit_api.WITH_SOURCE_ANNOTATION) == "true":
                state.fetching_for = requested
                assert self._tasks is not None
                self._tasks.start_soon(self._fetch_then_reconcile, state, requested)
            else:
                state.requested = requested
                state.force_next = True
                self.queue.add(unit_key)

    async def _fetch_then_reconcile(self, state: UnitState, requested: str) -> None:
        """``fleet reconcile --with-source``: fetch the unit's source first, so the reconcile
        sees a commit pushed just before the request, as Flux's ``--with-source`` does."""
        source_key = self._source_key(state.definition)
        if source_key is not None and self.sources.get(source_key) is not None:
            await self._fetch(source_key)
        state.fetching_for = None
        state.requested = requested
        state.force_next = True
        self.queue.add(state.key)


def _parts(key: NamespacedName) -> tuple[str, str]:
    return key.namespace, key.name


def _labels(key: UnitKey) -> tuple[str, str, str]:
    """Metric labels: kind, namespace, name (Flux's gotk_* label set)."""
    return key.kind, key.namespace, key.name


def _release_spec(release: HelmRelease, source: NamespacedName | None) -> dict[str, Any]:
    """What ``fleet get units`` and ``kubectl get units`` show of a HelmRelease."""
    chart = release.chart_spec
    spec = release.spec
    reference = chart.source_ref if chart else spec.chart_ref
    origin = source or (
        NamespacedName(reference.namespace or release.metadata.namespace, reference.name)
        if reference
        else None
    )
    return {
        "chart": chart.chart if chart else None,
        "version": chart.version if chart else None,
        "source": f"{reference.kind}/{origin}" if reference and origin else None,
        "releaseName": release.release_name,
        "targetNamespace": release.release_namespace,
        "driftDetection": spec.drift_detection.mode,
    }


def _unit_metadata(unit: Object) -> Object:
    """What the agent keeps of a watched Unit: only change detection needs it, the
    handler sees the whole object."""
    metadata = {k: v for k, v in unit["metadata"].items() if k != "managedFields"}
    return {"metadata": metadata, "spec": unit.get("spec")}


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no changes"
