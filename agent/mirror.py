"""Flux's own objects in the cluster: every unit is also written as its Flux object
(``Kustomization`` kustomize.toolkit.fluxcd.io/v1, ``HelmRelease`` helm.toolkit.fluxcd.io/v2)
with its status in Flux's format on the status subresource, so ``flux get``, ``kubectl
get ks`` and Flux dashboards see what the agent does.

The agent installs the CRDs of these kinds (``fleet.api.flux.crds``: fleet's schemas,
Flux's names) and refuses to start beside Flux's own controllers, which would fight it
for the same objects. Writes go through a queue of their own, coalesced per unit, so a
thousand units becoming Ready at once never wait for these writes; an unchanged object
or status costs no request.

Transitional (issue 15): the agent still reads each unit's definition from Git and keeps
its own record in the ``Unit`` object; the Flux object mirrors it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc

from agent.units import UnitKey
from agent.workqueue import WorkQueue
from fleet.api import unit as unit_api
from fleet.api.flux import crds
from fleet.core import drift, health
from fleet.kube import KubeClient, KubeError, NotFound

log = logging.getLogger(__name__)

Object = dict[str, Any]

FLUX_PART_OF = "flux"
"""Flux labels its own Deployments and CRDs ``app.kubernetes.io/part-of: flux``."""
MAX_WAITING_EVENTS = 20
"""Events kept per unit until its Flux object exists; older ones beyond are dropped."""
WRITERS = 4
"""Mirror writes in flight at once; they share the client's connection limit."""


class FluxControllersRunning(RuntimeError):
    """Flux's own controllers run in this cluster: they and the agent would fight over
    the same objects."""


StatusOf = Callable[[int], Mapping[str, Any]]
"""The status for the object's ``metadata.generation`` (its observedGeneration)."""


@dataclasses.dataclass
class _Mirrored:
    manifest: Object
    status: StatusOf
    written_manifest: str | None = None
    written_status: str | None = None
    generation: int = 0
    written_keys: frozenset[str] = frozenset()
    deleted: bool = False
    uid: str = ""


