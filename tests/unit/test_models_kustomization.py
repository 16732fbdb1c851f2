from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from fleet.models import ManifestError, NamespacedName
from fleet.models.kustomization import Kustomization

td = datetime.timedelta

BASE: dict[str, Any] = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    "kind": "Kustomization",
    "metadata": {"name": "apps", "namespace": "flux-system"},
    "spec": {
        "interval": "10m",
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
    },
}


def kustomization(
    spec: dict[str, Any] | None = None, *, namespace: str | None = "flux-system", **top: Any
) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE)
    manifest["spec"].update(spec or {})
    if namespace is None:
        del manifest["metadata"]["namespace"]
    else:
        manifest["metadata"]["namespace"] = namespace
    manifest.update(top)
    return manifest


def load(manifest: dict[str, Any], default_namespace: str = "fleet-system") -> Kustomization:
    return Kustomization.from_manifest(
        manifest, file="clusters/dev/apps.yaml", default_namespace=default_namespace
    )


def test_defaults_follow_flux() -> None:
    spec = load(kustomization()).spec
    assert spec.interval == td(minutes=10)
    assert spec.path == "./"
    assert spec.deletion_policy == "MirrorPrune"
    assert (spec.wait, spec.suspend, spec.force) == (False, False, False)
    assert spec.depends_on == [] and spec.patches == [] and spec.components == []
    assert spec.post_build is None and spec.target_namespace is None


def test_retry_interval_defaults_to_interval() -> None:
    assert load(kustomization()).spec.effective_retry_interval == td(minutes=10)
    spec = load(kustomization({"retryInterval": "2m"})).spec
    assert spec.effective_retry_interval == td(minutes=2)


@pytest.mark.parametrize(
    ("interval", "timeout", "expected"),
    [
        ("10m", None, td(minutes=9, seconds=30)),  # interval minus 30 s
        ("45s", None, td(seconds=30)),  # never below 30 s
        ("10m", "2m", td(minutes=2)),
        ("10m", "5s", td(seconds=30)),  # explicit values are clamped too, as in Flux's code
    ],
)
def test_timeout_rule(interval: str, timeout: str | None, expected: datetime.timedelta) -> None:
    spec: dict[str, Any] = {"interval": interval}
    if timeout:
        spec["timeout"] = timeout
    assert load(kustomization(spec)).spec.effective_timeout == expected


def test_reads_every_flux_field() -> None:
    spec = load(
        kustomization(
            {
                "path": "./apps/staging",
                "deletionPolicy": "Orphan",
                "dependsOn": [{"name": "infra"}, {"name": "crds", "namespace": "platform"}],
                "healthChecks": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "a"}
                ],
                "wait": True,
                "force": True,
                "suspend": True,
                "targetNamespace": "podinfo",
                "namePrefix": "stg-",
                "nameSuffix": "-v2",
                "commonMetadata": {"labels": {"team": "a"}, "annotations": {"owner": "b"}},
                "patches": [
                    {
                        "patch": "- op: add\n  path: /x\n  value: 1",
                        "target": {"kind": "Deployment", "labelSelector": "app=web"},
                    }
                ],
                "images": [{"name": "nginx", "newName": "mirror/nginx", "newTag": "1.27"}],
                "components": ["../components/ha"],
                "postBuild": {
                    "substitute": {"cluster": "dev"},
                    "substituteFrom": [
                        {"kind": "ConfigMap", "name": "vars"},
                        {"kind": "Secret", "name": "secret-vars", "optional": True},
                    ],
                },
                "serviceAccountName": "deployer",
                "driftIgnoreRules": [{"paths": ["/spec/replicas"], "target": {"kind": "HPA"}}],
            }
        )
    ).spec
    assert spec.path == "./apps/staging"
    assert spec.deletion_policy == "Orphan"
    assert spec.health_checks[0].api_version == "apps/v1"
    assert spec.common_metadata is not None and spec.common_metadata.labels == {"team": "a"}
    assert spec.patches[0].target is not None
    assert spec.patches[0].target.label_selector == "app=web"
    assert spec.images[0].new_name == "mirror/nginx"
    assert spec.post_build is not None
    assert spec.post_build.substitute_from[1].optional is True
    assert spec.service_account_name == "deployer"
    assert spec.drift_ignore_rules[0].paths == ["/spec/replicas"]
    assert spec.name_prefix == "stg-" and spec.name_suffix == "-v2"


def test_depends_on_namespace_defaults_to_own_namespace() -> None:
    unit = load(
        kustomization({"dependsOn": [{"name": "infra"}, {"name": "db", "namespace": "data"}]})
    )
    assert unit.key == NamespacedName("flux-system", "apps")
    assert str(unit.key) == "flux-system/apps"
    assert unit.dependency_keys == [
        NamespacedName("flux-system", "infra"),
        NamespacedName("data", "db"),
    ]
    assert unit.spec.source_ref is not None and unit.spec.source_ref.namespace == "flux-system"


