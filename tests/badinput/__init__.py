"""A corpus of malformed and hostile input, as data: what a pusher or a caller may send.

``repository.yaml`` holds repository trees an agent must refuse (driven through a real
agent by tests/kube/test_bad_input_corpus.py); ``manifests.yaml`` and ``fleetconfig.yaml``
hold files the parsers must refuse on their own (tests/unit/test_bad_input_pure.py);
``hub.yaml`` holds HTTP requests the hub must refuse (tests/integration/test_security.py).
Inputs too large or too regular to keep as text (alias bombs, files over 4 MiB, deep
nesting) are described by a ``generate`` key and built by :func:`generated`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class RepositoryCase:
    """A tree pushed on top of a good one; the ``unit`` must fail with ``expect`` in its
    Ready message (``unit``: ``root`` or ``<namespace>.<name>``)."""

    name: str
    unit: str
    expect: tuple[str, ...]
    files: dict[str, str]
    symlinks: dict[str, str]

    @property
    def paths(self) -> list[str]:
        return [*self.files, *self.symlinks]


@dataclasses.dataclass(frozen=True)
class TextCase:
    """One file a parser must refuse, naming each of ``expect``."""

    name: str
    text: str
    expect: tuple[str, ...]


def generated(spec: dict[str, Any]) -> str:
    """Build a hostile text too big or too repetitive to keep in the corpus."""
    kind = spec["kind"]
    if kind == "alias-bomb":
        lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for level in range(1, spec.get("levels", 9)):
            refs = ",".join([f"*a{level - 1}"] * 9)
            lines.append(f"a{level}: &a{level} [{refs}]")
        data = "\n".join("    " + line for line in lines)
        return (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  x: y\n"
            f"extra:\n{data}\n"
        )
    if kind == "huge":
        size = spec.get("bytes", 5 * 1024 * 1024)
        filler = "x" * 1000
        lines = size // (len(filler) + 10) + 1
        body = "".join(f"  k{i}: {filler}\n" for i in range(lines))
        return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n{body}"
    if kind == "deep":
        depth = spec.get("depth", 100_000)
        return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\nx: " + "[" * depth
    if kind == "self-alias":
        return "apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: loop\n  self: *m\n"
    raise ValueError(f"unknown generator {kind!r}")


def _content(value: str | dict[str, Any]) -> str:
    return value if isinstance(value, str) else generated(value["generate"])


def _expect(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load((HERE / name).read_text())
    return cases


def repository_cases() -> list[RepositoryCase]:
    return [
        RepositoryCase(
            name=case["name"],
            unit=case.get("unit", "root"),
            expect=_expect(case["expect"]),
            files={path: _content(value) for path, value in case.get("files", {}).items()},
            symlinks=dict(case.get("symlinks", {})),
        )
        for case in _load("repository.yaml")
    ]


def text_cases(file: str) -> list[TextCase]:
    return [
        TextCase(case["name"], _content(case["text"]), _expect(case["expect"]))
        for case in _load(file)
    ]


def hub_cases() -> list[dict[str, Any]]:
    return _load("hub.yaml")
