"""Helm post-renderer: label every object of a release with the unit that owns it.

Helm runs it as ``python -m fleet.helm.postrender '<labels as JSON>'`` with the rendered
manifests on stdin and installs what it prints. The labels let the agent's watches see a
release's objects (drift detection) and let a Kustomization refuse to take them over,
the way Flux's helm-controller labels release objects with ``helm.toolkit.fluxcd.io/*``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence

import yaml


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading with timestamps kept as the strings the chart rendered."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def add_labels(text: str, labels: Mapping[str, str]) -> str:
    """Every document of a YAML stream with ``labels`` merged into its metadata."""
    documents = []
    for document in yaml.load_all(text, Loader=_Loader):
        if not isinstance(document, dict):
            continue
        metadata = document.get("metadata")
        if not isinstance(metadata, dict):
            metadata = document["metadata"] = {}
        existing = metadata.get("labels")
        metadata["labels"] = {**(existing if isinstance(existing, dict) else {}), **labels}
        documents.append(document)
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    labels = json.loads(arguments[0]) if arguments else {}
    sys.stdout.write(add_labels(sys.stdin.read(), labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
