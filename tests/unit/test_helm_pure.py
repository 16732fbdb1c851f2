"""The pure parts of releases: values, version choice, history decisions, helm flags,
drift comparison and the post-renderer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.helm import commands, index, objects, postrender, release
from fleet.helm import values as helm_values
from fleet.models import HelmRelease
from fleet.models.common import Selector
from fleet.models.helmrelease import IgnoreRule


def test_values_merge_deeply_and_replace_everything_else() -> None:
    base = {"image": {"tag": "1", "repo": "x"}, "ports": [80], "debug": True}
    overlay = {"image": {"tag": "2"}, "ports": [443], "debug": None}
    merged = helm_values.merge(base, overlay)
    assert merged == {"image": {"tag": "2", "repo": "x"}, "ports": [443], "debug": None}
    assert base["image"] == {"tag": "1", "repo": "x"}


def test_target_path_sets_one_typed_value() -> None:
    layers = [
        ("cm", "replicas: 1\nimage: {tag: a}\n", None),
        ("secret", "s3cr3t", "auth.password"),
        ("cm2", "3", "replicas"),
        ("cm3", "true", "features.enabled"),
        ("cm4", '"007"', "code"),
        ("cm5", "web", "hosts[1].name"),
    ]
    result = helm_values.compose(layers, {"image": {"tag": "b"}})
    assert result == {
        "replicas": 3,
        "image": {"tag": "b"},
        "auth": {"password": "s3cr3t"},
        "features": {"enabled": True},
        "code": "007",
        "hosts": [None, {"name": "web"}],
    }


def test_target_path_escapes_dots() -> None:
    assert helm_values.parse_path(r"annotations.example\.com/x") == [
        "annotations",
        "example.com/x",
    ]
    with pytest.raises(helm_values.ValuesError, match="empty key"):
        helm_values.parse_path("a..b")


def test_values_documents_must_be_mappings() -> None:
    with pytest.raises(helm_values.ValuesError, match=r"ConfigMap apps/env key values\.yaml"):
        helm_values.compose([("ConfigMap apps/env key values.yaml", "- a\n- b\n", None)], None)


def test_values_digest_ignores_key_order() -> None:
    assert helm_values.digest({"a": 1, "b": 2}) == helm_values.digest({"b": 2, "a": 1})
    assert helm_values.digest({"a": 1}).startswith("sha256:")


INDEX = """
apiVersion: v1
entries:
  demo:
    - {name: demo, version: 1.0.0, urls: [demo-1.0.0.tgz], digest: aa}
    - {name: demo, version: 1.1.0, urls: [demo-1.1.0.tgz], digest: bb}
    - {name: demo, version: 2.0.0-rc.1, urls: [demo-2.0.0-rc.1.tgz]}
    - {name: demo, version: 2.0.0, urls: ["https://cdn.example.com/demo-2.0.0.tgz"]}
