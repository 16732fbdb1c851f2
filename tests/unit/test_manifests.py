from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import yaml

from fleet.core import manifests
from fleet.core.manifests import ObjectKey
from fleet.models import ManifestError

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"""

BILLION_LAUGHS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: lol}
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def error_for(text: str | bytes, **limits: int) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        manifests.load_manifests(text, "apps/web.yaml", **limits)
    return caught.value


def test_loads_documents_in_order_and_skips_empty_ones() -> None:
    objects = manifests.load_manifests(f"---\n{DEPLOYMENT}---\n---\n{CONFIGMAP}", "a.yaml")
    assert [o["kind"] for o in objects] == ["Deployment", "ConfigMap"]
    assert objects[0]["spec"]["replicas"] == 2


def test_timestamps_stay_strings_as_in_kubernetes() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {day: 2024-01-31}\n"
    assert manifests.load_manifests(text, "a.yaml")[0]["data"] == {"day": "2024-01-31"}


def test_accepts_bytes_and_generate_name() -> None:
    text = b"apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n"
    assert manifests.load_manifests(text, "job.yaml")[0]["metadata"]["generateName"] == "migrate-"


def test_expands_v1_lists() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n"
    )
    assert [o["metadata"]["name"] for o in manifests.load_manifests(text, "l.yaml")] == ["a", "b"]


def test_refuses_non_mapping_documents() -> None:
    error = error_for(f"{CONFIGMAP}---\n- a\n- b\n")
    assert error.file == "apps/web.yaml, document 2"
    assert error.message == "expected a Kubernetes object, got a list"


def test_refuses_scalar_documents() -> None:
    assert error_for("just text\n").message == "expected a Kubernetes object, got a str"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "kind"),
        ("apiVersion: v1\nkind: ConfigMap\n", "metadata"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n", "metadata.name"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 7}\n", "metadata.name"),
        ("apiVersion: 1\nkind: ConfigMap\nmetadata: {name: a}\n", "apiVersion"),
    ],
)
def test_missing_identity_names_the_field(text: str, field: str) -> None:
    error = error_for(text)
    assert error.field == field
    assert error.file == "apps/web.yaml, document 1"


def test_missing_kind_message_names_what_is_known() -> None:
    error = error_for("apiVersion: v1\nmetadata: {name: a, namespace: b}\n")
    assert str(error) == "apps/web.yaml, document 1: <no kind>/b/a: kind: required field is missing"


def test_billion_laughs_is_refused_without_expanding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Expanded, the bomb has 9**9 "lol"s; the check must visit each distinct node a
    # bounded number of times (memoised), not walk the expansion up to the limit.
    distinct = {id(node) for node in _nodes(yaml.compose(BILLION_LAUGHS))}
    visits = 0
    children = manifests._children

    def counting(node: yaml.Node) -> Iterator[yaml.Node]:
        nonlocal visits
        visits += 1
        return children(node)

    monkeypatch.setattr(manifests, "_children", counting)
    error = error_for(BILLION_LAUGHS)
    assert "aliases expand to more than" in error.message
    assert 0 < visits <= 2 * len(distinct), f"{visits} visits for {len(distinct)} nodes"


def _nodes(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every distinct node reachable from ``root``, each once."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def test_small_alias_use_is_fine() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {app: web}}\n"
        "data: {x: y}\nspec: {selector: *l}\n"
    )
    assert manifests.load_manifests(text, "a.yaml")[0]["spec"]["selector"] == {"app": "web"}


def test_alias_limit_is_configurable() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: &d {a: b}\nx: [*d, *d, *d]\n"
    )
    assert "more than 10 nodes" in error_for(text, max_nodes=10).message


def test_recursive_alias_is_refused() -> None:
    assert "refers to itself" in error_for("a: &a [*a]\n").message


def test_size_limit() -> None:
    error = error_for(CONFIGMAP, max_bytes=10)
    assert error.file == "apps/web.yaml"
    assert "over the 10-byte limit" in error.message


def test_invalid_yaml_names_line() -> None:
    error = error_for("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n")
    assert error.message.startswith("invalid YAML at line")


def test_deep_nesting_is_refused() -> None:
    assert "invalid YAML" in error_for("[" * 20000).message


def test_duplicates_are_refused_with_both_documents() -> None:
    error = error_for(f"{DEPLOYMENT}---\n{CONFIGMAP}---\n{DEPLOYMENT}")
    assert error.object == "Deployment.apps/shop/web"
    assert error.file == "apps/web.yaml, document 3"
    assert error.message == "duplicate object: already defined in document 1"


def test_same_name_in_other_group_or_namespace_is_not_a_duplicate() -> None:
    other_namespace = DEPLOYMENT.replace("shop", "shop2")
    other_group = DEPLOYMENT.replace("apps/v1", "extensions/v1beta1")
    text = f"{DEPLOYMENT}---\n{other_namespace}---\n{other_group}"
    assert len(manifests.load_manifests(text, "a.yaml")) == 3


def test_same_object_in_other_version_is_a_duplicate() -> None:
    text = f"{DEPLOYMENT}---\n{DEPLOYMENT.replace('apps/v1', 'apps/v1beta2')}"
    assert "duplicate" in error_for(text).message


def test_ensure_unique_across_files() -> None:
    first = manifests.load_manifests(CONFIGMAP, "a.yaml")
    second = manifests.load_manifests(CONFIGMAP, "b.yaml")
    with pytest.raises(ManifestError, match="ConfigMap/settings: duplicate object"):
        manifests.ensure_unique([*first, *second], "kustomize build ./apps")


def test_parse_yaml_takes_any_documents() -> None:
    assert manifests.parse_yaml("resources: [a.yaml]\n---\n- 1\n", "k.yaml") == [
        (1, {"resources": ["a.yaml"]}),
        (2, [1]),
    ]


def test_object_key_from_manifest_and_str() -> None:
    deployment = manifests.load_manifests(DEPLOYMENT, "d.yaml")[0]
    key = ObjectKey.from_manifest(deployment)
    assert key == ObjectKey(group="apps", kind="Deployment", namespace="shop", name="web")
    assert str(key) == "Deployment.apps/shop/web"
    assert str(ObjectKey("", "Namespace", "", "shop")) == "Namespace/shop"
    assert str(ObjectKey("", "ConfigMap", "a", "b")) == "ConfigMap/a/b"


def test_object_key_needs_a_name() -> None:
    with pytest.raises(ValueError, match=r"no metadata\.name"):
        ObjectKey.from_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {}})


@pytest.mark.parametrize(
    ("key", "inventory_id"),
    [
        (ObjectKey("apps", "Deployment", "shop", "web"), "shop_web_apps_Deployment"),
        (ObjectKey("", "Namespace", "", "shop"), "_shop__Namespace"),
        (ObjectKey("", "ConfigMap", "shop", "web"), "shop_web__ConfigMap"),
        (
            ObjectKey("rbac.authorization.k8s.io", "ClusterRole", "", "system:metrics"),
            "_system__metrics_rbac.authorization.k8s.io_ClusterRole",
        ),
        (ObjectKey("x.io", "Thing", "ns", "a.b-c"), "ns_a.b-c_x.io_Thing"),
    ],
)
def test_inventory_id_round_trip(key: ObjectKey, inventory_id: str) -> None:
    assert key.to_inventory_id() == inventory_id
    assert ObjectKey.from_inventory_id(inventory_id) == key


@pytest.mark.parametrize("bad", ["", "no-separators", "ns_name_group", "ns__group_"])
def test_malformed_inventory_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid inventory id"):
        ObjectKey.from_inventory_id(bad)


@pytest.mark.parametrize(
    ("api_version", "kind", "predicate"),
    [
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", manifests.is_kustomization),
        ("source.toolkit.fluxcd.io/v1", "GitRepository", manifests.is_gitrepository),
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease", manifests.is_helmrelease),
        ("source.toolkit.fluxcd.io/v1", "HelmRepository", manifests.is_helmrepository),
    ],
)
def test_flux_classifiers(
    api_version: str, kind: str, predicate: Callable[[dict[str, str]], bool]
) -> None:
    assert predicate({"apiVersion": api_version, "kind": kind})
    assert not predicate({"apiVersion": "v1", "kind": kind})


def test_kustomize_config_kustomization_is_not_a_unit() -> None:
    assert not manifests.is_kustomization(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    )
