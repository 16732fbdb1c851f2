from __future__ import annotations

import pytest

from fleet.core import substitute
from fleet.core.substitute import SubstitutionError

VARIABLES = {
    "cluster": "dev",
    "empty": "",
    "replicas": "3",
    "path": "/home/bozo/ideas/thoughts.for.today",
    "file": "bash.string.txt",
    "text": "abcABC123ABCabc",
    "image": "ghcr.io/org/app",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: ${cluster}", "name: dev"),
        ("name: app-${cluster}-x", "name: app-dev-x"),
        ("${cluster}${cluster}", "devdev"),
        ("replicas: ${replicas}", "replicas: 3"),
        # defaults: used when unset or empty, as Flux's envsubst does
        ("${missing:=fallback}", "fallback"),
        ("${missing:-fallback}", "fallback"),
        ("${missing=fallback}", "fallback"),
        ("${empty:=fallback}", "fallback"),
        ("${cluster:=fallback}", "dev"),
        ("${missing:=}", ""),
        ("${missing:=${cluster}-suffix}", "dev-suffix"),
        ("${missing:=pre${cluster}}", "predev"),
        ("${missing:=a b: c}", "a b: c"),
        # escapes
        ("$${cluster}", "${cluster}"),
        ("$$${cluster}", "$dev"),
        ("$$$${cluster}", "$${cluster}"),
        ("$${missing:=${cluster}}", "${missing:=dev}"),
        ("pa$$word", "pa$word"),
        # not substitutions
        ("$cluster", "$cluster"),
        ("cost: $5 or $", "cost: $5 or $"),
        ("{cluster}", "{cluster}"),
        # bash string functions
        ("${#cluster}", "3"),
        ("${cluster^}", "Dev"),
        ("${cluster^^}", "DEV"),
        ("${text,}", "abcABC123ABCabc"),
        ("${text,,}", "abcabc123abcabc"),
        ("${path:11}", "ideas/thoughts.for.today"),
        ("${path:11:5}", "ideas"),
        ("${cluster:-5}", "dev"),
        ("${file#*.}", "string.txt"),
        ("${file##*.}", "txt"),
        ("${file%.*}", "bash.string"),
        ("${file%%.*}", "bash"),
        ("${text/abc/xyz}", "xyzABC123ABCabc"),
        ("${text//abc/xyz}", "xyzABC123ABCxyz"),
        ("${text/#abc/XYZ}", "XYZABC123ABCabc"),
        ("${text/%abc/XYZ}", "abcABC123ABCXYZ"),
        ("${image/\\//-}", "ghcr.io-org/app"),
        ("${image//\\//-}", "ghcr.io-org-app"),
        ("${file/./}", "bashstring.txt"),
    ],
)
def test_substitutes_like_flux(text: str, expected: str) -> None:
    assert substitute.substitute(text, VARIABLES) == expected


def test_undefined_variable_is_an_error_naming_it() -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute.substitute("a: 1\nb: ${region}\n", VARIABLES)
    assert caught.value.variable == "region"
    assert 'variable "region" is not set (line 2)' in str(caught.value)
    assert "$${region}" in str(caught.value)


def test_undefined_variable_inside_a_function_is_an_error() -> None:
    with pytest.raises(SubstitutionError, match='"region" is not set'):
        substitute.substitute("${region^^}", VARIABLES)


def test_defaults_are_evaluated_only_when_needed() -> None:
    assert substitute.substitute("${cluster:=${undefined}}", VARIABLES) == "dev"


def test_non_strict_mode_uses_empty_strings() -> None:
    assert substitute.substitute("x${region}y", VARIABLES, strict=False) == "xy"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${region-east}", "missing closing brace"),
        ("${cluster", "missing closing brace"),
        ("${}", "unable to parse variable name"),
        ("${ cluster }", "unable to parse variable name"),
        ("${cluster:?required}", '":?" is not supported'),
        ("${cluster:+set}", '":+" is not supported'),
        ("${text/abc}", 'expected "/" after the pattern'),
    ],
)
def test_bad_syntax_is_reported_with_the_expression(text: str, problem: str) -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute.substitute(f"ok\n{text}\n", VARIABLES)
    message = str(caught.value)
    assert problem in message
    assert "at line 2" in message


def test_merge_variables_inline_wins_and_newlines_go() -> None:
    merged = substitute.merge_variables({"a": "from-cm", "b": "x\ny\n"}, {"a": "inline"})
    assert merged == {"a": "inline", "b": "xy"}


@pytest.mark.parametrize("name", ["1abc", "with-dash", "dot.ted", "", "spa ce"])
def test_invalid_variable_names_are_refused(name: str) -> None:
    with pytest.raises(SubstitutionError, match="is invalid") as caught:
        substitute.merge_variables({}, {name: "v"})
    assert caught.value.variable == name


@pytest.mark.parametrize("name", ["a", "_a", "A_1", "cluster_name", "_"])
def test_valid_variable_names(name: str) -> None:
    substitute.validate_names({name: "v"})


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_disabled_by_label_or_annotation(field: str) -> None:
    manifest = {
        "metadata": {"name": "a", field: {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}
    }
    assert substitute.is_disabled(manifest)


@pytest.mark.parametrize(
    "metadata",
    [
        {"name": "a"},
        {"name": "a", "annotations": {"kustomize.toolkit.fluxcd.io/substitute": "enabled"}},
        {"name": "a", "labels": None},
    ],
)
def test_not_disabled(metadata: dict[str, object]) -> None:
    assert not substitute.is_disabled({"metadata": metadata})
