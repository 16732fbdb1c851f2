"""Render several units of one checkout with one ``kustomize build``.

Starting kustomize costs more than building a small unit (about 15 ms of CPU against
4 ms), so when a new revision arrives and a thousand units render at once, the agent
hands them over in batches. Each unit is still prepared exactly as on its own (its
private folder, its kustomization, its confinement checks); a generated kustomization
then lists every unit's folder through a wrapper that marks the unit's objects with an
annotation, and the output is split back by that mark, the mark removed as text, so the
rest of the pipeline (postBuild substitution works on each document's text) sees what a
build of the unit alone prints.

Anything unusual falls back to building each unit on its own, so results and messages
never depend on which units happened to share a batch: a failed or slow batch build,
any kustomize warning (it could not be told which unit it belongs to), a mark found
other than exactly once per document. Units whose kustomizations reach beyond
themselves (``vars``, ``openapi`` and the like, see ``BATCH_HOSTILE_FIELDS``) or that
fetch remote bases are never batched.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleet import tools
from fleet.core import manifests
from fleet.models.kustomization import KustomizationSpec
from fleet.render import kustomize
from fleet.render.kustomize import PreparedUnit, RenderError, RenderResult

MARK = "fleet.dev/render-batch-unit"
"""The annotation that tells a batch's objects apart; never reaches a cluster."""
_MARK_LINE = re.compile(
    rf"^  annotations:\n    {re.escape(MARK)}: \"(?P<alone>\d+)\"\n(?!    )"
    rf"|^    {re.escape(MARK)}: \"(?P<among>\d+)\"\n",
    re.MULTILINE,
)
"""The mark as kustomize prints it (keys sorted, two-space indent, the value quoted),
with the ``annotations:`` line before it when nothing follows in that map: kustomize
drops an empty map, so both lines go."""

Request = tuple[KustomizationSpec, Mapping[str, str] | None]
"""A unit's spec and the variables resolved for its postBuild.substituteFrom."""


def render_many(
    checkout_root: Path,
    requests: Sequence[Request],
    *,
    kustomize_binary: Path | None = None,
    strict_substitution: bool = True,
    verified_checkout: bool = False,
) -> list[RenderResult | RenderError]:
    """Each request's render (or why it failed), in order; as ``kustomize.render`` gives
    for each unit alone."""
    root = checkout_root.resolve()
    if len(requests) == 1 or not root.is_dir():
        return [
            _render_alone(
                root, spec, variables, kustomize_binary, strict_substitution, verified_checkout
            )
            for spec, variables in requests
        ]
    binary = tools.find(tools.KUSTOMIZE, kustomize_binary)
    with contextlib.ExitStack() as folders:
        prepared: list[PreparedUnit | RenderError] = []
        for spec, _ in requests:
            try:
                unit = kustomize.prepared_unit(root, spec, verified_checkout=verified_checkout)
                prepared.append(folders.enter_context(unit))
            except RenderError as error:
                prepared.append(error)
        together = [p for p in prepared if isinstance(p, PreparedUnit) and p.batchable]
        outputs = _build_together(binary, root, together) if len(together) > 1 else {}
        results: list[RenderResult | RenderError] = []
        for unit_, (_, variables) in zip(prepared, requests, strict=True):
            if isinstance(unit_, RenderError):
                results.append(unit_)
                continue
            try:
                output, stderr = outputs.get(id(unit_)) or unit_.build(binary)
                result = unit_.finish(output, stderr, variables, strict_substitution)
                if any(MARK in (o["metadata"].get("annotations") or {}) for o in result.objects):
                    output, stderr = unit_.build(binary)
                    result = unit_.finish(output, stderr, variables, strict_substitution)
                results.append(result)
            except RenderError as error:
                results.append(error)
        return results


def _render_alone(
    root: Path,
    spec: KustomizationSpec,
    variables: Mapping[str, str] | None,
    binary: Path | None,
    strict: bool,
    verified_checkout: bool,
) -> RenderResult | RenderError:
    try:
        return kustomize.render(
            root,
            spec,
            variables,
            kustomize=binary,
            strict_substitution=strict,
            verified_checkout=verified_checkout,
        )
    except RenderError as error:
        return error


def _build_together(
    binary: Path, root: Path, units: Sequence[PreparedUnit]
) -> dict[int, tuple[str, str]]:
    """kustomize's output for each unit (by ``id``), from one build; empty when the batch
    cannot stand for the units' own builds."""
    folder = root / f".fleet-batch-{secrets.token_hex(6)}"
    try:
        folder.mkdir()
        for number, unit in enumerate(units):
            wrapper = folder / f"u{number}"
            wrapper.mkdir()
            _write_yaml(
                wrapper / "kustomization.yaml",
                {
                    "apiVersion": kustomize.KUSTOMIZE_API_VERSION,
                    "kind": "Kustomization",
                    "resources": [os.path.relpath(unit.folder, wrapper)],
                    "transformers": ["mark.yaml"],
                },
            )
            _write_yaml(
                wrapper / "mark.yaml",
                {
                    "apiVersion": "builtin",
                    "kind": "AnnotationsTransformer",
                    "metadata": {"name": "fleet-render-batch"},
                    "annotations": {MARK: str(number)},
                    "fieldSpecs": [{"path": "metadata/annotations", "create": True}],
                },
            )
        _write_yaml(
            folder / "kustomization.yaml",
            {
                "apiVersion": kustomize.KUSTOMIZE_API_VERSION,
                "kind": "Kustomization",
                "resources": [f"u{number}" for number in range(len(units))],
            },
        )
        completed = subprocess.run(
            [str(binary), "build", "--load-restrictor=LoadRestrictionsNone", str(folder)],
            cwd=root,
            env={**os.environ, "HOME": str(root.parent)},
            capture_output=True,
            text=True,
            timeout=min(unit.timeout for unit in units),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if completed.returncode != 0 or completed.stderr.strip():
        return {}
    split = split_output(completed.stdout, len(units))
    if split is None:
        return {}
    return {id(unit): (text, "") for unit, text in zip(units, split, strict=True)}


def split_output(output: str, units: int) -> list[str] | None:
    """Each unit's documents of a batch's output, the mark removed; None when a document
    does not carry exactly one mark of a unit of the batch."""
    documents: list[list[str]] = [[] for _ in range(units)]
    for document in kustomize.split_documents(output):
        if not document.endswith("\n"):
            document += "\n"
        marks = list(_MARK_LINE.finditer(document))
        if len(marks) != 1:
            return None
        mark = marks[0]
        unit = int(mark["alone"] or mark["among"])
        if unit >= units:
            return None
        documents[unit].append(document[: mark.start()] + document[mark.end() :])
    return ["---\n".join(parts) for parts in documents]


def _write_yaml(path: Path, document: object) -> None:
    path.write_text(manifests.dump_yaml(document), encoding="utf-8")
