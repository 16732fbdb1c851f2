from __future__ import annotations

from typing import Any

import pytest

from fleet.core import drift
from fleet.core.selector import SelectorError, selector_matches, target_matches
from fleet.models.common import Selector

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web-frontend",
        "namespace": "shop",
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {"autoscaled": "true"},
    },
    "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web"}]}}},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web,tier=frontend", True),
        ("app!=web", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("tier in (frontend, backend)", True),
        ("tier notin (frontend)", False),
        ("app=web,tier in (backend)", False),
        ("", True),
    ],
)
def test_label_selectors_follow_kubernetes_syntax(selector: str, expected: bool) -> None:
    assert selector_matches(selector, DEPLOYMENT["metadata"]["labels"]) is expected


def test_a_bad_selector_is_an_error() -> None:
    with pytest.raises(SelectorError):
        selector_matches("app in web", {})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, True),
        (Selector(kind="Deployment"), True),
        (Selector(group="apps", version="v1", kind="Deployment", namespace="shop"), True),
        (Selector(kind="Deployment", name="web-.*"), True),
        (Selector(kind="Service"), False),
        (Selector(group=""), True),  # empty selects everything, as in kustomize
        (Selector(kind="Deploy.*", group="app.*"), True),
        (Selector(label_selector="tier=frontend", annotation_selector="autoscaled=true"), True),
        (Selector(annotation_selector="autoscaled=false"), False),
    ],
)
def test_targets_select_objects(target: Selector | None, expected: bool) -> None:
    assert target_matches(target, DEPLOYMENT) is expected


def test_ignored_paths_leave_the_comparison() -> None:
    compared = drift.without_paths(DEPLOYMENT, ["/spec/replicas", "/spec/absent/x"])
    assert "replicas" not in compared["spec"]
    assert DEPLOYMENT["spec"]["replicas"] == 3
    scaled = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 9}}
    assert drift.fingerprint(scaled, compared) == drift.fingerprint(DEPLOYMENT, compared)
