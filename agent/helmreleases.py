"""The HelmRelease kind: helm actions with Flux's semantics (``agent/releases.py``), drift
of the release's objects corrected or reported per driftDetection, uninstall on removal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from agent import fluxstatus, releases
from agent.kinds import DependencyGate, DriftJob, Healed, Runtime, resolve_source
from agent.reconciler import Outcome
from agent.releases import ReleaseContext, ReleaseMemory
from agent.units import HELMRELEASE, UnitDefinition, UnitKey
from agent.unitstate import UnitState
from fleet.core.manifests import ObjectKey
from fleet.helm import charts
from fleet.helm.charts import ChartArtifact, ChartRepositories, ChartSourceError
from fleet.helm.cli import Helm, KubeAccess
from fleet.kube import KubeError
from fleet.models import HelmRelease, NamespacedName
from fleet.render import kustomize

log = logging.getLogger(__name__)

Object = dict[str, Any]


class HelmReleaseKind:
    name: str = HELMRELEASE
    recheck_stalled: bool = True
    """A new chart version or values may lift a stall without any commit."""

    def __init__(self, runtime: Runtime, helm_dir: Path) -> None:
        self.runtime = runtime
        settings = runtime.settings
        helm = Helm(
            helm_dir / "home",
            KubeAccess(settings.kubeconfig, settings.context),
            binary=settings.helm_binary,
        )
        self.charts = ChartRepositories(helm_dir / "charts", runtime.client, helm)
        self.context = ReleaseContext(
            runtime.client,
            helm,
            self.charts,
            runtime.applier,
            runtime.cache,
            self._git_chart,
            helm_dir / "scratch",
        )

    def source(self, definition: UnitDefinition) -> NamespacedName | None:
        """The GitRepository of a chart folder; None for a chart from a HelmRepository."""
        chart = definition.release.chart_spec
        if chart is None or chart.source_ref.kind != "GitRepository":
            return None
        reference = chart.source_ref
        return resolve_source(self.runtime.sources, definition, reference.namespace, reference.name)

    async def reconcile(
        self, state: UnitState, *, forced: bool, gate: DependencyGate
    ) -> Outcome | None:
        # Never skipped as stalled: the pipeline compares the desired state (which a new
        # chart version or a values ConfigMap can change without any commit) with the
        # one its failures were counted against.
        blocked = await gate(state, state.status.last_attempted_revision or "")
        if blocked is not False:
            return blocked if isinstance(blocked, Outcome) else None
        return await releases.reconcile_release(
            self.context, state.definition, state.release, forced=forced
        )

    async def _git_chart(self, release: HelmRelease) -> ChartArtifact:
        """A HelmRelease's chart folder in the checkout of its GitRepository."""
        chart = release.chart_spec
        assert chart is not None
        key = release.key
        definition = self.runtime.units[UnitKey(HELMRELEASE, key.namespace, key.name)].definition
        source_key = self.source(definition)
        sources = self.runtime.sources
        tracked = sources.get(source_key) if source_key else None
        if source_key is None or tracked is None:
            raise ChartSourceError(f"source GitRepository '{source_key}' not found")
        if tracked.revision is None:
            raise ChartSourceError(f"source {tracked.url} has no revision yet: {tracked.error}")
        try:
            checkout = await sources.checkout(source_key, tracked.revision)
        except kustomize.RenderError as error:
            raise ChartSourceError(str(error)) from error
        build = tracked.revision.commit[:12] if chart.reconcile_strategy == "Revision" else None
        label = f"GitRepository/{source_key}"
        return await anyio.to_thread.run_sync(
            lambda: charts.chart_from_directory(checkout, chart.chart, label, build=build)
        )

    async def remove(self, state: UnitState) -> None:
        problem = await releases.uninstall_release(self.context, state.definition, state.release)
        if problem:
            log.warning("uninstalling %s failed: %s", state.key, problem)

    def forget(self, state: UnitState) -> None:
        return None

    def prunes_children(self, definition: UnitDefinition) -> bool:
        return True

    def restore(self, state: UnitState, stored: Mapping[str, Any]) -> None:
        state.release = ReleaseMemory.from_status(stored.get("status") or {})

    def extra_status(self, state: UnitState) -> dict[str, Any]:
        return {"release": state.release.to_status(state.definition.release)}

    def flux_status(self, state: UnitState, generation: int) -> dict[str, Any]:
        found = fluxstatus.helmrelease_status(
            state.status, state.release, state.definition.release, generation=generation
        )
        return found.to_status()

    def spec_summary(self, definition: UnitDefinition) -> dict[str, Any]:
        """What ``fleet get units`` and ``kubectl get units`` show of a HelmRelease."""
        release = definition.release
        chart = release.chart_spec
        spec = release.spec
        reference = chart.source_ref if chart else spec.chart_ref
        origin = self.source(definition) or (
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

    def drift(self, state: UnitState, event: str, key: ObjectKey, live: Object) -> DriftJob | None:
        if key not in state.release.objects:
            return None

        async def check() -> Healed:
            return await self._check(state, key)

        return check

    async def _check(self, state: UnitState, key: ObjectKey) -> Healed:
        """Correct or report a changed object of the release, per driftDetection."""
        memory = state.release
        if memory.busy:
            return Healed()  # helm is acting on the release: these are its own writes
        events: list[tuple[str, str, str]] = []
        drift_before = dict(memory.drift)
        try:
            findings = await releases.check_drift(
                self.context, state.definition, memory, only=key, events=events
            )
        except KubeError as error:
            log.warning("drift check of %s failed: %s", key, error, extra={"unit": state.key})
            return Healed()
        return Healed(
            events,
            corrected=any(f.corrected for f in findings),
            changed=bool(findings) or drift_before != memory.drift,
        )
