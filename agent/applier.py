"""Apply a unit's objects with server-side apply, skip what is unchanged, prune the rest.

One field manager for everything; CRDs and Namespaces first (and CRDs Established before
their custom resources); objects that still match what was applied (judged from the
watch cache, without a request) are skipped. ``force`` recreates objects whose
immutable fields changed.
"""

from __future__ import annotations

import dataclasses
import logging
import marshal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio

from agent.livecache import LiveCache
from fleet.api import unit as unit_api
from fleet.core import drift, inventory, plan
from fleet.core.health import assess
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey
from fleet.kube import Invalid, KubeClient, KubeError, NotFound

log = logging.getLogger(__name__)

Object = dict[str, Any]

CRD_ESTABLISHED_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class AppliedState:
    """What the agent last applied for one object: the object itself (drift is healed back
    to it), the fields left to others (driftIgnoreRules), and the fingerprint of the
    server's answer, so an unchanged object costs no request on the next resync.

    The object is kept serialised (``marshal``): kept for every managed object, read
    only when a watch event or a resync looks at that object.
    """

    kept: bytes
    """The desired object, serialised."""
    ignore: tuple[str, ...]
    """JSON pointers the agent applies with their live values and never judges as drift."""
    desired_digest: str
    fingerprint: str

    @classmethod
    def of(
        cls, desired: Object, ignore: tuple[str, ...], server: Mapping[str, Any]
    ) -> AppliedState:
        compared = drift.without_paths(desired, ignore) if ignore else desired
        return cls(
            marshal.dumps(desired),
            ignore,
            drift.desired_digest(compared),
            drift.fingerprint(server, compared),
        )

    @property
    def desired(self) -> Object:
        """A fresh copy of the object as applied."""
        return marshal.loads(self.kept)  # type: ignore[no-any-return]

    @property
    def compared(self) -> Object:
        """``desired`` without the ignored fields: what drift is judged on."""
        desired = self.desired
        return drift.without_paths(desired, self.ignore) if self.ignore else desired

    def matches(self, live: Mapping[str, Any], compared: Mapping[str, Any] | None = None) -> bool:
        """Whether ``live`` still has what was applied, in every field the agent sets.

        ``compared``: the same as ``self.compared``, when the caller holds it already (a
        resync, whose desired object has this digest), so it is not decoded again."""
        if compared is None:
            compared = self.compared
        return self.fingerprint == drift.fingerprint(live, compared)


