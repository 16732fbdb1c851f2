from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from fleet.models import HelmRelease, HelmRepository, ManifestError
from fleet.models.helmrelease import release_name_for

BASE: dict[str, Any] = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2",
    "kind": "HelmRelease",
    "metadata": {"name": "podinfo", "namespace": "apps"},
    "spec": {
        "interval": "5m",
        "chart": {
            "spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}
        },
    },
}


def release(spec: dict[str, Any] | None = None, **metadata: Any) -> HelmRelease:
    manifest = copy.deepcopy(BASE)
    manifest["spec"].update(spec or {})
    manifest["metadata"].update(metadata)
    return HelmRelease.from_manifest(
        manifest, file="apps/podinfo.yaml", default_namespace="fleet-system"
    )


def test_defaults_follow_flux() -> None:
    hr = release()
    spec = hr.spec
    assert spec.effective_timeout == datetime.timedelta(minutes=5)
    assert spec.effective_max_history == 5
    assert hr.chart_spec is not None and hr.chart_spec.version == "*"
    assert hr.chart_spec.source_ref.namespace == "apps"
    assert spec.install.remediation.retries == 0
    assert not spec.install.remediation.remediates_last_failure
    assert spec.install.crds_policy == "Create" and spec.upgrade.crds == "Skip"
    assert spec.upgrade.remediation.strategy == "rollback"
    assert not spec.upgrade.remediation.remediates_last_failure
    assert spec.uninstall.deletion_propagation == "background"
    assert spec.drift_detection.mode == "disabled"
    assert (spec.suspend, spec.test.enable, spec.upgrade.preserve_values) == (False,) * 3
    assert hr.release_name == "podinfo" and hr.release_namespace == "apps"
    assert hr.unsupported_fields() == []


def test_upgrade_remediates_the_last_failure_once_retries_are_set() -> None:
    with_retries = release({"upgrade": {"remediation": {"retries": 2}}})
    assert with_retries.spec.upgrade.remediation.remediates_last_failure
    opted_out = release({"upgrade": {"remediation": {"retries": 2, "remediateLastFailure": False}}})
    assert not opted_out.spec.upgrade.remediation.remediates_last_failure


def test_release_name_is_target_namespace_dash_name() -> None:
    assert release({"targetNamespace": "web"}).release_name == "web-podinfo"
    assert release({"targetNamespace": "web", "releaseName": "x"}).release_name == "x"
    assert release({"targetNamespace": "web"}).release_namespace == "web"


def test_long_release_names_are_shortened_as_flux_does() -> None:
    name = release_name_for("a" * 30, "b" * 30, None)
    assert len(name) == 53
    assert name.startswith("b" * 30 + "-" + "a" * 9 + "-")
    assert name == release_name_for("a" * 30, "b" * 30, None)  # stable
    assert release_name_for("x", None, None) == "x"


def test_dependencies_default_to_the_release_namespace() -> None:
    hr = release({"dependsOn": [{"name": "db"}, {"name": "cache", "namespace": "infra"}]})
    assert [str(k) for k in hr.dependency_keys] == ["apps/db", "infra/cache"]


def test_values_from_defaults_its_key() -> None:
    hr = release({"valuesFrom": [{"kind": "ConfigMap", "name": "env"}]})
    assert hr.spec.values_from[0].values_key == "values.yaml"
    assert hr.spec.values_from[0].target_path is None


def test_unsupported_fields_are_reported_by_their_yaml_names() -> None:
    hr = release(
        {
            "postRenderers": [{"kustomize": {"patches": []}}],
            "kubeConfig": {"secretRef": {"name": "x"}},
            "commonMetadata": {"labels": {"a": "b"}},
        }
    )
    assert hr.unsupported_fields() == [
        "spec.commonMetadata",
        "spec.kubeConfig",
        "spec.postRenderers",
    ]


def test_chart_and_chart_ref_are_exclusive() -> None:
    with pytest.raises(ManifestError, match=r"exactly one of spec\.chart and spec\.chartRef"):
        release({"chartRef": {"kind": "OCIRepository", "name": "podinfo"}})
    manifest = copy.deepcopy(BASE)
    del manifest["spec"]["chart"]
    manifest["spec"]["chartRef"] = {"kind": "OCIRepository", "name": "podinfo"}
    hr = HelmRelease.from_manifest(manifest, file="x.yaml", default_namespace="apps")
    assert "spec.chartRef" in hr.unsupported_fields()


def test_errors_name_file_object_and_field() -> None:
    with pytest.raises(ManifestError) as caught:
        release({"driftDetection": {"mode": "sometimes"}})
    text = str(caught.value)
    assert text.startswith("apps/podinfo.yaml: HelmRelease/apps/podinfo: spec.driftDetection.mode")
    with pytest.raises(ManifestError, match="JSON pointer"):
        release({"driftDetection": {"ignore": [{"paths": ["spec.replicas"]}]}})


def test_helm_repository_defaults_and_url_checks() -> None:
    manifest = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "charts"},
        "spec": {"url": "https://charts.example.com"},
    }
    repository = HelmRepository.from_manifest(manifest, file="x", default_namespace="apps")
    assert repository.spec.type == "default"
    assert repository.spec.effective_interval == datetime.timedelta(minutes=1)
    assert str(repository.key) == "apps/charts"
    oci = copy.deepcopy(manifest)
    oci["spec"]["url"] = "https://registry.example.com"
    oci["spec"]["type"] = "oci"
    with pytest.raises(ManifestError, match="oci://"):
        HelmRepository.from_manifest(oci, file="x", default_namespace="apps")
