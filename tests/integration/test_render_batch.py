"""Several units in one kustomize process render exactly as each unit alone (real kustomize)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import workload
from fleet.localkube import toolchain
from fleet.models.kustomization import KustomizationSpec
from fleet.render import batch, kustomize
from fleet.render.kustomize import RenderError, RenderResult
from tests.integration.test_render import write

pytestmark = pytest.mark.usefixtures("kustomize_built")

EXAMPLE_FLEET = Path(__file__).resolve().parents[2] / "clusters"

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  annotations:
    zz-last: "after the mark"
    aa-first: "before it"
data:
  cluster: ${cluster_name}
  replicas: "${replicas:=2}"
"""


def spec(**fields: Any) -> KustomizationSpec:
    return KustomizationSpec.model_validate({"interval": "5m", "prune": True, **fields})


def alone(root: Path, requests: list[batch.Request]) -> list[RenderResult | RenderError]:
    results: list[RenderResult | RenderError] = []
    for unit_spec, variables in requests:
        try:
            results.append(kustomize.render(root, unit_spec, variables))
        except RenderError as error:
            results.append(error)
    return results


def same(
    together: list[RenderResult | RenderError], apart: list[RenderResult | RenderError]
) -> None:
    assert len(together) == len(apart)
    for first, second in zip(together, apart, strict=True):
        if isinstance(second, RenderError):
            assert isinstance(first, RenderError)
            assert str(first) == str(second)
        else:
            assert isinstance(first, RenderResult), first
            assert first.objects == second.objects
            assert first.warnings == second.warnings


def counting_kustomize(folder: Path) -> tuple[Path, Path]:
    """The real kustomize behind a script that logs each start: (script, log)."""
    log = folder / "starts.log"
    script = folder / "kustomize"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {toolchain.binary("kustomize")} "$@"\n')
    script.chmod(0o755)
    return script, log


