"""The agent: keeps every unit of one cluster reconciled with Git, and heals drift.

This module wires the components together and runs the workers; each job lives in its
own module (docs/architecture.md has the picture):

- the kinds (``agent/kinds.py``: Kustomization, HelmRelease) reconcile, heal, report
  and remove their units behind one interface, registered once in ``Agent.__init__``;
- the source poller (``agent/poller.py``) fetches sources; a new revision queues the
  units that read it;
- the work queue (``agent/workqueue.py``) hands each unit to one worker at a time; a
  worker runs the unit's kind inside the error boundary (``agent/boundary.py``), folds
  the outcome into the typed status (``agent/status.py``), writes it once (``_save``,
  through ``agent/store.py``), records what changed as Events (``agent/events.py``) and
  requeues;
- the drift healer (``agent/healer.py``) routes changes of watched objects to their
  unit's kind.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc

from agent import boundary, fluxstatus
from agent import status as unit_status
from agent import units as unit_defs
from agent.applier import Applier
from agent.events import EventFilter
from agent.healer import DriftHealer, count_drift
from agent.helmreleases import HelmReleaseKind
from agent.kinds import Kind, Runtime, registry
from agent.kustomizations import KustomizationKind, stall_marker
from agent.livecache import LiveCache
from agent.metrics import AgentMetrics
from agent.mirror import FluxMirror
from agent.poller import SourcePoller
from agent.reconciler import Outcome, listed
from agent.settings import AgentSettings
from agent.sources import Sources
from agent.store import UnitStore
from agent.units import HELMRELEASE, ROOT_SOURCE, UnitDefinition, UnitKey
from agent.unitstate import UnitIndex, UnitState
from agent.workqueue import WorkQueue
from fleet import report as report_schema
from fleet.api import unit as unit_api
from fleet.api.flux import crds as flux_crds
from fleet.core.manifests import ObjectKey
from fleet.helm.charts import ChartRepositories, ChartSourceError
from fleet.kube import KubeClient, KubeError
from fleet.models import GitRepository, HelmRepository, NamespacedName

log = logging.getLogger(__name__)

Object = dict[str, Any]

UNIT_MANAGED_LABEL = "app.kubernetes.io/managed-by"
FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
"""Set by ``flux reconcile``; the agent answers in ``status.lastHandledReconcileAt``."""


class Agent:
    def __init__(self, settings: AgentSettings, client: KubeClient) -> None:
        self.settings = settings
        self.client = client
        self.metrics = AgentMetrics()
        self.units: dict[UnitKey, UnitState] = {}
        self.queue: WorkQueue[UnitKey] = WorkQueue()
        self.cache = LiveCache(client, self._on_live_change)
        self.unit_cache = LiveCache(
            client,
            self._on_unit_change,
            label_selector=f"{UNIT_MANAGED_LABEL}=fleet-agent",
            namespace=settings.namespace,
            keep=_unit_metadata,
        )
        self.flux_cache = LiveCache(
            client,
            self._on_flux_change,
            label_selector=f"{unit_api.AGENT_LABEL}={settings.namespace}",
            keep=_unit_metadata,
        )
        self.applier = Applier(client, self.cache, concurrency=settings.apply_concurrency)
        self.store = UnitStore(client, settings.namespace)
        self.event_filter = EventFilter()
        self.sources = Sources(settings.agent_work_dir, client)
        self.runtime = Runtime(
            settings,
            client,
            self.applier,
            self.cache,
            self.sources,
            self.store,
            self.metrics,
            self.queue,
            self.units,
            self._task_group,
        )
        # The one place kinds are registered.
        self.kinds: dict[str, Kind] = registry(
            [
                KustomizationKind(self.runtime),
                HelmReleaseKind(self.runtime, settings.agent_work_dir / "helm"),
            ]
        )
        self.mirror = FluxMirror(client)
        self.poller = SourcePoller(
            self.sources, self.metrics, self._on_source_fetched, self._mirror_source
        )
        self.healer = DriftHealer(self.runtime, self.kinds, self._save, self.record_event)
        self._stored: dict[str, Object] = {}
        self._units_version = 0
        self._index: tuple[int, UnitIndex] | None = None
        self._awaiting: set[UnitKey] = set()
        """Units whose health waits for other units (``wait``/``healthChecks``)."""
        self._tasks: anyio.abc.TaskGroup | None = None
        self.started = anyio.Event()

    @property
    def charts(self) -> ChartRepositories:
        """The HelmRepositories the HelmRelease kind follows."""
        return self._helm.charts

    @property
    def _helm(self) -> HelmReleaseKind:
        kind = self.kinds[HELMRELEASE]
        assert isinstance(kind, HelmReleaseKind)
        return kind

    async def preflight(self) -> None:
        """Checks before running: raises FluxControllersRunning beside Flux's controllers."""
        await self.mirror.refuse_beside_flux()

    def _task_group(self) -> anyio.abc.TaskGroup:
        assert self._tasks is not None, "the agent is not running"
        return self._tasks

    async def run(self) -> None:
        """Run until cancelled."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            self.poller.attach(tasks)
            await tasks.start(self.cache.run)
            await tasks.start(self.unit_cache.run)
            await self.store.install()
            await self.mirror.install()
            await tasks.start(self.mirror.run)
            await tasks.start(self.flux_cache.run)
            for served in (flux_crds.KUSTOMIZATION, flux_crds.HELM_RELEASE):
                await self.flux_cache.ensure_watch(served.api_version, served.kind)
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
            self.poller.poll(ROOT_SOURCE)
            for _ in range(self.settings.workers):
                tasks.start_soon(self._worker)
            self.started.set()
            await anyio.sleep_forever()

    def request_reconcile(self, unit: UnitKey | None = None, *, with_source: bool = False) -> None:
        """Reconcile a unit (or all) now; optionally fetch its source first (webhooks)."""
        if with_source:
            self.poller.wake()
        for key in [unit] if unit else list(self.units):
            if key in self.units:
                self.units[key].force_next = True
                self.queue.add(key)

    def kind_of(self, state: UnitState) -> Kind:
        return self.kinds[state.definition.kind]

    def source_of(self, definition: UnitDefinition) -> NamespacedName | None:
        """The Git source a unit reads (None for a chart from a HelmRepository)."""
        return self.kinds[definition.kind].source(definition)

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
            state.status = unit_status.UnitStatus.from_status(stored.get("status") or {})
            annotations = stored["metadata"].get("annotations") or {}
            state.suspended_by_request = annotations.get(unit_api.SUSPEND_ANNOTATION) == "true"
            self.kind_of(state).restore(state, stored)
        self.units[definition.key] = state
        self._units_changed()
        self.queue.add(definition.key)
        return state

    def _mirror_source(self, key: NamespacedName) -> None:
        """A source's GitRepository object and its status in Flux's format; the fleet
        repository is the GitRepository ``<agent namespace>/fleet``."""
        tracked = self.sources.get(key)
        if tracked is None:
            return
        manifest: dict[str, Any]
        if tracked.manifest is not None:
            manifest = dict(tracked.manifest)
            manifest.pop("status", None)
            name, namespace = key.name, key.namespace
        else:
            name, namespace = "fleet", self.settings.namespace
            manifest = {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "url": tracked.url,
                    "interval": f"{int(self.settings.interval.total_seconds())}s",
                    "ref": self.settings.ref.model_dump(exclude_none=True),
                },
            }
        manifest["metadata"] = {
            **dict(manifest.get("metadata") or {}),
            "name": name,
            "namespace": namespace,
        }
        fetched = (
            datetime.datetime.fromtimestamp(tracked.revision_at, datetime.UTC)
            if tracked.revision_at is not None
            else None
        )
        path = f"gitrepository/{namespace}/{name}"

        def status_of(generation: int) -> dict[str, Any]:
            found = fluxstatus.gitrepository_status(
                tracked.revision, tracked.error, fetched, generation=generation, path=path
            )
            return found.to_status()

        self.mirror.mark(
            UnitKey("GitRepository", namespace, name), self._labelled(manifest), status_of
        )

    def _on_source_fetched(self, key: NamespacedName) -> None:
        """A source moved (or failed to fetch): its units reconcile."""
        for state in list(self.units.values()):
            if self.source_of(state.definition) == key:
                self.queue.add(state.key)

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
        kind = self.kind_of(state)
        outcome = await boundary.guarded(
            lambda: kind.reconcile(state, forced=forced, gate=self._dependency_gate),
            revision=state.status.last_attempted_revision or "",
            unit=state.key,
        )
        if outcome is not None:
            await self._finish(state, outcome)

    async def _dependency_gate(self, state: UnitState, revision: str) -> Outcome | bool:
        """dependsOn: a broken graph stalls the unit (its outcome), an unready dependency
        holds it back (status written, recheck queued: True); False when it may run."""
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

    async def _finish(self, state: UnitState, outcome: Outcome) -> None:
        """Fold an outcome into the unit's status, write it once, record what changed as
        Events, requeue."""
        key = state.key
        definition = state.definition
        kind = self.kind_of(state)
        was_ready = state.ready
        before = state.status.condition(unit_status.READY)
        repeated = before is not None and (before.reason, before.message) == (
            outcome.reason,
            outcome.message,
        )
        if outcome.applied and outcome.split is not None:
            # Sources first: a child that reconciles at once must find its source.
            await self._sync_sources(outcome.split.sources, outcome.split.helm_repositories)
            await self._sync_children(state, outcome.split.units)
        outcome = self._judge_awaited(state, outcome)
        state.status = unit_status.fold(state.status, outcome)
        state.folded_for = definition.digest
        state.last_reconcile_at = report_schema.utc_now()
        state.last_reconcile_seconds = outcome.duration
        stalled_at = outcome.revision or state.status.last_attempted_revision or ""
        state.stalled_on = (
            stall_marker(state, stalled_at)
            if outcome.stalled and not kind.recheck_stalled
            else None
        )

        series = self.metrics.unit(_labels(key))
        series.observe_reconcile(outcome.duration)
        series.ready = 1 if outcome.ready else 0
        series.inventory = len(state.inventory)
        series.applied += outcome.counts.get("applied", 0)
        series.pruned += outcome.counts.get("pruned", 0)

        extra = {"unit": key, "revision": outcome.revision}
        for type_, reason, message in outcome.events:
            await self.record_event(state, type_, reason, message)
            if reason == "DriftCorrected":
                count_drift(self.runtime, state)
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
            if outcome.progressing or outcome.pending:
                await self._record_result(state, "Normal", "Progressing", outcome.message)
            else:
                await self._record_result(state, "Warning", outcome.reason, outcome.message)
        delay = boundary.next_run(
            outcome,
            failures=state.failures,
            interval=definition.interval.total_seconds(),
            retry_interval=definition.retry_interval.total_seconds(),
            recheck_stalled=kind.recheck_stalled,
        )
        if outcome.pending:
            delay = self.settings.dependency_requeue.total_seconds()
        if delay != math.inf:
            self.queue.add_after(key, delay)
        await self._save(state)
        if state.ready_at_its_revision:
            for dependent in self.index.dependents.get(key, ()):
                other = self.units.get(dependent)
                if other is not None and not other.ready_at_its_revision:
                    self.queue.add(dependent)
        if state.health != "pending":
            self._wake_awaiting(key)

    def _judge_awaited(self, state: UnitState, outcome: Outcome) -> Outcome:
        """A healthy apply is Ready only once the Flux objects its ``wait`` or
        ``healthChecks`` name are: until then it is pending (Ready=Unknown), a failed one
        fails it, and so does waiting longer than the unit's timeout."""
        self._awaiting.discard(state.key)
        if not outcome.ready or not outcome.awaiting:
            state.awaiting_since = None
            return outcome
        failed, pending = [], []
        for key in outcome.awaiting:
            other = self.units.get(key)
            if other is None:
                pending.append(f"{key.describe()}: not found")
                continue
            verdict = other.health
            ready = other.status.condition(unit_status.READY)
            why = ready.message if ready else "not reconciled yet"
            if verdict == "failed":
                failed.append(f"{key.describe()}: {why}")
            elif verdict == "pending":
                pending.append(f"{key.describe()}: {why}")
        # Failed or pending, it is judged again when one of them changes.
        self._awaiting.add(state.key)
        if failed:
            state.awaiting_since = None
            message = f"health check failed: {listed(failed)}"
            return dataclasses.replace(
                outcome, ready=False, reason="HealthCheckFailed", message=message
            )
        if not pending:
            self._awaiting.discard(state.key)
            state.awaiting_since = None
            return outcome
        now = time.monotonic()
        if state.awaiting_since is None or state.awaiting_since[0] != outcome.revision:
            state.awaiting_since = (outcome.revision, now)
        timeout = state.definition.kustomization.spec.effective_timeout.total_seconds()
        if now - state.awaiting_since[1] > timeout:
            state.awaiting_since = None
            message = f"timeout waiting for: {listed(pending)} after {timeout:.0f}s"
            return dataclasses.replace(
                outcome, ready=False, reason="HealthCheckFailed", message=message
            )
        message = f"waiting for: {listed(pending)}"
        return dataclasses.replace(
            outcome, ready=False, reason=unit_status.PROGRESSING, message=message, pending=True
        )

    def _wake_awaiting(self, key: UnitKey) -> None:
        """A unit's health is known: the units waiting on it judge again."""
        for waiting in list(self._awaiting):
            other = self.units.get(waiting)
            if other is None:
                self._awaiting.discard(waiting)
            elif key in self._awaited_by(other):
                self.queue.add(waiting)

    def _awaited_by(self, state: UnitState) -> set[UnitKey]:
        definition = state.definition
        if definition.kind != unit_defs.KUSTOMIZATION:
            return set()
        children = set(self.index.children.get(state.key, ()))
        spec = definition.kustomization.spec
        if spec.wait:
            return children
        return {
            UnitKey(check.kind, check.namespace or state.key.namespace, check.name)
            for check in spec.health_checks
        }

    async def _record_result(self, state: UnitState, type_: str, reason: str, message: str) -> None:
        """An Event for a reconcile's result, when it says something new (agent/events.py)."""
        name = state.definition.resource_name
        if self.event_filter.admit(name, type_, reason, message):
            await self.record_event(state, type_, reason, message)

    async def record_event(self, state: UnitState, type_: str, reason: str, message: str) -> None:
        """An Event about a unit: on its Unit object and on its Flux object."""
        await self.store.record_event(state.definition.resource_name, type_, reason, message)
        await self.mirror.record_event(state.key, type_, reason, message)

    async def _sync_children(self, parent: UnitState, children: list[UnitDefinition]) -> None:
        unit_defs.check_unique_children(children)
        for child in children:
            self._adopt(child)
        current = {c.key for c in children}
        orphans = [s for s in self._children_of(parent) if s.key not in current]
        for orphan in orphans:
            if self.kind_of(parent).prunes_children(parent.definition):
                await self._remove_unit(orphan)
            else:
                self._stop_managing(orphan)

    def _stop_managing(self, state: UnitState) -> None:
        """Leave a unit (and the units it defined) and everything they own in place."""
        for child in self._children_of(state):
            self._stop_managing(child)
        self.units.pop(state.key, None)
        self.kind_of(state).forget(state)
        self.event_filter.forget(state.definition.resource_name)
        self.metrics.forget_unit(_labels(state.key))
        self._units_changed()

    def _children_of(self, state: UnitState) -> list[UnitState]:
        return [self.units[k] for k in self.index.children.get(state.key, ()) if k in self.units]

    def unit_named(self, resource_name: str) -> UnitState | None:
        """The unit whose Unit object has this name."""
        key = self.index.by_resource_name.get(resource_name)
        return self.units.get(key) if key is not None else None

    async def _remove_unit(self, state: UnitState) -> None:
        """A unit left Git: delete what it owns (per its kind and spec), then it. The units
        it defined go first, as Flux's garbage collection of their objects would take
        them."""
        async with state.lock:  # waits for a reconcile of it in flight, then none starts
            if self.units.get(state.key) is not state:
                return
            kind = self.kind_of(state)
            for child in self._children_of(state):
                if kind.prunes_children(state.definition):
                    await self._remove_unit(child)
                else:
                    self._stop_managing(child)
            await kind.remove(state)
            await self._forget_unit(state)

    async def _forget_unit(self, state: UnitState) -> None:
        del self.units[state.key]
        self.mirror.forget(state.key)
        self.kind_of(state).forget(state)
        self.event_filter.forget(state.definition.resource_name)
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
            self.poller.poll(repository.key)
        for helm_repository in helm_repositories:
            try:
                await self.charts.define(helm_repository)
            except ChartSourceError as error:  # reported on the releases that use it
                log.warning("cannot follow HelmRepository %s: %s", helm_repository.key, error)

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
        return common | self.kind_of(state).spec_summary(definition)

    async def _save(self, state: UnitState) -> None:
        """The status writer: the unit's typed status and its kind's part, written once
        (and not at all when nothing changed)."""
        labels = {
            UNIT_MANAGED_LABEL: "fleet-agent",
            unit_api.UNIT_NAMESPACE_LABEL: state.key.namespace,
            unit_api.UNIT_NAME_LABEL: state.key.name,
        }
        if state.key.kind != unit_defs.KUSTOMIZATION:
            labels[unit_api.UNIT_KIND_LABEL] = state.key.kind
        self.metrics.unit(_labels(state.key)).suspended = 1 if state.suspended else 0
        status = state.status.to_status() | self.kind_of(state).extra_status(state)
        # One write at a time per unit: a drift correction and a reconcile finishing
        # together must not land in the wrong order and leave the older status behind.
        async with state.save_lock:
            try:
                await self.store.save(
                    state.definition.resource_name, self._spec(state), labels, status
                )
            except KubeError as error:
                log.warning("could not write status: %s", error, extra={"unit": state.key})
        kind = self.kind_of(state)
        self.mirror.mark(
            state.key,
            self._flux_manifest(state),
            lambda generation: kind.flux_status(state, generation),
        )

    def _flux_manifest(self, state: UnitState) -> dict[str, Any]:
        """The unit's Flux object as Git defines it; the root unit's is the agent's own
        Kustomization ``<agent namespace>/root`` over the cluster path."""
        definition = state.definition
        if definition.manifest is None:
            spec = definition.kustomization.spec
            return self._labelled(
                {
                    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                    "kind": "Kustomization",
                    "metadata": {"name": unit_api.ROOT_UNIT, "namespace": self.settings.namespace},
                    "spec": {
                        "interval": f"{int(spec.interval.total_seconds())}s",
                        "path": spec.path,
                        "prune": True,
                        "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                    },
                }
            )
        manifest = {k: v for k, v in definition.manifest.items() if k != "status"}
        metadata = dict(manifest.get("metadata") or {})
        metadata["namespace"] = state.key.namespace
        manifest["metadata"] = metadata
        return self._labelled(manifest)

    def _labelled(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The agent's label on a Flux object it writes: its watch selects by it."""
        metadata = dict(manifest["metadata"])
        metadata["labels"] = {
            **(metadata.get("labels") or {}),
            unit_api.AGENT_LABEL: self.settings.namespace,
        }
        return {**manifest, "metadata": metadata}

    async def _on_live_change(self, event: str, key: ObjectKey, live: Object) -> None:
        await self.healer.on_change(event, key, live)

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
        self._on_request(
            state,
            annotations.get(unit_api.REQUESTED_AT_ANNOTATION),
            with_source=annotations.get(unit_api.WITH_SOURCE_ANNOTATION) == "true",
        )

    async def _on_flux_change(self, event: str, key: ObjectKey, found: Object) -> None:
        """``flux suspend`` / ``flux resume`` / ``flux reconcile`` on a unit's Flux object."""
        if event == "DELETED":
            return
        metadata = found["metadata"]
        unit_key = UnitKey(str(found.get("kind")), metadata.get("namespace", ""), metadata["name"])
        if unit_key == UnitKey("Kustomization", self.settings.namespace, unit_api.ROOT_UNIT):
            unit_key = unit_defs.ROOT_KEY
        state = self.units.get(unit_key)
        if state is None:
            return
        self.mirror.saw(unit_key, int(metadata.get("generation") or 0))
        suspended = (found.get("spec") or {}).get("suspend") is True
        if suspended != state.suspended_in_cluster:
            state.suspended_in_cluster = suspended
            log.info("unit %s", "suspended" if suspended else "resumed", extra={"unit": unit_key})
            self.queue.add(unit_key)
        annotations = metadata.get("annotations") or {}
        self._on_request(state, annotations.get(FLUX_REQUESTED_AT), with_source=False)

    def _on_request(self, state: UnitState, requested: str | None, *, with_source: bool) -> None:
        """A reconcile asked for with a new requestedAt value: answered once, in
        ``lastHandledReconcileAt``."""
        unit_key = state.key
        if requested and requested not in (
            state.status.last_handled_reconcile_at,
            state.requested,
            state.fetching_for,
        ):
            if with_source:
                state.fetching_for = requested
                self._task_group().start_soon(self._fetch_then_reconcile, state, requested)
            else:
                state.requested = requested
                state.force_next = True
                self.queue.add(unit_key)

    async def _fetch_then_reconcile(self, state: UnitState, requested: str) -> None:
        """``fleet reconcile --with-source``: fetch the unit's source first, so the reconcile
        sees a commit pushed just before the request, as Flux's ``--with-source`` does."""
        source_key = self.source_of(state.definition)
        if source_key is not None and self.sources.get(source_key) is not None:
            await self.poller.fetch(source_key)
        state.fetching_for = None
        state.requested = requested
        state.force_next = True
        self.queue.add(state.key)


def _labels(key: UnitKey) -> tuple[str, str, str]:
    """Metric labels: kind, namespace, name (Flux's gotk_* label set)."""
    return key.kind, key.namespace, key.name


def _unit_metadata(unit: Object) -> Object:
    """What the agent keeps of a watched Unit: only change detection needs it, the
    handler sees the whole object."""
    metadata = {k: v for k, v in unit["metadata"].items() if k != "managedFields"}
    return {"metadata": metadata, "spec": unit.get("spec")}


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no changes"