class FluxMirror:
    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._objects: dict[UnitKey, _Mirrored] = {}
        self._queue: WorkQueue[UnitKey] = WorkQueue()
        self._events: dict[UnitKey, list[tuple[str, str, str]]] = {}
        """Events about units whose Flux object is not written yet, recorded after it is."""
        self._namespaces: set[str] = set()
        """Namespaces known to exist: a Flux object's namespace (``flux-system``) may exist
        nowhere but in Git, where units live without one."""

    async def refuse_beside_flux(self) -> None:
        """Raise FluxControllersRunning when Flux's controllers are deployed here."""
        items, _ = await self._client.list(
            "apps/v1", "Deployment", label_selector=f"{crds.PART_OF_LABEL}={FLUX_PART_OF}"
        )
        if items:
            names = ", ".join(
                f"{d['metadata'].get('namespace')}/{d['metadata']['name']}" for d in items
            )
            raise FluxControllersRunning(
                f"Flux's controllers run in this cluster ({names}): remove them first "
                "(flux uninstall --keep-namespace; see docs/migrating-from-flux.md), the "
                "agent and they would reconcile the same objects"
            )

    async def install(self) -> None:
        """Apply the CRDs of the served Flux kinds and wait until they are served."""
        definitions = crds.custom_resource_definitions()
        for crd in definitions:
            await self._client.apply(crd, field_manager=unit_api.FIELD_MANAGER, force=True)
        with anyio.fail_after(60):
            for crd in definitions:
                while True:
                    live = await self._client.get(
                        crd["apiVersion"], crd["kind"], crd["metadata"]["name"]
                    )
                    if live is not None and health.assess(live).ready:
                        break
                    await anyio.sleep(0.1)
            for served in crds.SERVED_KINDS:
                while True:
                    self._client.forget_discovery(served.api_version)
                    try:
                        await self._client.resource(served.api_version, served.kind)
                        break
                    except NotFound:
                        await anyio.sleep(0.1)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write what was marked, until cancelled."""
        async with anyio.create_task_group() as tasks:
            for _ in range(WRITERS):
                tasks.start_soon(self._writer)
            task_status.started()

    def mark(self, key: UnitKey, manifest: Mapping[str, Any], status: StatusOf) -> None:
        """The unit's Flux object and status as they should be now; written soon."""
        found = self._objects.get(key)
        if found is None:
            self._objects[key] = _Mirrored(dict(manifest), status)
        else:
            found.manifest, found.status, found.deleted = dict(manifest), status, False
        self._queue.add(key)

    def forget(self, key: UnitKey) -> None:
        """The unit left Git: its Flux object is deleted."""
        found = self._objects.get(key)
        if found is not None:
            found.deleted = True
            self._queue.add(key)

    def saw(self, key: UnitKey, generation: int) -> None:
        """The watch saw the object at ``generation`` (``flux suspend`` changed its spec):
        the next status written says it was observed."""
        found = self._objects.get(key)
        if found is not None:
            found.generation = max(found.generation, generation)

    async def record_event(self, key: UnitKey, type_: str, reason: str, message: str) -> None:
        """The Event on the unit's Flux object too (``flux events``, ``kubectl describe``),
        once the object has been written; best effort."""
        found = self._objects.get(key)
        if found is None or found.written_manifest is None:
            waiting = self._events.setdefault(key, [])
            if len(waiting) < MAX_WAITING_EVENTS:
                waiting.append((type_, reason, message))
            return
        manifest = found.manifest
        metadata = manifest["metadata"]
        now = unit_api.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": manifest["apiVersion"],
                "kind": manifest["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": found.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": unit_api.FIELD_MANAGER},
            "reportingComponent": unit_api.FIELD_MANAGER,
            "reportingInstance": unit_api.FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.create(event)
        except KubeError as error:
            log.warning("could not record event %s on %s: %s", reason, key.describe(), error)

    async def _ensure_namespace(self, namespace: str) -> None:
        if namespace in self._namespaces:
            return
        await self._client.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            field_manager=unit_api.FIELD_MANAGER,
        )
        self._namespaces.add(namespace)

    async def _writer(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._write(key)
            except KubeError as error:
                log.warning("could not write Flux object %s: %s", key.describe(), error.message)
                self._queue.add_after(key, 30.0)
            finally:
                self._queue.done(key)

    async def _write(self, key: UnitKey) -> None:
        found = self._objects.get(key)
        if found is None:
            return
        manifest = found.manifest
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        if found.deleted:
            del self._objects[key]
            self._events.pop(key, None)
            await self._client.delete(api_version, kind, name, namespace)
            return
        digest = drift.desired_digest(manifest)
        if found.written_manifest != digest:
            await self._ensure_namespace(namespace)
            applied = await self._client.apply(
                manifest, field_manager=unit_api.FIELD_MANAGER, force=True
            )
            found.generation = int(applied["metadata"].get("generation") or 0)
            found.uid = str(applied["metadata"].get("uid") or "")
            found.written_manifest = digest
            for event in self._events.pop(key, []):
                await self.record_event(key, *event)
        status = dict(found.status(found.generation))
        status_digest = drift.desired_digest(status)
        if found.written_status == status_digest:
            return
        info = await self._client.resource(api_version, kind)
        # A merge patch keeps keys it does not name: the ones written before and gone
        # now are sent as null.
        body = {k: None for k in found.written_keys - status.keys()} | status
        await self._client.request(
            "PATCH",
            info.path(namespace, name) + "/status",
            body={"status": body},
            query={"fieldManager": unit_api.FIELD_MANAGER},
            content_type="application/merge-patch+json",
            what=f"write status of {kind} {namespace}/{name}",
        )
        found.written_status = status_digest
        found.written_keys = frozenset(status)
