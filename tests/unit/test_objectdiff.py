"""What ``fleet diff`` shows: field diffs between live and dry-run objects, and exit codes."""

from __future__ import annotations

from typing import Any

from fleet.core import objectdiff
from fleet.core.objectdiff import Action, Change


def deployment(replicas: int, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", **metadata},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": 1},
    }


def test_server_bookkeeping_and_status_are_not_changes() -> None:
    live = deployment(2, resourceVersion="10", generation=3, uid="u", managedFields=[{}])
    merged = deployment(2, resourceVersion="11", generation=4, uid="u", managedFields=[{}, {}])
    merged["status"] = {"readyReplicas": 0}
    assert objectdiff.update(live, merged, "Deployment/apps/web") is None


def test_changed_field_is_a_unified_diff_of_yaml() -> None:
    change = objectdiff.update(
        deployment(2, labels={"a": "1"}), deployment(3, labels={"a": "1"}), "Deployment/apps/web"
    )
    assert change is not None
    assert change.lines() == [
        "~ Deployment/apps/web (changed)",
        "--- live/Deployment/apps/web",
        "+++ merged/Deployment/apps/web",
        "@@ -6,4 +6,4 @@",
        "   name: web",
        "   namespace: apps",
        " spec:",
        "-  replicas: 2",
        "+  replicas: 3",
    ]


def test_new_pruned_and_failed_objects_are_one_line_each() -> None:
    changes = [
        Change(Action.CREATE, "Deployment/apps/web"),
        Change(Action.PRUNE, "ConfigMap/apps/old"),
        Change(Action.ADD_UNIT, "Kustomization/flux-system/apps"),
        Change(Action.ERROR, "Service/apps/web", note="spec.ports: Required value"),
    ]
    assert objectdiff.format_changes(changes) == [
        "+ Deployment/apps/web (new)",
        "- ConfigMap/apps/old (pruned)",
        "+ Kustomization/flux-system/apps (new unit)",
        "! Service/apps/web (spec.ports: Required value)",
    ]
    assert objectdiff.summary(changes) == "1 new, 1 pruned, 1 new unit, 1 failed"


def test_exit_codes_follow_kubectl_diff() -> None:
    assert objectdiff.exit_code([]) == 0
    assert objectdiff.exit_code([Change(Action.CREATE, "x")]) == 1
    assert objectdiff.exit_code([Change(Action.PRUNE_REFUSED, "x", note="would prune 9")]) == 1
    assert objectdiff.exit_code([Change(Action.CREATE, "x"), Change(Action.ERROR, "y")]) == 2
    assert objectdiff.summary([]) == "no changes"