"""


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("*", "2.0.0"),
        ("", "2.0.0"),
        ("1.x", "1.1.0"),
        ("~1.0", "1.0.0"),
        (">=1.0.0 <2.0.0", "1.1.0"),
        ("2.0.0-rc.1", "2.0.0-rc.1"),
        ("1.0.0", "1.0.0"),
    ],
)
def test_the_newest_version_inside_the_constraint_wins(constraint: str, expected: str) -> None:
    charts = index.parse_index(INDEX, "http://repo")
    assert index.select(charts["demo"], "demo", constraint, "http://repo").version == expected


def test_no_matching_version_says_what_is_offered() -> None:
    charts = index.parse_index(INDEX, "http://repo")
    with pytest.raises(index.ChartIndexError, match=r"matches '>=3'.*offered: 2.0.0, 2.0.0-rc.1"):
        index.select(charts["demo"], "demo", ">=3", "http://repo")
    with pytest.raises(index.ChartIndexError, match="chart 'other' not found"):
        index.select(charts.get("other", []), "other", "*", "http://repo")


def test_package_urls_resolve_against_the_repository() -> None:
    charts = index.parse_index(INDEX, "http://repo/charts")
    by_version = {v.version: v for v in charts["demo"]}
    assert by_version["1.0.0"].package_url("http://repo/charts") == (
        "http://repo/charts/demo-1.0.0.tgz"
    )
    assert by_version["2.0.0"].package_url("http://repo/charts") == (
        "https://cdn.example.com/demo-2.0.0.tgz"
    )


def history(*entries: tuple[int, str]) -> list[release.Revision]:
    return [release.Revision(n, status, "demo-1.0.0") for n, status in entries]


def test_next_step_follows_the_history() -> None:
    assert release.next_step([]) is release.Step.INSTALL
    assert release.next_step(history((1, "uninstalled"))) is release.Step.INSTALL
    assert release.next_step(history((1, "failed"))) is release.Step.REINSTALL
    assert release.next_step(history((1, "deployed"))) is release.Step.UPGRADE
    assert release.next_step(history((1, "superseded"), (2, "failed"))) is release.Step.UPGRADE


def test_a_stuck_release_rolls_back_to_the_last_served_revision() -> None:
    stuck = release.recovery(
        history((1, "superseded"), (2, "failed"), (3, "deployed"), (4, "pending-upgrade"))
    )
    assert stuck is not None and stuck.target is not None and stuck.target.revision == 3
    assert "rolled back to revision 3" in stuck.describe("apps/demo")
    never = release.recovery(history((1, "pending-install")))
    assert never is not None and never.target is None
    assert "uninstalled" in never.describe("apps/demo")
    assert release.recovery(history((1, "deployed"))) is None


def test_retries_count_as_flux_counts_them() -> None:
    assert release.retries_exhausted(0, 1)
    assert not release.retries_exhausted(1, 1) and release.retries_exhausted(1, 2)
    assert not release.retries_exhausted(-1, 100)
    assert release.retries_left(2, 0) == 3
    assert release.retries_left(2, 1) == 2
    assert release.retries_left(2, 3) == 0
    assert release.retries_left(-1, 5) is None


def test_history_is_read_from_helm_json() -> None:
    text = json.dumps(
        [
            {"revision": 2, "status": "deployed", "chart": "demo-1.1.0", "description": "u"},
            {"revision": 1, "status": "superseded", "chart": "demo-1.0.0", "app_version": "1"},
        ]
    )
    parsed = release.parse_history(text)
    assert [r.revision for r in parsed] == [1, 2]
    assert parsed[1].is_chart("demo", "1.1.0") and not parsed[1].is_chart("demo", "1.0.0")


def test_helm_errors_are_condensed() -> None:
    blob = '"' + "x" * 500 + '"'
    text = f'Error: UPGRADE FAILED: cannot patch "web" with kind Deployment: {blob}: bad\n'
    short = release.short_error(text)
    assert short.startswith("UPGRADE FAILED: cannot patch")
    assert "<object elided>" in short and short.endswith(": bad")


def hr(spec: dict[str, Any]) -> HelmRelease:
    manifest = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "interval": "1m",
            "chart": {
                "spec": {"chart": "demo", "sourceRef": {"kind": "HelmRepository", "name": "r"}}
            },
            **spec,
        },
    }
    return HelmRelease.from_manifest(manifest, file="x", default_namespace="apps")


def test_install_flags_follow_the_spec() -> None:
    args = commands.install(
        hr(
            {
                "targetNamespace": "web",
                "timeout": "90s",
                "maxHistory": 3,
                "install": {"createNamespace": True, "crds": "Skip", "disableWait": True},
            }
        ),
        Path("/c.tgz"),
        Path("/v.json"),
        post_renderer=["/py", "-m", "x"],
    )
    assert args[:3] == ["install", "web-web", "/c.tgz"]
    joined = " ".join(args)
    assert "--namespace web" in joined and "--values /v.json" in joined
    assert "--history-max" not in joined and "--timeout 1m30s" in joined
    assert "--create-namespace" in args and "--skip-crds" in args
    assert "--wait" not in args
    assert "--post-renderer /py --post-renderer-args -m --post-renderer-args x" in joined


def test_upgrade_flags_follow_the_spec() -> None:
    plain = commands.upgrade(hr({}), Path("/c.tgz"), Path("/v.json"))
    assert plain[plain.index("--history-max") + 1] == "5"
    assert "--reset-values" in plain and "--wait" in plain and "--wait-for-jobs" in plain
    assert "--timeout" in plain and plain[plain.index("--timeout") + 1] == "5m0s"
    assert "--install" not in plain
    tuned = commands.upgrade(
        hr({"upgrade": {"preserveValues": True, "force": True, "cleanupOnFail": True}}),
        Path("/c.tgz"),
        Path("/v.json"),
    )
    assert "--reuse-values" in tuned and "--force" in tuned and "--cleanup-on-fail" in tuned


def test_uninstall_and_test_flags() -> None:
    release_ = hr(
        {
            "uninstall": {"keepHistory": True, "deletionPropagation": "foreground"},
            "test": {"enable": True, "filters": [{"name": "smoke", "exclude": True}]},
        }
    )
    uninstall = commands.uninstall(release_)
    assert "--keep-history" in uninstall and "foreground" in uninstall
    assert commands.test(release_)[-2:] == ["--filter", "!name=smoke"]


def deployment(replicas: int = 1, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "labels": labels},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "0.5"}}}]}
            },
        },
    }


def normalized(obj: dict[str, Any], cpu: str = "500m") -> dict[str, Any]:
    """What the API server would answer: quantities normalized, defaults filled in."""
    server = json.loads(json.dumps(obj))
    container = server["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["cpu"] = cpu
    container["imagePullPolicy"] = "IfNotPresent"
    server["metadata"]["resourceVersion"] = "7"
    return server


def test_normalization_is_not_drift_but_a_changed_field_is() -> None:
    manifest = deployment()
    target = objects.baseline(manifest, normalized(manifest))
    assert not target.drifted(normalized(manifest))
    scaled = normalized(deployment(replicas=3))
    assert target.drifted(scaled)
    assert [str(c) for c in target.changes(scaled)] == ["/spec/replicas: 1 -> 3"]
    assert target.correction(scaled) == [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    assert target.drifted(None)


def test_a_removed_field_is_added_back_and_an_extra_item_removed() -> None:
    manifest = deployment(team="a")
    target = objects.baseline(manifest, normalized(manifest))
    live = normalized(manifest)
    del live["metadata"]["labels"]
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    patch = target.correction(live)
    assert {"op": "add", "path": "/metadata/labels", "value": {"team": "a"}} in patch
    assert patch[-1] == {"op": "remove", "path": "/spec/template/spec/containers/1"}


def test_ignore_rules_leave_their_paths_out() -> None:
    manifest = deployment()
    everywhere = IgnoreRule(paths=["/spec/replicas"])
    target = objects.baseline(manifest, normalized(manifest), [everywhere])
    assert not target.drifted(normalized(deployment(replicas=5)))
    elsewhere = IgnoreRule(paths=["/spec/replicas"], target=Selector(kind="StatefulSet"))
    target = objects.baseline(manifest, normalized(manifest), [elsewhere])
    assert target.drifted(normalized(deployment(replicas=5)))


def test_objects_can_opt_out_of_drift_detection() -> None:
    manifest = deployment(**{objects.DRIFT_OPT_OUT: "disabled"})
    target = objects.baseline(manifest, normalized(manifest))
    assert not target.drifted(normalized(deployment(replicas=9)))


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (Selector(kind="Deploy.*"), True),
        (Selector(kind="Deploy"), False),
        (Selector(group="apps", version="v1", name="web", namespace="apps"), True),
        (Selector(label_selector="tier=front,team"), True),
        (Selector(label_selector="tier in (front,back),!canary"), True),
        (Selector(label_selector="tier!=front"), False),
        (Selector(annotation_selector="owner"), False),
    ],
)
def test_selectors_match_like_kustomize(selector: Selector, matches: bool) -> None:
    obj = deployment(tier="front", team="a")
    assert objects.selector_matches(selector, obj) is matches


def test_post_renderer_labels_every_object() -> None:
    text = (
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: y}\n"
        "data:\n  when: 2024-01-01\n---\n# just a comment\n---\napiVersion: v1\nkind: Service\n"
        "metadata: {name: b}\n"
    )
    documents = list(yaml.safe_load_all(postrender.add_labels(text, {"fleet.dev/unit-name": "u"})))
    assert [d["metadata"]["labels"] for d in documents] == [
        {"x": "y", "fleet.dev/unit-name": "u"},
        {"fleet.dev/unit-name": "u"},
    ]
    assert documents[0]["data"]["when"] == "2024-01-01"
