"""Properties of the manifest parser: arbitrary input never escapes as anything but a
ManifestError, and generated objects survive a dump and a load unchanged."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.core.manifests import ObjectKey, load_manifests
from fleet.models.errors import ManifestError

FILE = "clusters/dev/any.yaml"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dns_names = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)
yaml_punctuation = st.text(
    alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#%@`, \n\t?.0123456789")), max_size=200
)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    group = draw(st.sampled_from(["", "apps", "example.com"]))
    metadata: dict[str, Any] = {"name": draw(dns_names)}
    if draw(st.booleans()):
        metadata["namespace"] = draw(dns_names)
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(dns_names, dns_names, max_size=3))
    return {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": draw(st.sampled_from(["ConfigMap", "Deployment", "Widget"])),
        "metadata": metadata,
        "data": draw(st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=4)),
    }


def unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[ObjectKey, dict[str, Any]] = {}
    for item in items:
        seen.setdefault(ObjectKey.from_manifest(item), item)
    return list(seen.values())


def _only_manifest_errors(data: str | bytes) -> None:
    try:
        result = load_manifests(data, FILE)
    except ManifestError as error:
        assert error.file.startswith(FILE)
        return
    assert isinstance(result, list)
    assert all(isinstance(o, dict) and o["kind"] and o["apiVersion"] for o in result)


@SETTINGS
@given(st.text(max_size=500))
def test_arbitrary_text_raises_only_manifest_errors(text: str) -> None:
    _only_manifest_errors(text)


@SETTINGS
@given(st.binary(max_size=500))
def test_arbitrary_bytes_raise_only_manifest_errors(data: bytes) -> None:
    _only_manifest_errors(data)


@SETTINGS
@given(yaml_punctuation)
def test_yaml_shaped_noise_raises_only_manifest_errors(text: str) -> None:
    _only_manifest_errors(text)
    _only_manifest_errors("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n" + text)


@SETTINGS
@given(values)
def test_any_yaml_value_raises_only_manifest_errors(value: Any) -> None:
    _only_manifest_errors(yaml.safe_dump(value))


@SETTINGS
@given(st.lists(objects(), min_size=1, max_size=6).map(unique))
def test_generated_objects_round_trip(items: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(items, sort_keys=False)
    assert load_manifests(text, FILE) == items
    assert load_manifests(text.encode(), FILE) == items


@SETTINGS
@given(objects())
def test_a_duplicated_object_is_always_refused(item: dict[str, Any]) -> None:
    text = yaml.safe_dump_all([item, item])
    try:
        load_manifests(text, FILE)
    except ManifestError as error:
        assert "duplicate object" in str(error)
        assert str(ObjectKey.from_manifest(item)) in str(error)
    else:
        raise AssertionError("a duplicate was accepted")
