"""Units by kind: keys, Unit object names, the split of a render, and how the CLI names
HelmRelease units."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from agent import units
from agent.units import HELMRELEASE, KUSTOMIZATION, ROOT_KEY, UnitDefinition, UnitKey
from fleet.cli import unitview
from fleet.models import ManifestError


def root() -> UnitDefinition:
    return UnitDefinition(
        units.root_kustomization("clusters/dev", datetime.timedelta(minutes=1)), None, "x"
    )


def release(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "interval": "1m",
            "chart": {
                "spec": {"chart": "demo", "sourceRef": {"kind": "HelmRepository", "name": "r"}}
            },
            **spec,
        },
    }


def kustomization(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"interval": "1m", "prune": True, "path": f"./{name}"},
    }


REPOSITORY = {
    "apiVersion": "source.toolkit.fluxcd.io/v1",
    "kind": "HelmRepository",
    "metadata": {"name": "r", "namespace": "apps"},
    "spec": {"url": "https://charts.example.com"},
}
OCI_SOURCE = {
    "apiVersion": "source.toolkit.fluxcd.io/v1beta2",
    "kind": "OCIRepository",
    "metadata": {"name": "o", "namespace": "apps"},
    "spec": {},
}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


def test_a_render_splits_into_objects_units_of_each_kind_and_sources() -> None:
    split = units.split_render(
        root(),
        [
            release("web", dependsOn=[{"name": "db"}]),
            kustomization("web"),
            REPOSITORY,
            OCI_SOURCE,
            CONFIGMAP,
        ],
        default_namespace="fleet-system",
    )
    assert split.objects == [CONFIGMAP]
    assert [c.key for c in split.children] == [UnitKey(KUSTOMIZATION, "apps", "web")]
    assert [r.key for r in split.releases] == [UnitKey(HELMRELEASE, "apps", "web")]
    assert len(split.units) == 2
    assert [str(r.key) for r in split.helm_repositories] == ["apps/r"]
    assert split.unsupported == ["OCIRepository/o"]
    web = split.releases[0]
    assert web.parent == ROOT_KEY
    # dependsOn names the same kind, as in Flux.
    assert web.depends_on == (UnitKey(HELMRELEASE, "apps", "db"),)


def test_unit_objects_of_both_kinds_never_share_a_name() -> None:
    assert units.unit_resource_name(ROOT_KEY) == "root"
    assert units.unit_resource_name(UnitKey(KUSTOMIZATION, "apps", "web")) == "apps.web"
    assert units.unit_resource_name(UnitKey(HELMRELEASE, "apps", "web")) == ("helmrelease.apps.web")
    unit = {"spec": {"kind": "HelmRelease", "namespace": "apps", "name": "web"}}
    assert units.key_of_unit(unit) == UnitKey(HELMRELEASE, "apps", "web")
    assert units.key_of_unit({"spec": {"namespace": "a", "name": "b"}}).kind == KUSTOMIZATION


def test_an_invalid_helmrelease_fails_the_render_naming_it() -> None:
    with pytest.raises(ManifestError, match=r"HelmRelease/apps/web: spec\.interval"):
        units.split_render(root(), [release("web", interval="soon")], default_namespace="x")


def test_a_definition_of_the_wrong_kind_says_so() -> None:
    split = units.split_render(root(), [release("web")], default_namespace="x")
    with pytest.raises(TypeError, match="HelmRelease/apps/web is not a Kustomization"):
        _ = split.releases[0].kustomization


def test_the_cli_names_helmrelease_units_by_kind() -> None:
    assert unitview.display_name("helmrelease.apps.web") == "helmrelease/apps/web"
    assert unitview.display_name("apps.web") == "apps/web"
    assert unitview.unit_label("helmrelease.apps.web") == "HelmRelease/apps/web"
    assert unitview.unit_label("apps.web") == "Kustomization/apps/web"
    parent = {
        "metadata": {"name": "apps.web"},
        "spec": {"kind": "Kustomization", "namespace": "apps", "name": "web"},
    }
    child = {
        "metadata": {"name": "helmrelease.apps.web"},
        "spec": {"kind": "HelmRelease", "namespace": "apps", "name": "web", "parent": "apps/web"},
    }
    tree = unitview.unit_tree(parent, [parent, child])
    assert tree.label == "Kustomization/apps/web"
    assert [c.label for c in tree.children] == ["HelmRelease/apps/web"]
    assert tree.children[0].children == ()