def starts(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def example_fleet_units(cluster: str) -> list[batch.Request]:
    """The Kustomizations of one cluster of the example fleet, as its agent renders them."""
    requests: list[batch.Request] = []
    for file in sorted((EXAMPLE_FLEET / "clusters" / cluster).rglob("*.yaml")):
        for document in yaml.safe_load_all(file.read_text()):
            if document and document.get("kind") == "Kustomization":
                requests.append((KustomizationSpec.model_validate(document["spec"]), {}))
    return requests


@pytest.mark.parametrize("cluster", ["dev", "staging", "prod"])
def test_the_example_fleet_renders_the_same_in_one_batch(tmp_path: Path, cluster: str) -> None:
    root = tmp_path / "fleet"
    shutil.copytree(EXAMPLE_FLEET, root)
    requests = example_fleet_units(cluster)
    assert len(requests) >= 2
    binary, log = counting_kustomize(tmp_path)
    together = batch.render_many(root, requests, kustomize_binary=binary)
    assert starts(log) == 1
    same(together, alone(root, requests))
    assert sorted(p.name for p in root.rglob(".fleet-*")) == []


def test_the_benchmark_workload_renders_the_same_in_one_batch(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    workload.write_repository(root, 12)
    requests: list[batch.Request] = [
        (KustomizationSpec.model_validate(workload.kustomization(i, "1m")["spec"]), None)
        for i in range(12)
    ]
    binary, log = counting_kustomize(tmp_path)
    together = batch.render_many(root, requests, kustomize_binary=binary)
    assert starts(log) == 1
    same(together, alone(root, requests))
    assert all(isinstance(r, RenderResult) and len(r.objects) == 4 for r in together)


def test_substitution_common_metadata_and_annotations_survive_the_mark(tmp_path: Path) -> None:
    """The mark sits between other annotations, is alone in its map, or is the only
    metadata added; postBuild works on each document's text as in a build alone."""
    root = write(
        tmp_path,
        {
            "a/settings.yaml": CONFIGMAP,
            "b/service.yaml": """\
                apiVersion: v1
                kind: Service
                metadata:
                  name: web
                  annotations: {}
                spec:
                  ports: [{port: 80}]
                """,
            "c/kustomization.yaml": """\
                resources: [../a]
                namePrefix: c-
                commonAnnotations:
                  team: platform
                """,
            "empty/README.md": "nothing to apply here\n",
        },
    )
    requests: list[batch.Request] = [
        (
            spec(
                path="./a",
                targetNamespace="one",
                postBuild={"substitute": {"cluster_name": "dev"}},
            ),
            {"replicas": "3"},
        ),
        (spec(path="./b", commonMetadata={"labels": {"tier": "web"}}), None),
        (spec(path="./c", targetNamespace="two", postBuild={"substitute": {"x": "y"}}), {}),
        (spec(path="./empty"), None),
    ]
    together = batch.render_many(root, requests)
    same(together, alone(root, requests))
    first = together[0]
    assert isinstance(first, RenderResult)
    # kustomize prints the quoted "${replicas:=2}" bare, so the value becomes a number,
    # as in Flux (substitution works on kustomize's output text).
    assert first.objects[0]["data"] == {"cluster": "dev", "replicas": 3}
    assert first.objects[0]["metadata"]["annotations"] == {
        "aa-first": "before it",
        "zz-last": "after the mark",
    }
    service = together[1]
    assert isinstance(service, RenderResult)
    assert "annotations" not in service.objects[0]["metadata"]
    empty = together[3]
    assert isinstance(empty, RenderResult) and empty.objects == []


def test_a_failing_unit_fails_alone_with_its_own_message(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "good/settings.yaml": CONFIGMAP.replace("${cluster_name}", "x"),
            "broken/kustomization.yaml": "resources: [missing.yaml]\n",
            "undefined/settings.yaml": CONFIGMAP,
        },
    )
    requests: list[batch.Request] = [
        (spec(path="./good"), None),
        (spec(path="./broken"), None),
        (spec(path="./undefined", postBuild={"substitute": {"other": "1"}}), None),
        (spec(path="./nowhere"), None),
    ]
    together = batch.render_many(root, requests)
    same(together, alone(root, requests))
    assert isinstance(together[0], RenderResult)
    assert isinstance(together[1], RenderError) and "missing.yaml" in together[1].message
    assert isinstance(together[2], RenderError) and "cluster_name" in together[2].message
    assert isinstance(together[3], RenderError) and "not found" in together[3].message


def test_the_same_object_in_two_units_falls_back_to_separate_builds(tmp_path: Path) -> None:
    """kustomize refuses two resources with one id in a build; each unit alone is fine
    (the agent then reports the conflict between the units, as for separate builds)."""
    root = write(tmp_path, {"shared/settings.yaml": CONFIGMAP.replace("${cluster_name}", "x")})
    requests: list[batch.Request] = [
        (spec(path="./shared", targetNamespace="one"), None),
        (spec(path="./shared", targetNamespace="one"), None),
    ]
    binary, log = counting_kustomize(tmp_path)
    together = batch.render_many(root, requests, kustomize_binary=binary)
    assert starts(log) == 3  # the batch, then each unit alone
    same(together, alone(root, requests))
    assert all(isinstance(r, RenderResult) for r in together)


def test_units_reaching_beyond_themselves_are_not_batched(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "plain/settings.yaml": CONFIGMAP.replace("${cluster_name}", "x"),
            "with-vars/kustomization.yaml": """\
                resources: [../plain]
                vars:
                  - name: SETTINGS
                    objref: {kind: ConfigMap, name: settings, apiVersion: v1}
                """,
        },
    )
    with kustomize.prepared_unit(root.resolve(), spec(path="./plain")) as plain:
        assert plain.batchable
    with kustomize.prepared_unit(root.resolve(), spec(path="./with-vars")) as with_vars:
        assert not with_vars.batchable
    with kustomize.prepared_unit(root.resolve(), spec(path="./")) as whole:
        assert not whole.batchable  # the repository root is rendered from a copy


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            'kind: A\nmetadata:\n  annotations:\n    fleet.dev/render-batch-unit: "1"\n  name: a\n',
            [[], ["kind: A\nmetadata:\n  name: a\n"]],
        ),
        (
            "kind: A\nmetadata:\n  annotations:\n    a: b\n"
            '    fleet.dev/render-batch-unit: "0"\n    z: y\n  name: a\n',
            [["kind: A\nmetadata:\n  annotations:\n    a: b\n    z: y\n  name: a\n"], []],
        ),
        ("kind: A\nmetadata:\n  name: a\n", None),
        ('kind: A\nmetadata:\n  annotations:\n    fleet.dev/render-batch-unit: "7"\n', None),
        (
            'kind: A\ndata:\n  x: |\n    fleet.dev/render-batch-unit: "0"\nmetadata:\n'
            '  annotations:\n    fleet.dev/render-batch-unit: "0"\n',
            None,
        ),
    ],
)
def test_split_output_needs_exactly_one_mark_per_document(
    document: str, expected: list[list[str]] | None
) -> None:
    split = batch.split_output(document, 2)
    if expected is None:
        assert split is None
    else:
        assert split == ["---\n".join(parts) for parts in expected]
