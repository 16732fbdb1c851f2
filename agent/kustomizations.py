"""The Kustomization kind: render its path at its source's revision, apply, prune, judge
health (``agent/reconciler.py``), heal drift by re-applying, delete per deletionPolicy."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent import fluxstatus
from agent.applier import ApplyReport
from agent.kinds import DependencyGate, DriftJob, Healed, Runtime, resolve_source
from agent.reconciler import Outcome, ReconcileContext, reconcile_unit, unit_labels
from agent.renderer import MAX_BATCH, Renderer
from agent.units import KUSTOMIZATION, ROOT_KEY, ROOT_SOURCE, UnitDefinition
from agent.unitstate import UnitState
from fleet.api import unit as unit_api
from fleet.core import drift, managedfields
from fleet.core.manifests import ObjectKey
from fleet.kube import KubeError
from fleet.models import NamespacedName
from fleet.render import kustomize

log = logging.getLogger(__name__)

Object = dict[str, Any]

RENDER_AHEAD = MAX_BATCH - 1
"""Queued units whose renders come along with one that renders (one kustomize process)."""


class KustomizationKind:
    name: str = KUSTOMIZATION
    recheck_stalled: bool = False

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.context = ReconcileContext(
            runtime.client,
            runtime.applier,
            runtime.cache,
            Renderer(settings.render_workers, kustomize=settings.kustomize_binary),
            default_namespace=settings.default_namespace,
            agent=settings.namespace,
            upcoming=self._upcoming,
        )

    def source(self, definition: UnitDefinition) -> NamespacedName | None:
        reference = definition.kustomization.spec.source_ref
        if reference is None or definition.key == ROOT_KEY:
            return ROOT_SOURCE
        return resolve_source(self.runtime.sources, definition, reference.namespace, reference.name)

    async def reconcile(
        self, state: UnitState, *, forced: bool, gate: DependencyGate
    ) -> Outcome | None:
        sources = self.runtime.sources
        definition = state.definition
        source_key = self.source(definition)
        assert source_key is not None
        tracked = sources.get(source_key)
        attempted = state.status.last_attempted_revision or ""
        if tracked is None:
            message = f"source GitRepository '{source_key}' not found"
            return Outcome(False, "ArtifactFailed", message, attempted)
        revision = tracked.revision
        if revision is None:
            message = f"source {tracked.url} has no revision yet: {tracked.error or 'fetching'}"
            outcome = Outcome(False, "ArtifactFailed", message, attempted)
            outcome.progressing = tracked.error is None
            return outcome
        if state.stalled_on == stall_marker(state, revision.display) and not forced:
            return None
        blocked = await gate(state, revision.display)
        if blocked is not False:
            return blocked if isinstance(blocked, Outcome) else None
        try:
            checkout = await sources.checkout(source_key, revision)
        except kustomize.RenderError as error:
            # A tree with a symlink leaving it fails every unit of it; retrying won't help.
            return Outcome(False, "ArtifactFailed", str(error), revision.display, stalled=True)
        return await reconcile_unit(
            self.context, definition, checkout, revision.display, list(state.inventory)
        )

    def _upcoming(self, definition: UnitDefinition) -> list[UnitDefinition]:
        """Kustomizations queued next that read the same source as ``definition``."""
        source = self.source(definition)
        found = []
        for key in self.runtime.queue.upcoming(4 * RENDER_AHEAD):
            state = self.runtime.units.get(key)
            if (
                state is not None
                and key.kind == KUSTOMIZATION
                and not state.suspended
                and self.source(state.definition) == source
            ):
                found.append(state.definition)
                if len(found) == RENDER_AHEAD:
                    break
        return found

    async def remove(self, state: UnitState) -> None:
        spec = state.definition.kustomization.spec
        policy = spec.deletion_policy
        delete_objects = policy == "Delete" or (
            policy in ("MirrorPrune", "WaitForTermination") and spec.prune
        )
        if not (delete_objects and state.inventory):
            return
        report = await self.runtime.applier.prune(
            self.runtime.client,
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

    def forget(self, state: UnitState) -> None:
        self.context.renders.pop(state.key, None)

    def prunes_children(self, definition: UnitDefinition) -> bool:
        return definition.kustomization.spec.prune

    def restore(self, state: UnitState, stored: Mapping[str, Any]) -> None:
        return None

    def extra_status(self, state: UnitState) -> dict[str, Any]:
        if state.key != ROOT_KEY:
            return {}
        tracked = self.runtime.sources.get(ROOT_SOURCE)
        if tracked is None:
            return {}
        return {
            "source": {
                "url": tracked.url,
                "revision": tracked.revision.display if tracked.revision else None,
                "ready": tracked.error is None,
                "message": tracked.error or "fetched",
            }
        }

    def flux_status(self, state: UnitState, generation: int) -> dict[str, Any]:
        return fluxstatus.kustomization_status(state.status, generation=generation).to_status()

    def spec_summary(self, definition: UnitDefinition) -> dict[str, Any]:
        spec = definition.kustomization.spec
        return {
            "path": spec.path,
            "source": str(self.source(definition)),
            "prune": spec.prune,
            "wait": spec.wait,
        }

    def drift(self, state: UnitState, event: str, key: ObjectKey, live: Object) -> DriftJob | None:
        applier = self.runtime.applier
        if key in applier.in_flight:
            return None
        remembered = applier.state.get(key)
        if remembered is None:
            return None  # not (or no longer) applied by this agent: being pruned, or not yet
        if event != "DELETED" and remembered.matches(live):
            return None
        deleted = event == "DELETED"
        changed = [] if deleted else list(drift.changed_fields(live, remembered.desired))
        changes = ["object deleted"] if deleted else [str(c) for c in changed][:5]
        # The managers of the changed fields (``kubectl`` after a scale), not whoever
        # wrote the object last (often the controller manager, about something else).
        who = (
            None
            if deleted
            else managedfields.who_changed(
                live, [c.path for c in changed], exclude=[unit_api.FIELD_MANAGER]
            )
        )

        async def heal() -> Healed:
            return await self._heal(state, key, changes, who)

        return heal

    async def _heal(
        self, state: UnitState, key: ObjectKey, changes: list[str], who: str | None
    ) -> Healed:
        applier = self.runtime.applier
        # Take what is remembered now, not at the event: a reconcile may have applied a
        # newer revision of the object since, and that one must win.
        remembered = applier.state.get(key)
        if remembered is None or key in applier.in_flight:
            return Healed()
        client = self.runtime.client
        spec = state.definition.kustomization.spec
        if spec.service_account_name:
            client = client.as_service_account(state.key.namespace, spec.service_account_name)
        report = ApplyReport()
        try:
            await applier.apply_one(
                client,
                remembered.desired,
                force=spec.force,
                report=report,
                ignore=remembered.ignore,
            )
        except KubeError as error:
            log.warning("could not revert drift of %s: %s", key, error, extra={"unit": state.key})
            return Healed()
        if not report.applied:
            return Healed()
        by = f" by {who}" if who else ""
        message = f"{key} changed{by}; reverted: {'; '.join(changes) or 'fields changed'}"
        return Healed([("Normal", "DriftCorrected", message)], corrected=True, changed=True)


def stall_marker(state: UnitState, revision: str) -> str:
    """What a stall holds for: this revision of this spec."""
    return f"{revision}|{state.definition.digest}"
