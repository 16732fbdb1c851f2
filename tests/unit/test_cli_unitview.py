"""How units read on a terminal: ages, names, rows, events and ownership trees."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from fleet.cli import unitview
from fleet.core.inventory import InventoryEntry, inventory_to_status
from fleet.core.manifests import ObjectKey

NOW = datetime.datetime(2025, 1, 2, 12, 0, 0, tzinfo=datetime.UTC)


def unit(
    resource: str,
    *,
    parent: str | None = None,
    inventory: list[InventoryEntry] | None = None,
    ready: str = "True",
    message: str = "Applied revision: main@sha1:0123456789abcdef0123456789abcdef01234567",
    **extra: Any,
) -> dict[str, Any]:
    namespace, _, name = resource.partition(".")
    if resource == "root":
        namespace, name = "fleet-system", "root"
    return {
        "metadata": {
            "name": resource,
            "creationTimestamp": "2025-01-02T11:55:00Z",
            **extra.pop("metadata", {}),
        },
        "spec": {"namespace": namespace, "name": name, "parent": parent, **extra.pop("spec", {})},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "message": message}],
            "lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
            "inventory": inventory_to_status(inventory or []),
            "inventorySize": len(inventory or []),
            "driftCount": 2,
            **extra,
        },
    }


def entry(
    kind: str, namespace: str, name: str, group: str = "", version: str = "v1"
) -> InventoryEntry:
    return InventoryEntry(ObjectKey(group, kind, namespace, name), version)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (192, "3m12s"),
        (25 * 60 + 30, "25m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (4 * 3600, "4h"),
        (20 * 3600, "20h"),
        (3 * 86400 + 2 * 3600, "3d2h"),
        (3 * 86400, "3d"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (10 * 365 * 86400, "10y"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: float, shown: str) -> None:
    assert unitview.format_age(seconds) == shown


def test_age_of_api_timestamps_with_and_without_fractions() -> None:
    assert unitview.age("2025-01-02T11:59:30Z", NOW) == "30s"
    assert unitview.age("2025-01-02T11:59:30.123456Z", NOW) == "29s"
    assert unitview.age(None, NOW) == "<unknown>"
    assert unitview.age("yesterday", NOW) == "<unknown>"


def test_unit_objects_are_named_as_their_kustomizations() -> None:
    assert unitview.display_name("root") == "root"
    assert unitview.display_name("apps.web") == "apps/web"
    assert unitview.display_name("flux-system.infra.v2") == "flux-system/infra.v2"


def test_table_row_shows_short_revision_counts_and_suspension_asked_for() -> None:
    row = unitview.UnitRow.of(
        unit("apps.web", metadata={"annotations": {"fleet.dev/suspended": "true"}}), NOW
    )
    assert row.cells() == [
        "apps/web",
        "True",
        "main@0123456",
        "True",
        "0",
        "2",
        "5m",
        "Applied revision: main@sha1:0123456789abcdef0123456789abcdef01234567",
    ]


def test_multi_line_messages_fit_on_one_row() -> None:
    row = unitview.UnitRow.of(unit("root", ready="False", message="a\n  b"), NOW)
    assert (row.ready, row.message) == ("False", "a b")


def test_units_are_found_by_every_name_people_use() -> None:
    units = [unit("root"), unit("apps.web"), unit("infra.web"), unit("infra.db")]
    assert unitview.find_unit(units, "root", "ns")["metadata"]["name"] == "root"
    assert unitview.find_unit(units, "apps/web", "ns")["metadata"]["name"] == "apps.web"
    assert unitview.find_unit(units, "apps.web", "ns")["metadata"]["name"] == "apps.web"
    assert unitview.find_unit(units, "db", "ns")["metadata"]["name"] == "infra.db"
    with pytest.raises(unitview.UnitLookupError, match=r"ambiguous.*apps/web, infra/web"):
        unitview.find_unit(units, "web", "ns")
    with pytest.raises(
        unitview.UnitLookupError,
        match=r"unit 'apps' not found in namespace fleet-system; `fleet get units` lists them",
    ):
        unitview.find_unit(units, "apps", "fleet-system")
    with pytest.raises(unitview.UnitLookupError, match="has no units; is the agent running"):
        unitview.find_unit([], "apps", "elsewhere")


def test_root_is_listed_first() -> None:
    units = [unit("apps.web"), unit("root"), unit("apps.api")]
    assert [unitview.unit_name(u) for u in unitview.sort_units(units)] == [
        "root",
        "apps/api",
        "apps/web",
    ]


def test_tree_nests_child_units_with_their_own_inventories() -> None:
    units = [
        unit(
            "root",
            inventory=[entry("Namespace", "", "apps"), entry("ConfigMap", "apps", "cfg")],
        ),
        unit(
            "flux-system.apps",
            parent="fleet-system/root",
            inventory=[entry("Deployment", "apps", "web", "apps"), entry("Service", "apps", "web")],
        ),
        unit("flux-system.infra", parent="fleet-system/root"),
        unit(
            "flux-system.db",
            parent="flux-system/infra",
            inventory=[entry("StatefulSet", "db", "pg", "apps")],
        ),
    ]
    lines = unitview.render_tree(unitview.unit_tree(units[0], units))
    assert lines == [
        "Kustomization/root",
        "├── Namespace/apps",
        "├── ConfigMap/apps/cfg",
        "├── Kustomization/flux-system/apps",
        "│   ├── Deployment/apps/web",
        "│   └── Service/apps/web",
        "└── Kustomization/flux-system/infra",
        "    └── Kustomization/flux-system/db",
        "        └── StatefulSet/db/pg",
    ]
    flat = unitview.tree_summary(units[0], units)
    assert [(u["unit"], u["parent"]) for u in flat] == [
        ("root", None),
        ("flux-system/apps", "root"),
        ("flux-system/infra", "root"),
        ("flux-system/db", "flux-system/infra"),
    ]
    assert flat[1]["objects"][0] == {
        "id": "apps_web_apps_Deployment",
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "apps",
        "name": "web",
    }


def test_tree_of_a_unit_that_names_itself_its_parent_ends() -> None:
    units = [unit("a.b", parent="a/b", inventory=[entry("ConfigMap", "a", "x")])]
    assert unitview.render_tree(unitview.unit_tree(units[0], units)) == [
        "Kustomization/a/b",
        "└── ConfigMap/a/x",
    ]


def test_event_rows_name_the_unit_and_use_the_latest_time() -> None:
    event = {
        "involvedObject": {"apiVersion": "fleet.dev/v1alpha1", "kind": "Unit", "name": "apps.web"},
        "type": "Normal",
        "reason": "DriftCorrected",
        "message": "ConfigMap/apps/cfg changed\nby kubectl",
        "firstTimestamp": "2025-01-02T11:00:00Z",
        "lastTimestamp": "2025-01-02T11:59:50Z",
    }
    assert unitview.event_row(event, NOW) == [
        "10s",
        "Normal",
        "DriftCorrected",
        "Kustomization/apps/web",
        "ConfigMap/apps/cfg changed by kubectl",
    ]
    assert unitview.is_unit_event(event)
    assert unitview.is_unit_event(event, "apps.web")
    assert not unitview.is_unit_event(event, "root")
    pod_event = {**event, "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "x"}}
    assert not unitview.is_unit_event(pod_event)
