"""Rendering units with the real kustomize binary, on Flux-style repository layouts."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleet.models.kustomization import KustomizationSpec
from fleet.render import kustomize
from fleet.render.kustomize import RenderError

pytestmark = pytest.mark.usefixtures("kustomize_built")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
        - name: podinfo
          image: ghcr.io/stefanprodan/podinfo:6.0.0
          env:
            - name: CLUSTER
              value: ${cluster_name:=unknown}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: podinfo
spec:
  selector:
    app: podinfo
  ports:
    - port: 9898
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """apps/base/podinfo (deployment, service) and an apps/staging overlay with a patch."""
    return write(
        tmp_path / "repo",
        {
            "apps/base/podinfo/deployment.yaml": DEPLOYMENT,
            "apps/base/podinfo/service.yaml": SERVICE,
            "apps/base/podinfo/kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources:
                  - deployment.yaml
                  - service.yaml
                """,
            "apps/staging/kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources:
                  - ../base/podinfo
                patches:
                  - path: replicas.yaml
                """,
            "apps/staging/replicas.yaml": """\
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: podinfo
                spec:
                  replicas: 2
                """,
            "components/ha/kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1alpha1
                kind: Component
                patches:
                  - patch: |-
                      apiVersion: apps/v1
                      kind: Deployment
                      metadata:
                        name: podinfo
                        annotations:
                          ha: "true"
                """,
        },
    )


def spec(**fields: Any) -> KustomizationSpec:
    return KustomizationSpec.model_validate({"interval": "5m", "prune": True, **fields})


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_overlay_renders_with_flux_spec_transformations(repo: Path) -> None:
    result = kustomize.render(
        repo,
        spec(
            path="./apps/staging",
            targetNamespace="podinfo",
            namePrefix="stg-",
            nameSuffix="-v1",
            commonMetadata={"labels": {"team": "web"}, "annotations": {"owner": "sre"}},
            images=[{"name": "ghcr.io/stefanprodan/podinfo", "newTag": "6.5.0"}],
            patches=[
                {
                    # Targets the name as written: Flux's patches run before namePrefix.
                    "patch": "- op: replace\n  path: /spec/replicas\n  value: 3",
                    "target": {"kind": "Deployment", "name": "podinfo"},
                }
            ],
        ),
        {},
    )
    objects = by_kind(result.objects)
    deployment, service = objects["Deployment"], objects["Service"]
    assert deployment["metadata"]["name"] == "stg-podinfo-v1"
    assert service["metadata"]["name"] == "stg-podinfo-v1"
    assert {o["metadata"]["namespace"] for o in result.objects} == {"podinfo"}
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/stefanprodan/podinfo:6.5.0"
    assert deployment["metadata"]["labels"] == {"team": "web"}
    assert deployment["metadata"]["annotations"] == {"owner": "sre"}
    # commonMetadata touches metadata only: no pod restarts, no selector changes.
    assert deployment["spec"]["template"]["metadata"] == {"labels": {"app": "podinfo"}}
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "podinfo"}}
    assert service["spec"]["selector"] == {"app": "podinfo"}
    # No postBuild: variables stay as written.
    assert container["env"][0]["value"] == "${cluster_name:=unknown}"


def test_overlay_patch_of_the_repository_applies_without_spec(repo: Path) -> None:
    result = kustomize.render(repo, spec(path="apps/staging"), {})
    assert by_kind(result.objects)["Deployment"]["spec"]["replicas"] == 2
    assert result.warnings == []


def test_components_are_added_relative_to_the_path(repo: Path) -> None:
    result = kustomize.render(
        repo, spec(path="./apps/staging", components=["../../components/ha"]), {}
    )
    assert by_kind(result.objects)["Deployment"]["metadata"]["annotations"] == {"ha": "true"}


def test_checkout_is_never_modified(repo: Path) -> None:
    before = sorted(
        (p.relative_to(repo).as_posix(), p.read_bytes()) for p in repo.rglob("*") if p.is_file()
    )
    kustomize.render(repo, spec(path="./apps/staging", targetNamespace="x", namePrefix="p-"), {})
    plain = write(repo, {"plain/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    kustomize.render(plain, spec(path="./plain"), {})
    after = sorted(
        (p.relative_to(repo).as_posix(), p.read_bytes()) for p in repo.rglob("*") if p.is_file()
    )
    assert [name for name, _ in after] == sorted([*(n for n, _ in before), "plain/cm.yaml"])
    assert not (repo / "plain" / "kustomization.yaml").exists()


def test_folder_without_kustomization_is_generated_like_flux(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "clusters/dev/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: w}\n",
            "clusters/dev/nested/deep/cm.yml": """\
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: deep, namespace: web}
                """,
            "clusters/dev/apps.yaml": """\
                apiVersion: kustomize.toolkit.fluxcd.io/v1
                kind: Kustomization
                metadata: {name: apps, namespace: flux-system}
                spec:
                  interval: 10m
                  path: ./apps
                  prune: true
                  sourceRef: {kind: GitRepository, name: flux-system}
                """,
            "clusters/dev/overlay/kustomization.yaml": "resources: [secret.yaml]\nnamePrefix: o-\n",
            "clusters/dev/overlay/secret.yaml": """\
                apiVersion: v1
                kind: Secret
                metadata: {name: s, namespace: web}
                """,
            "clusters/dev/README.md": "# not a manifest\n",
            "clusters/dev/values.json": '{"not": "listed"}',
            "clusters/dev/.hidden/ignored.yaml": "this: [is not a manifest\n",
            "clusters/dev/.gitlab-ci.yml": "stages: [test]\n",
        },
    )
    result = kustomize.render(root, spec(path="./clusters/dev"), {})
    names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in result.objects)
    assert names == ["ConfigMap/deep", "Kustomization/apps", "Namespace/w", "Secret/o-s"]


