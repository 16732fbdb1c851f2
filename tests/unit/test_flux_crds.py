"""CRDs generated from fleet's models: Flux's names and columns, structural schemas."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
import pytest

from fleet.api.flux import crds, openapi

FLUX_NAMES = {
    "kustomizations.kustomize.toolkit.fluxcd.io": (
        "v1",
        "Kustomization",
        ["ks"],
        "fluxcd-appliers",
    ),
    "helmreleases.helm.toolkit.fluxcd.io": ("v2", "HelmRelease", ["hr"], "fluxcd-appliers"),
    "gitrepositories.source.toolkit.fluxcd.io": (
        "v1",
        "GitRepository",
        ["gitrepo"],
        "fluxcd-sources",
    ),
    "helmrepositories.source.toolkit.fluxcd.io": (
        "v1",
        "HelmRepository",
        ["helmrepo"],
        "fluxcd-sources",
    ),
}


def by_name() -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in crds.custom_resource_definitions()}


def schema_of(crd: Mapping[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("name", sorted(FLUX_NAMES))
def test_crd_has_fluxs_group_version_kind_and_names(name: str) -> None:
    version, kind, short_names, category = FLUX_NAMES[name]
    crd = by_name()[name]
    spec = crd["spec"]
    assert spec["group"] == name.split(".", 1)[1]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == name.split(".", 1)[0]
    assert spec["names"]["singular"] == kind.lower()
    assert spec["names"]["shortNames"] == short_names
    assert spec["names"]["categories"] == ["all", "fluxcd", category]
    [served] = spec["versions"]
    assert served["name"] == version and served["served"] and served["storage"]
    assert served["subresources"] == {"status": {}}


def test_printer_columns_are_fluxs() -> None:
    columns = {
        name: [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
        for name, crd in by_name().items()
    }
    assert columns == {
        "kustomizations.kustomize.toolkit.fluxcd.io": ["Age", "Ready", "Status"],
        "helmreleases.helm.toolkit.fluxcd.io": ["Age", "Ready", "Status"],
        "gitrepositories.source.toolkit.fluxcd.io": ["URL", "Age", "Ready", "Status"],
        "helmrepositories.source.toolkit.fluxcd.io": ["URL", "Age", "Ready", "Status"],
    }
    ready = by_name()["kustomizations.kustomize.toolkit.fluxcd.io"]["spec"]["versions"][0][
        "additionalPrinterColumns"
    ][1]
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_crds_are_labelled_as_fleets_not_as_part_of_flux() -> None:
    # `flux uninstall` deletes every CRD labelled part-of=flux, and with it every object.
    for crd in crds.custom_resource_definitions():
        labels = crd["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "fleet"
        assert labels["app.kubernetes.io/managed-by"] == "fleet"
    assert (
        by_name()["helmreleases.helm.toolkit.fluxcd.io"]["metadata"]["labels"][
            "app.kubernetes.io/component"
        ]
        == "helm-controller"
    )


def nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, schema
    for key, child in (schema.get("properties") or {}).items():
        yield from nodes(child, f"{path}.{key}")
    if isinstance(schema.get("items"), Mapping):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from nodes(schema["additionalProperties"], f"{path}.*")


@pytest.mark.parametrize("name", sorted(FLUX_NAMES))
def test_schemas_are_structural(name: str) -> None:
    for path, node in nodes(schema_of(by_name()[name])):
        assert not {"$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "default", "const"} & set(
            node
        ), path
        free_form = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        )
        assert "type" in node or free_form, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_spec_keeps_fields_fleet_does_not_model_and_status_does_not() -> None:
    schema = schema_of(by_name()["kustomizations.kustomize.toolkit.fluxcd.io"])
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    assert spec["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["sourceRef"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert spec["required"] == ["interval", "prune"]


def test_free_form_values_are_kept_as_written() -> None:
    spec = schema_of(by_name()["helmreleases.helm.toolkit.fluxcd.io"])["properties"]["spec"]
    assert spec["properties"]["values"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def test_durations_carry_fluxs_pattern() -> None:
    spec = schema_of(by_name()["kustomizations.kustomize.toolkit.fluxcd.io"])["properties"]["spec"]
    for field in ("interval", "retryInterval", "timeout"):
        assert spec["properties"][field] == {
            "type": "string",
            "pattern": openapi.GO_DURATION_PATTERN,
        }


def test_enums_and_literals_are_kept() -> None:
    spec = schema_of(by_name()["kustomizations.kustomize.toolkit.fluxcd.io"])["properties"]["spec"]
    assert spec["properties"]["sourceRef"]["properties"]["kind"]["enum"] == [
        "GitRepository",
        "OCIRepository",
        "Bucket",
        "ExternalArtifact",
    ]
    decryption = spec["properties"]["decryption"]["properties"]["provider"]
    assert decryption == {"type": "string", "enum": ["sops"]}


def test_status_schema_requires_what_flux_requires_of_a_condition() -> None:
    status = schema_of(by_name()["gitrepositories.source.toolkit.fluxcd.io"])["properties"][
        "status"
    ]
    condition = status["properties"]["conditions"]["items"]
    assert condition["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert condition["properties"]["lastTransitionTime"] == {
        "type": "string",
        "format": "date-time",
    }
    assert status["properties"]["artifact"]["required"] == [
        "revision",
        "lastUpdateTime",
        "path",
        "url",
    ]


def test_served_kind_is_found_by_api_version_and_kind() -> None:
    assert crds.served_kind("helm.toolkit.fluxcd.io/v2", "HelmRelease") is crds.HELM_RELEASE
    assert crds.served_kind("helm.toolkit.fluxcd.io/v2beta2", "HelmRelease") is None


class _Union(pydantic.BaseModel):
    value: int | list[str]


class _Node(pydantic.BaseModel):
    children: list[_Node] = []


def test_a_union_a_structural_schema_cannot_express_is_an_error() -> None:
    with pytest.raises(openapi.SchemaError, match=r"_Union.value: a union"):
        openapi.structural_schema(_Union)


def test_a_recursive_model_is_an_error() -> None:
    with pytest.raises(openapi.SchemaError, match="recursive"):
        openapi.structural_schema(_Node)
