"""The agent's state in its own cluster: Unit objects (spec summary, status, inventory)
and Kubernetes Events about them.

Writes are skipped when nothing changed, so a periodic resync of unchanged units makes
no write requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from fleet.api import unit as unit_api
from fleet.core import drift, health
from fleet.kube import KubeClient, KubeError, NotFound

log = logging.getLogger(__name__)

Object = dict[str, Any]

EVENT_COMPONENT = "fleet-agent"


class UnitStore:
    def __init__(self, client: KubeClient, namespace: str = unit_api.AGENT_NAMESPACE) -> None:
        self._client = client
        self.namespace = namespace
        self._written: dict[str, str] = {}
        """Digest of what was last written per Unit: unchanged Units cost no request."""
        self._uids: dict[str, str] = {}
        self.listeners: list[Callable[[str, dict[str, Any] | None], None]] = []
        """Called with the Unit's name (and the Event, if one was recorded) after each
        write: the reporters' cue that something changed."""

    async def install(self) -> None:
        """Ensure the agent's namespace and the Unit CRD exist (idempotent)."""
        await self._client.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}},
            field_manager=unit_api.FIELD_MANAGER,
            force=True,
        )
        crd = unit_api.unit_crd()
        await self._client.apply(crd, field_manager=unit_api.FIELD_MANAGER, force=True)
        with anyio.fail_after(60):
            while True:
                live = await self._client.get(
                    crd["apiVersion"], crd["kind"], crd["metadata"]["name"]
                )
                if live is not None and health.assess(live).ready:
                    break
                await anyio.sleep(0.1)
            # Established comes a moment before discovery serves the group version; a
            # list right away can still find no such kind.
            while True:
                self._client.forget_discovery(unit_api.API_VERSION)
                try:
                    await self._client.resource(unit_api.API_VERSION, unit_api.KIND)
                    break
                except NotFound:
                    await anyio.sleep(0.1)

    async def load(self) -> dict[str, Object]:
        """Every Unit in the namespace, by name, as a restarted agent finds them."""
        items, _ = await self._client.list(unit_api.API_VERSION, unit_api.KIND, self.namespace)
        found = {item["metadata"]["name"]: item for item in items}
        for name, item in found.items():
            self._uids[name] = item["metadata"].get("uid", "")
            self._written[name] = drift.desired_digest(
                {
                    "spec": item.get("spec"),
                    "labels": item["metadata"].get("labels"),
                    "status": item.get("status") or {},
                }
            )
        return found

    async def save(
        self,
        name: str,
        spec: Mapping[str, Any],
        labels: Mapping[str, str],
        status: Mapping[str, Any],
    ) -> None:
        """Write a Unit (spec and status in one request), only when it changed.

        Units have no status subresource on purpose: one write per change instead of two
        matters when a thousand units become Ready at once.
        """
        digest = drift.desired_digest(
            {"spec": dict(spec), "labels": dict(labels), "status": dict(status)}
        )
        if self._written.get(name) == digest:
            return
        applied = await self._client.apply(
            {
                "apiVersion": unit_api.API_VERSION,
                "kind": unit_api.KIND,
                "metadata": {"name": name, "namespace": self.namespace, "labels": dict(labels)},
                "spec": dict(spec),
                "status": dict(status),
            },
            field_manager=unit_api.FIELD_MANAGER,
            force=True,
        )
        self._uids[name] = applied["metadata"].get("uid", "")
        self._written[name] = digest
        self._notify(name, None)

    def _notify(self, name: str, event: dict[str, Any] | None) -> None:
        for listener in self.listeners:
            listener(name, event)

    async def delete(self, name: str) -> None:
        await self._client.delete(unit_api.API_VERSION, unit_api.KIND, name, self.namespace)
        self._written.pop(name, None)
        self._uids.pop(name, None)

    async def record_event(self, unit_name: str, type_: str, reason: str, message: str) -> None:
        """A Kubernetes Event on the Unit (``kubectl events``, ``fleet events``); best effort."""
        now = unit_api.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{unit_name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": unit_api.API_VERSION,
                "kind": unit_api.KIND,
                "name": unit_name,
                "namespace": self.namespace,
                "uid": self._uids.get(unit_name, ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": EVENT_COMPONENT},
            "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": EVENT_COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._notify(unit_name, event)
        try:
            await self._client.create(event)
        except KubeError as error:
            log.warning("could not record event %s on unit %s: %s", reason, unit_name, error)