def test_plain_folder_with_a_non_kubernetes_yaml_fails_naming_the_file(tmp_path: Path) -> None:
    root = write(tmp_path, {"apps/values.yaml": "replicaCount: 1\n"})
    with pytest.raises(RenderError) as caught:
        kustomize.render(root, spec(path="./apps"), {})
    assert caught.value.path == "./apps"
    assert "apps/values.yaml" in str(caught.value)
    assert "apiVersion: required field is missing" in str(caught.value)


def test_alternative_kustomization_file_names_are_edited(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "app/Kustomization": "resources: [cm.yaml]\n",
            "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        },
    )
    result = kustomize.render(root, spec(path="app", targetNamespace="ns1"), {})
    assert result.objects[0]["metadata"]["namespace"] == "ns1"


@pytest.mark.parametrize("path", ["../", "./apps/../../", "../repo-sibling"])
def test_path_escaping_the_checkout_is_refused(repo: Path, path: str) -> None:
    with pytest.raises(RenderError, match="escapes the repository root"):
        kustomize.render(repo, spec(path=path), {})


@pytest.mark.parametrize(
    "path", ["/apps/staging", "apps/staging", "./apps/staging", "/apps//staging/"]
)
def test_path_with_a_leading_slash_is_taken_from_the_source_root(repo: Path, path: str) -> None:
    expected = kustomize.render(repo, spec(path="./apps/staging"), {}).objects
    assert expected
    assert kustomize.render(repo, spec(path=path), {}).objects == expected