def test_missing_namespace_takes_the_agents_default() -> None:
    unit = load(kustomization({"dependsOn": [{"name": "infra"}]}, namespace=None), "team-a")
    assert unit.key == NamespacedName("team-a", "apps")
    assert unit.dependency_keys == [NamespacedName("team-a", "infra")]


def test_source_ref_is_optional_in_fleet() -> None:
    manifest = kustomization()
    del manifest["spec"]["sourceRef"]
    assert load(manifest).spec.source_ref is None


def test_v1beta2_is_accepted() -> None:
    unit = load(kustomization(apiVersion="kustomize.toolkit.fluxcd.io/v1beta2"))
    assert unit.api_version.endswith("v1beta2")


def test_unsupported_fields_are_reported_not_fatal() -> None:
    unit = load(
        kustomization(
            {
                "kubeConfig": {"secretRef": {"name": "remote"}},
                "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}},
                "healthCheckExprs": [{"apiVersion": "x/v1", "kind": "X", "current": "true"}],
                "dependsOn": [{"name": "infra", "readyExpr": "dep.status.ready"}],
                "postBuild": {"substitute": {}, "substituteStrategy": "Always"},
                "someFutureField": 1,
            }
        )
    )
    assert unit.unsupported_fields() == [
        "spec.decryption",
        "spec.dependsOn[0].readyExpr",
        "spec.healthCheckExprs",
        "spec.kubeConfig",
        "spec.postBuild.substituteStrategy",
        "spec.someFutureField",
    ]


def test_supported_fields_status_and_metadata_extras_are_not_reported() -> None:
    manifest = kustomization(
        {"components": ["x"], "driftIgnoreRules": [{"paths": ["/a"]}], "wait": True},
        status={"conditions": []},
    )
    manifest["metadata"]["uid"] = "1234"
    assert load(manifest).unsupported_fields() == []


def test_snake_case_keys_in_yaml_are_unknown_not_read() -> None:
    unit = load(kustomization({"target_namespace": "oops"}))
    assert unit.spec.target_namespace is None
    assert unit.unsupported_fields() == ["spec.target_namespace"]


def test_python_callers_may_use_attribute_names() -> None:
    unit = Kustomization.model_validate(
        {
            "api_version": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "a"},
            "spec": {"interval": "1m", "prune": False, "target_namespace": "x"},
        }
    )
    assert unit.spec.target_namespace == "x"
    assert unit.metadata.namespace == "default"


def test_dumps_back_to_flux_yaml() -> None:
    unit = load(kustomization({"retryInterval": "90s"}))
    dumped = unit.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped["spec"]["interval"] == "10m0s"
    assert dumped["spec"]["retryInterval"] == "1m30s"
    assert dumped["spec"]["sourceRef"]["kind"] == "GitRepository"


def error_for(manifest: dict[str, Any]) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load(manifest)
    return caught.value


def test_invalid_duration_names_file_object_and_field() -> None:
    error = error_for(kustomization({"interval": "5 minutes"}))
    assert (error.file, error.object, error.field) == (
        "clusters/dev/apps.yaml",
        "Kustomization/flux-system/apps",
        "spec.interval",
    )
    assert str(error) == (
        "clusters/dev/apps.yaml: Kustomization/flux-system/apps: spec.interval: "
        'invalid duration "5 minutes"'
    )


def test_missing_required_field() -> None:
    manifest = kustomization()
    del manifest["spec"]["prune"]
    error = error_for(manifest)
    assert error.field == "spec.prune"
    assert error.message == "required field is missing"


def test_numbers_are_not_durations() -> None:
    error = error_for(kustomization({"interval": 600}))
    assert error.field == "spec.interval"
    assert "expected a string" in error.message


def test_zero_interval_is_refused() -> None:
    assert "must be > 0" in error_for(kustomization({"interval": "0s"})).message


def test_strings_are_not_booleans() -> None:
    error = error_for(kustomization({"prune": "yes"}))
    assert error.field == "spec.prune"
    assert error.message == 'input should be a valid boolean, got "yes"'


def test_nested_field_path_has_list_indexes() -> None:
    error = error_for(kustomization({"dependsOn": [{"name": "a"}, {"namespace": "b"}]}))
    assert error.field == "spec.dependsOn[1].name"


def test_bad_enum_value() -> None:
    error = error_for(kustomization({"deletionPolicy": "Sometimes"}))
    assert error.field == "spec.deletionPolicy"
    assert '"Sometimes"' in error.message


def test_all_problems_are_listed() -> None:
    error = error_for(kustomization({"interval": "soon", "prune": "maybe"}))
    assert error.field == "spec.interval"
    assert "also spec.prune: input should be a valid boolean" in error.message


def test_object_is_named_with_default_namespace_when_unset() -> None:
    error = error_for(kustomization({"interval": "x"}, namespace=None))
    assert error.object == "Kustomization/fleet-system/apps"


def test_wrong_kind_is_refused() -> None:
    error = error_for(kustomization(kind="HelmRelease"))
    assert error.field == "kind"