@dataclasses.dataclass
class ApplyReport:
    applied: list[ObjectKey] = dataclasses.field(default_factory=list)
    unchanged: list[ObjectKey] = dataclasses.field(default_factory=list)
    recreated: list[ObjectKey] = dataclasses.field(default_factory=list)
    skipped: list[ObjectKey] = dataclasses.field(default_factory=list)
    failures: list[tuple[ObjectKey, str]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclasses.dataclass
class PruneReport:
    deleted: list[InventoryEntry] = dataclasses.field(default_factory=list)
    kept: list[tuple[InventoryEntry, str]] = dataclasses.field(default_factory=list)
    """Stale entries left in place (opt-out annotation, owned by someone else)."""
    failures: list[tuple[InventoryEntry, str]] = dataclasses.field(default_factory=list)
    refused: str | None = None


class Applier:
    """Applies objects for all units of one cluster through one client and one cache."""

    def __init__(self, client: KubeClient, cache: LiveCache, *, concurrency: int = 32) -> None:
        self._client = client
        self._cache = cache
        self._concurrency = concurrency
        self.state: dict[ObjectKey, AppliedState] = {}
        self.in_flight: set[ObjectKey] = set()
        """Objects being written right now: their watch events are our own, not drift."""

    async def namespaced(self, obj: Mapping[str, Any]) -> bool:
        info = await self._client.resource(obj["apiVersion"], obj["kind"])
        return info.namespaced

    def unchanged(
        self, key: ObjectKey, desired: Mapping[str, Any], ignore: tuple[str, ...] = ()
    ) -> bool:
        """True when the live object (from the cache) still matches what was applied."""
        live = self._cache.get(key)
        if live is None:
            return False
        compared = drift.without_paths(desired, ignore) if ignore else desired
        remembered = self.state.get(key)
        if remembered is None:
            # After a restart nothing is remembered: accept when live already has every
            # desired field, and remember its fingerprint for next time.
            if drift.contains(live, compared):
                self.state[key] = AppliedState.of(dict(desired), ignore, live)
                return True
            return False
        return remembered.desired_digest == drift.desired_digest(compared) and remembered.matches(
            live, compared
        )

    async def apply_one(
        self,
        client: KubeClient,
        desired: Object,
        *,
        force: bool,
        report: ApplyReport,
        ignore: tuple[str, ...] = (),
    ) -> Object | None:
        """Apply one object unless it is unchanged; ``ignore`` fields keep their live values."""
        key = ObjectKey.from_manifest(desired)
        policy = inventory.apply_policy(desired)
        if policy == "Ignore":
            report.skipped.append(key)
            return None
        if policy == "IfNotPresent" and (
            self._cache.get(key) is not None
            or await client.get(
                desired["apiVersion"], desired["kind"], key.name, key.namespace or None
            )
        ):
            report.skipped.append(key)
            return None
        if self.unchanged(key, desired, ignore):
            report.unchanged.append(key)
            return None
        body = drift.keep_live_values(desired, self._cache.get(key), ignore) if ignore else desired
        self.in_flight.add(key)
        try:
            try:
                applied = await client.apply(body, field_manager=unit_api.FIELD_MANAGER, force=True)
            except Invalid as error:
                if not (force and _immutable(error)):
                    raise
                # Flux's force: an immutable field changed; delete and create it anew.
                await client.delete(
                    desired["apiVersion"],
                    desired["kind"],
                    key.name,
                    key.namespace or None,
                    propagation="Foreground",
                )
                await self._wait_gone(client, desired, key)
                applied = await client.apply(
                    desired, field_manager=unit_api.FIELD_MANAGER, force=True
                )
                report.recreated.append(key)
            self.state[key] = AppliedState.of(desired, ignore, applied)
            self._cache.remember(applied)
            report.applied.append(key)
            return applied
        finally:
            self.in_flight.discard(key)

    async def _wait_gone(self, client: KubeClient, desired: Object, key: ObjectKey) -> None:
        with anyio.fail_after(60):
            while await client.get(
                desired["apiVersion"], desired["kind"], key.name, key.namespace or None
            ):
                await anyio.sleep(0.2)

    async def apply_all(
        self,
        client: KubeClient,
        objects: Sequence[Object],
        *,
        force: bool,
        ignore: Callable[[Object], tuple[str, ...]] = lambda _: (),
    ) -> ApplyReport:
        """Apply in stages; a stage with failures stops the stages after it.

        ``ignore`` gives each object's fields that are left to others (driftIgnoreRules).
        """
        report = ApplyReport()
        limiter = anyio.CapacityLimiter(self._concurrency)
        for stage in plan.apply_stages(objects):

            async def one(obj: Object) -> None:
                async with limiter:
                    try:
                        await self.apply_one(
                            client, obj, force=force, report=report, ignore=ignore(obj)
                        )
                    except KubeError as error:
                        report.failures.append((ObjectKey.from_manifest(obj), error.message))

            async with anyio.create_task_group() as tasks:
                for obj in stage:
                    tasks.start_soon(one, dict(obj))
            if report.failures:
                return report
            await self._wait_crds_established(client, stage, report)
            if report.failures:
                return report
        return report

    async def _wait_crds_established(
        self, client: KubeClient, stage: Sequence[Mapping[str, Any]], report: ApplyReport
    ) -> None:
        crds = [o for o in stage if o.get("kind") == "CustomResourceDefinition"]
        for crd in crds:
            name = crd["metadata"]["name"]
            try:
                with anyio.fail_after(CRD_ESTABLISHED_TIMEOUT):
                    while True:
                        live = await client.get(crd["apiVersion"], "CustomResourceDefinition", name)
                        if live is not None and assess(live).ready:
                            break
                        await anyio.sleep(0.1)
            except TimeoutError:
                report.failures.append(
                    (
                        ObjectKey.from_manifest(crd),
                        f"CRD not established after {CRD_ESTABLISHED_TIMEOUT:.0f}s",
                    )
                )
                continue
            spec = crd.get("spec", {})
            for version in spec.get("versions", []):
                client.forget_discovery(f"{spec.get('group')}/{version.get('name')}")

    async def prune(
        self,
        client: KubeClient,
        stale: Sequence[InventoryEntry],
        *,
        unit_labels: Mapping[str, str],
    ) -> PruneReport:
        """Delete stale objects that still carry this unit's labels and do not opt out."""
        report = PruneReport()
        for entry in stale:
            key = entry.key
            try:
                live = self._cache.get(key) or await client.get(
                    entry.api_version, key.kind, key.name, key.namespace or None
                )
            except NotFound:
                live = None  # the kind itself is gone (CRD deleted): nothing to prune
            except KubeError as error:
                report.failures.append((entry, error.message))
                continue
            if live is None:
                report.deleted.append(entry)
                continue
            if inventory.prune_disabled(live):
                report.kept.append((entry, f"annotated {inventory.PRUNE_ANNOTATION}: disabled"))
                continue
            labels = live.get("metadata", {}).get("labels") or {}
            if any(labels.get(k) != v for k, v in unit_labels.items()):
                report.kept.append(
                    (entry, "no longer labelled as this unit's; another owner took it")
                )
                continue
            # Forget it first: the watch's DELETED event must not look like drift.
            remembered = self.state.pop(key, None)
            try:
                await client.delete(entry.api_version, key.kind, key.name, key.namespace or None)
            except KubeError as error:
                if remembered is not None:
                    self.state[key] = remembered
                report.failures.append((entry, error.message))
                continue
            self._cache.forget(key)
            report.deleted.append(entry)
        return report


def _immutable(error: KubeError) -> bool:
    return "immutable" in error.message or "Forbidden: updates to" in error.message
