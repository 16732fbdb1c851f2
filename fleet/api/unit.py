"""``Unit`` (units.fleet.dev): one reconcile unit's spec summary and status, per cluster.

The agent keeps a Unit per Kustomization it carries out (and one for the cluster path
itself) in its own namespace, so ``kubectl get units -n fleet-system`` shows what Flux
users see with ``flux get kustomizations``, and a restarted agent finds each unit's
inventory there. Only the agent writes Units; people talk to it through annotations
(``fleet reconcile`` / ``suspend`` / ``resume``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

GROUP = "fleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Unit"
PLURAL = "units"
AGENT_NAMESPACE = "fleet-system"
FIELD_MANAGER = "fleet-agent"
"""The one field manager the agent applies every object with."""

ROOT_UNIT = "root"
"""Name of the unit that stands for the cluster path itself."""

REQUESTED_AT_ANNOTATION = "reconcile.fleet.dev/requestedAt"
"""Set by ``fleet reconcile``: any new value asks for an immediate reconcile."""
WITH_SOURCE_ANNOTATION = "reconcile.fleet.dev/withSource"
"""Set to ``"true"`` with a new requestedAt by ``fleet reconcile --with-source``: fetch the
unit's source first, so the reconcile sees the latest commit (Flux's ``--with-source``)."""
SUSPEND_ANNOTATION = "fleet.dev/suspended"
"""Set to ``"true"`` by ``fleet suspend``; removed by ``fleet resume``."""

UNIT_NAME_LABEL = "fleet.dev/unit-name"
UNIT_NAMESPACE_LABEL = "fleet.dev/unit-namespace"
"""Labels on every object a unit applied, as Flux labels with kustomize.toolkit.fluxcd.io/*."""
AGENT_LABEL = "fleet.dev/agent"
"""The namespace of the agent that applied the object: two agents given the same path of
one cluster have units of the same names, and only this tells their objects apart."""
UNIT_KIND_LABEL = "fleet.dev/unit-kind"
"""Set to ``HelmRelease`` on a release's objects (and on HelmRelease Units); absent means
Kustomization, so objects applied before units had kinds keep their labels."""


def unit_resource_name(namespace: str, name: str) -> str:
    """The Unit object's name for a Kustomization ``namespace/name`` (``root`` for the path)."""
    if name == ROOT_UNIT and namespace == AGENT_NAMESPACE:
        return ROOT_UNIT
    return f"{namespace}.{name}"


def unit_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of Unit, installed by the agent on start."""
    printer_columns = [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Revision", "type": "string", "jsonPath": ".status.lastAppliedRevision"},
        {"name": "Objects", "type": "integer", "jsonPath": ".status.inventorySize"},
        {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Message",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
        },
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": "unit",
                "shortNames": ["fu"],
                "categories": ["fleet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    # No status subresource: the agent writes spec and status together,
                    # one request per change (see agent/store.py).
                    "additionalPrinterColumns": printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """Conditions with one set; lastTransitionTime moves only when the status changes."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == type_), None)
    transition = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == value and previous.get("lastTransitionTime")
        else at or now()
    )
    condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    others = [dict(c) for c in conditions if c.get("type") != type_]
    return [condition, *others] if type_ == "Ready" else [*others, condition]


def remove_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions if c.get("type") != type_]


def ready_condition(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition  # type: ignore[no-any-return]
    return None


_REVISION = re.compile(r"^(?P<ref>.*)@sha1:(?P<sha>[0-9a-f]{7,40})$")


def short_revision(revision: str | None) -> str:
    """``main@sha1:0123456789abcdef...`` -> ``main@0123456``, for tables."""
    if not revision:
        return ""
    match = _REVISION.match(revision)
    if not match:
        return revision
    return f"{match['ref']}@{match['sha'][:7]}"
