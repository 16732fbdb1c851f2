"""Read every demo cluster's Units: the demo's progress output and readiness check."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from fleet.api import unit as unit_api
from fleet.kube import KubeClient, KubeError
from fleet.localkube.cluster import LocalCluster


@dataclasses.dataclass(frozen=True)
class UnitRow:
    cluster: str
    unit: str
    ready: str
    revision: str
    message: str


async def unit_rows(clusters: Mapping[str, LocalCluster]) -> list[UnitRow]:
    rows: list[UnitRow] = []
    for name, cluster in clusters.items():
        client = await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path))
        try:
            items, _ = await client.list(
                unit_api.API_VERSION, unit_api.KIND, unit_api.AGENT_NAMESPACE
            )
        except KubeError:
            items = []  # the agent has not installed its CRD yet
        finally:
            await client.close()
        for item in sorted(items, key=lambda i: i["metadata"]["name"]):
            status = item.get("status") or {}
            ready = unit_api.ready_condition(status) or {}
            rows.append(
                UnitRow(
                    name,
                    item["metadata"]["name"],
                    str(ready.get("status", "Unknown")),
                    unit_api.short_revision(status.get("lastAppliedRevision")),
                    str(ready.get("message", "")),
                )
            )
    return rows


def all_ready(rows: Sequence[UnitRow], clusters: Sequence[str], minimum_units: int = 1) -> bool:
    """Every cluster has at least ``minimum_units`` units and all of them are Ready."""
    for cluster in clusters:
        mine = [r for r in rows if r.cluster == cluster]
        if len(mine) < minimum_units or any(r.ready != "True" for r in mine):
            return False
    return True