def test_root_path_slash_renders_the_source_root(tmp_path: Path) -> None:
    root = write(tmp_path, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    assert [o["metadata"]["name"] for o in kustomize.render(root, spec(path="/"), {}).objects] == [
        "a"
    ]


def test_host_absolute_path_is_looked_up_inside_the_checkout(repo: Path) -> None:
    with pytest.raises(RenderError, match="path not found"):
        kustomize.render(repo, spec(path=str(repo / "apps" / "staging")), {})


def test_leading_slash_does_not_let_dotdot_escape(repo: Path) -> None:
    with pytest.raises(RenderError, match="escapes the repository root"):
        kustomize.render(repo, spec(path="/../etc"), {})


def test_missing_path_is_refused(repo: Path) -> None:
    with pytest.raises(RenderError, match="path not found"):
        kustomize.render(repo, spec(path="./apps/prod"), {})


def test_path_through_a_symlink_out_of_the_checkout_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = write(
        tmp_path / "outside", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"}
    )
    os.symlink(outside, repo / "linked")
    with pytest.raises(RenderError, match="through a symlink"):
        kustomize.render(repo, spec(path="./linked"), {})


def test_symlink_out_of_the_checkout_anywhere_is_refused(repo: Path, tmp_path: Path) -> None:
    secret = write(
        tmp_path / "outside", {"token.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: t}\n"}
    )
    os.symlink(secret / "token.yaml", repo / "apps" / "base" / "podinfo" / "token.yaml")
    with pytest.raises(RenderError) as caught:
        kustomize.render(repo, spec(path="./apps/staging"), {})
    assert "symlink apps/base/podinfo/token.yaml points outside the repository" in str(caught.value)


def test_symlink_inside_the_checkout_is_fine(repo: Path) -> None:
    os.symlink("base", repo / "apps" / "base-link")
    (repo / "apps" / "staging" / "kustomization.yaml").write_text(
        "resources: [../base-link/podinfo]\n"
    )
    result = kustomize.render(repo, spec(path="./apps/staging"), {})
    assert len(result.objects) == 2


@pytest.mark.parametrize(
    "kustomization",
    [
        "resources: [../../../outside.yaml]\n",
        "resources: [/etc/hostname]\n",
        "configMapGenerator:\n- name: leak\n  files: [key=../../../outside.yaml]\n",
        "patches:\n- path: ../../../outside.yaml\n",
    ],
)
def test_references_out_of_the_checkout_are_refused(
    repo: Path, tmp_path: Path, kustomization: str
) -> None:
    (tmp_path / "outside.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
    (repo / "apps" / "staging" / "kustomization.yaml").write_text(kustomization)
    with pytest.raises(RenderError, match=r"absolute path|points outside the repository"):
        kustomize.render(repo, spec(path="./apps/staging"), {})


def test_references_are_checked_in_nested_bases(repo: Path) -> None:
    (repo / "apps" / "base" / "podinfo" / "kustomization.yaml").write_text(
        "resources: [deployment.yaml, ../../../../escape.yaml]\n"
    )
    with pytest.raises(RenderError) as caught:
        kustomize.render(repo, spec(path="./apps/staging"), {})
    assert "apps/base/podinfo/kustomization.yaml: resources" in str(caught.value)


def test_kustomize_failure_is_readable(repo: Path) -> None:
    (repo / "apps" / "staging" / "kustomization.yaml").write_text(
        "resources: [../base/podinfo, missing.yaml]\n"
    )
    with pytest.raises(RenderError) as caught:
        kustomize.render(repo, spec(path="./apps/staging"), {})
    message = str(caught.value)
    assert message.startswith("./apps/staging: kustomize build failed: ")
    assert "missing.yaml" in message
    assert "no such file or directory" in message
    assert "fleet-render-" not in message and "Error:" not in message
    assert "must build at directory" not in message


def test_post_build_substitution_end_to_end(repo: Path) -> None:
    write(
        repo,
        {
            "apps/staging/settings.yaml": """\
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: settings-${cluster_name}
                data:
                  region: ${region}
                  literal: $${kept}
                """,
            "apps/staging/script.yaml": """\
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: script
                  annotations:
                    kustomize.toolkit.fluxcd.io/substitute: disabled
                data:
                  run.sh: echo ${HOME}
                """,
            "apps/staging/replicas.yaml": """\
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: podinfo
                spec:
                  replicas: ${replicas:=1}
                """,
        },
    )
    (repo / "apps" / "staging" / "kustomization.yaml").write_text(
        "resources: [../base/podinfo, settings.yaml, script.yaml]\n"
        "patches: [{path: replicas.yaml}]\n"
    )
    unit = spec(
        path="./apps/staging",
        postBuild={
            "substitute": {"cluster_name": "staging", "replicas": "4"},
            "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}],
        },
    )
    resolved_from_cluster = {"region": "eu-west-1", "cluster_name": "overridden-inline"}
    objects = kustomize.render(repo, unit, resolved_from_cluster).objects
    names = {o["metadata"]["name"]: o for o in objects}
    settings = names["settings-staging"]
    assert settings["data"] == {"region": "eu-west-1", "literal": "${kept}"}
    assert names["script"]["data"] == {"run.sh": "echo ${HOME}"}
    deployment = names["podinfo"]
    assert deployment["spec"]["replicas"] == 4  # a variable can produce an integer
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]
    assert env["value"] == "staging"


def test_undefined_variable_fails_naming_object_and_variable(repo: Path) -> None:
    write(
        repo,
        {
            "apps/staging/cm.yaml": """\
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: c}
                data: {a: '${nope}'}
                """
        },
    )
    (repo / "apps" / "staging" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    unit = spec(path="./apps/staging", postBuild={"substitute": {"other": "x"}})
    with pytest.raises(RenderError) as caught:
        kustomize.render(repo, unit, {})
    assert 'ConfigMap/c: postBuild substitution: variable "nope" is not set' in str(caught.value)
    assert kustomize.render(repo, unit, {}, strict_substitution=False).objects[0]["data"] == {
        "a": None
    }


def test_post_build_without_variables_leaves_text_alone(repo: Path) -> None:
    unit = spec(path="./apps/staging", postBuild={"substituteFrom": []})
    objects = kustomize.render(repo, unit, {}).objects
    env = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"][0]
    assert env["value"] == "${cluster_name:=unknown}"


def test_invalid_variable_name_is_a_render_error(repo: Path) -> None:
    unit = spec(path="./apps/staging", postBuild={"substitute": {"ok": "1"}})
    with pytest.raises(RenderError, match="postBuild: variable name 'bad-name' is invalid"):
        kustomize.render(repo, unit, {"bad-name": "x"})


def test_duplicates_after_substitution_are_refused(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "a/one.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '${n}'}\n",
            "a/two.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\n",
        },
    )
    unit = spec(path="a", postBuild={"substitute": {"n": "same"}})
    with pytest.raises(RenderError, match="ConfigMap/same: duplicate object"):
        kustomize.render(root, unit, {})


def test_kustomize_timeout_is_a_render_error(repo: Path, tmp_path: Path) -> None:
    slow = tmp_path / "slow-kustomize"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(RenderError, match=r"timed out after 0\.2s"):
        kustomize.render(repo, spec(path="./apps/staging"), {}, kustomize=slow, timeout=0.2)
