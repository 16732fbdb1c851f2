"""``status.inventory`` in Flux's format: what a Kustomization (or HelmRelease) applied.

Each entry is ``{id: <namespace>_<name>_<group>_<kind>, v: <version>}`` (cli-utils'
``ObjMetadata`` string): a cluster-scoped object has an empty namespace
(``_podinfo__Namespace``), the core group is empty (``apps_web__ConfigMap``), and a colon
in an RBAC name is written as ``__``. ``flux tree`` and ``flux diff`` parse these ids.
"""

from __future__ import annotations

from collections.abc import Iterable

import pydantic

from fleet.api.flux import base
from fleet.core.inventory import InventoryEntry
from fleet.core.manifests import ObjectKey


def inventory_id(namespace: str, name: str, group: str, kind: str) -> str:
    """The entry id of an object: ``inventory_id("apps", "web", "apps", "Deployment")``
    is ``apps_web_apps_Deployment``."""
    return ObjectKey(group=group, kind=kind, namespace=namespace, name=name).to_inventory_id()


def parse_inventory_id(entry_id: str) -> ObjectKey:
    """The object an entry id names; raises ValueError on a malformed id."""
    return ObjectKey.from_inventory_id(entry_id)


class ResourceRef(base.StatusModel):
    """One applied object: its id and the API version (``v1``, ``v1beta2``) it was applied in."""

    KEEP_EMPTY = frozenset({"id", "version"})

    id: str = pydantic.Field(min_length=1)
    version: str = pydantic.Field(validation_alias="v", serialization_alias="v")

    @pydantic.field_validator("id")
    @classmethod
    def _parses(cls, entry_id: str) -> str:
        parse_inventory_id(entry_id)
        return entry_id

    @property
    def key(self) -> ObjectKey:
        return parse_inventory_id(self.id)

    @classmethod
    def of(cls, entry: InventoryEntry) -> ResourceRef:
        return cls(id=entry.key.to_inventory_id(), version=entry.version)

    def to_entry(self) -> InventoryEntry:
        return InventoryEntry(self.key, self.version)


class ResourceInventory(base.StatusModel):
    """``status.inventory``: ``entries`` is written even when empty, as Flux does."""

    KEEP_EMPTY = frozenset({"entries"})

    entries: list[ResourceRef] = pydantic.Field(default_factory=list)

    @classmethod
    def of(cls, entries: Iterable[InventoryEntry]) -> ResourceInventory:
        """The inventory of fleet's own entries (``fleet.core.inventory``), in their order."""
        return cls(entries=[ResourceRef.of(e) for e in entries])

    def to_entries(self) -> list[InventoryEntry]:
        return [ref.to_entry() for ref in self.entries]
