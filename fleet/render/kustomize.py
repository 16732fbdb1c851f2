"""Render one unit's path with the real ``kustomize``, the way Flux's kustomize-controller does.

The pipeline mirrors Flux: confine the path to the checkout, generate a
kustomization.yaml when the folder has none, write the unit's spec (targetNamespace,
namePrefix/nameSuffix, patches, images, components) into that kustomization, run
``kustomize build``, then apply postBuild substitution and commonMetadata to the objects.

The kustomization is written into a private copy of the unit's folder (a hidden sibling
of it, removed afterwards), so the user's files are never edited, two renders never see
each other's generated files, and the cost does not grow with the size of the checkout.
Confinement is checked before kustomize runs: the unit path, every symlink in the
checkout, and every local file a kustomization reachable from the unit refers to must
stay inside the checkout, because the build runs with ``LoadRestrictionsNone`` (Flux's
setting, which lets overlays use ``../`` files that plain ``kustomize build`` refuses).

Kustomization objects (kustomize.toolkit.fluxcd.io) found in the output are returned
like any other object; the caller turns them into units.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from fleet import tools
from fleet.core import manifests, substitute
from fleet.models.errors import ManifestError, describe_object
from fleet.models.kustomization import KustomizationSpec

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
"""The names kustomize recognises, in its order of preference."""
KUSTOMIZE_API_VERSION = "kustomize.config.k8s.io/v1beta1"
MANIFEST_SUFFIXES = (".yaml", ".yml")
"""What Flux's generator lists; it ignores ``.json`` files, so fleet does too."""
SKIPPED_NAMES = frozenset(
    {"cloudbuild.yaml", "codeship-services.yml", "codeship-steps.yml", "appveyor.yml"}
)
"""CI files Flux's source-controller leaves out of every artifact (with all dotfiles)."""
STDERR_LIMIT = 2000

_REMOTE = re.compile(
    r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:|(github|gitlab|bitbucket)\.(com|org)/)"
)


class RenderError(Exception):
    """A unit could not be rendered; ``path`` names the unit, the message says why."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclasses.dataclass(frozen=True)
class RenderResult:
    objects: list[dict[str, Any]]
    """Rendered objects in kustomize's output order, substituted and labelled."""
    warnings: list[str]
    """Things a user should hear about that did not stop the render (kustomize's stderr)."""


def render(
    checkout_root: Path,
    spec: KustomizationSpec,
    variables: Mapping[str, str] | None = None,
    *,
    kustomize: Path | None = None,
    timeout: float | None = None,
    strict_substitution: bool = True,
    verified_checkout: bool = False,
) -> RenderResult:
    """Render ``spec.path`` of an exported checkout; raises RenderError.

    ``variables`` are those the caller resolved from ``spec.postBuild.substituteFrom``
    (ConfigMaps and Secrets live in the cluster, out of this module's reach); the inline
    ``substitute`` map overrides them. As in Flux, substitution runs only when the unit
    has a ``postBuild`` and at least one variable is defined. ``timeout`` (seconds) bounds
    ``kustomize build`` and defaults to the unit's timeout. ``verified_checkout`` skips
    the walk for symlinks leaving the tree, for a caller that ran :func:`verify_checkout`
    on this (immutable) checkout already: with a thousand units it would walk it a
    thousand times.
    """
    unit = _display_path(spec.path)
    root = checkout_root.resolve()
    if not root.is_dir():
        raise RenderError(unit, f"checkout {checkout_root} is not a directory")
    binary = tools.find(tools.KUSTOMIZE, kustomize)
    with prepared_unit(root, spec, timeout=timeout, verified_checkout=verified_checkout) as unit_:
        output, stderr = unit_.build(binary)
    return unit_.finish(output, stderr, variables, strict_substitution)


BATCH_HOSTILE_FIELDS = frozenset(
    {"vars", "openapi", "sortOptions", "buildMetadata", "crds", "configurations", "helmCharts"}
)
"""Kustomization fields whose effect reaches beyond their own kustomization (global
settings, or resolved at the top of a build): a unit using them is built on its own."""


@dataclasses.dataclass
class PreparedUnit:
    """A unit's private folder with its kustomization written, checked and ready to build."""

    spec: KustomizationSpec
    unit: str
    """The unit's path as the user wrote it, for messages."""
    folder: Path
    """The private copy to build."""
    original: Path
    """The user's folder, which messages name instead of the copy."""
    repository: Path
    """The root that confines the build (the checkout, or a copy of it)."""
    timeout: float
    warnings: list[str]
    batchable: bool
    """Can share a kustomize process with other units (see ``fleet.render.batch``)."""

    def unscratch(self, text: str) -> str:
        return _unscratch(text, self.folder, self.original)

    def build(self, binary: Path) -> tuple[str, str]:
        """``kustomize build`` of this unit alone: (output, stderr)."""
        try:
            return _build(binary, self.folder, self.repository, self.unit, self.timeout)
        except RenderError as error:
            raise RenderError(self.unit, self.unscratch(error.message)) from None

    def finish(
        self,
        output: str,
        stderr: str,
        variables: Mapping[str, str] | None,
        strict_substitution: bool = True,
    ) -> RenderResult:
        """The objects of kustomize's output: substituted, with commonMetadata, unique."""
        spec, unit = self.spec, self.unit
        warnings = [
            *self.warnings,
            *(
                self.unscratch(_tidy(line, self.repository))
                for line in stderr.splitlines()
                if line.strip()
            ),
        ]
        merged: dict[str, str] | None = None
        if spec.post_build is not None:
            try:
                merged = substitute.merge_variables(variables or {}, spec.post_build.substitute)
            except substitute.SubstitutionError as error:
                raise RenderError(unit, f"postBuild: {error}") from error
        objects = _read_output(output, unit, merged or None, strict_substitution)
        if spec.common_metadata is not None:
            for manifest in objects:
                _set_common_metadata(
                    manifest, spec.common_metadata.labels, spec.common_metadata.annotations
                )
        try:
            manifests.ensure_unique(objects, f"kustomize build {unit}")
        except ManifestError as error:
            raise RenderError(unit, str(error)) from error
        return RenderResult(objects=objects, warnings=warnings)


@contextlib.contextmanager
def prepared_unit(
    root: Path,
    spec: KustomizationSpec,
    *,
    timeout: float | None = None,
    verified_checkout: bool = False,
) -> Iterator[PreparedUnit]:
    """Confine, copy and prepare a unit of the (resolved) checkout ``root``; the private
    folder is removed on exit. Raises RenderError naming what is wrong."""
    unit = _display_path(spec.path)
    relative = _confined_relative_path(root, spec.path, unit)
    if not verified_checkout:
        verify_checkout(root, unit)
    seconds = timeout if timeout is not None else spec.effective_timeout.total_seconds()
    with _private_unit_folder(root, relative) as (unit_dir, repository):
        try:
            _prepare_kustomization(unit_dir, spec, repository, unit)
            remotes, fields = _check_references(unit_dir, repository, unit)
        except RenderError as error:
            raise RenderError(unit, _unscratch(error.message, unit_dir, root / relative)) from None
        yield PreparedUnit(
            spec=spec,
            unit=unit,
            folder=unit_dir,
            original=root / relative,
            repository=repository,
            timeout=seconds,
            warnings=[
                f"remote base {remote!r} is fetched at render time and not pinned by the "
                "fleet revision"
                for remote in remotes
            ],
            batchable=repository == root and not remotes and not fields & BATCH_HOSTILE_FIELDS,
        )


def _display_path(path: str) -> str:
    clean = path.strip() or "./"
    return clean if clean.startswith(("./", "../", "/")) or clean == "." else f"./{clean}"


def _confined_relative_path(root: Path, path: str, unit: str) -> PurePosixPath:
    """The unit's folder relative to the checkout, refusing anything that leaves it.

    As Flux joins ``spec.path`` onto the source root, ``/``, ``/apps``, ``./apps`` and
    ``apps`` all name folders of the checkout: a leading ``/`` is the root, not the host's.
    Unlike Flux's SecureJoin, which clamps a ``..`` past the root to the root, a path
    that climbs out is refused, so the mistake is reported instead of rendering the root.
    """
    written = PurePosixPath(path.strip().lstrip("/") or ".")
    normal = PurePosixPath(os.path.normpath(written))
    if normal.parts and normal.parts[0] == "..":
        raise RenderError(unit, "path escapes the repository root")
    resolved = (root / normal).resolve()
    if not resolved.is_relative_to(root):
        raise RenderError(unit, "path leaves the repository through a symlink")
    if not resolved.exists():
        raise RenderError(unit, "path not found in the repository")
    if not resolved.is_dir():
        raise RenderError(unit, "path is not a directory")
    return PurePosixPath(resolved.relative_to(root).as_posix())


@contextlib.contextmanager
def _private_unit_folder(root: Path, relative: PurePosixPath) -> Iterator[tuple[Path, Path]]:
    """A private copy of the unit's folder to write the kustomization into.

    The copy sits beside the original (a hidden sibling), so every ``../`` reference in
    it resolves exactly as in the original, while nothing but the unit's own folder is
    copied: rendering a thousand units of one checkout stays linear. Only a unit whose
    path is the repository root itself gets a copy of the whole checkout. Yields the
    folder to build and the repository root that confines it.
    """
    source = root / relative
    if source == root:
        with tempfile.TemporaryDirectory(prefix="fleet-render-") as scratch:
            copy = Path(scratch) / "source"
            shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            yield copy, copy
        return
    private = source.parent / f".fleet-render-{secrets.token_hex(6)}-{source.name}"
    try:
        shutil.copytree(source, private, symlinks=True)
        yield private, root
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _unscratch(text: str, private: Path, original: Path) -> str:
    """Name the user's folder, not the private copy, in messages."""
    return text.replace(private.name, original.name)


def verify_checkout(root: Path, unit: str = "./") -> None:
    """Refuse a checkout holding a symlink that points outside it, wherever it is.

    Checked for the whole tree, not only a unit's folder, because overlays may reach any
    part of it through ``../``. Raises RenderError naming the link.
    """
    _check_symlinks(root.resolve(), unit)


def _check_symlinks(copy: Path, unit: str) -> None:
    """Refuse symlinks that point outside the checkout, wherever they are in it."""
    for directory, subdirectories, files in os.walk(copy):
        for name in [*subdirectories, *files]:
            link = Path(directory) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if not (link.parent / target).resolve().is_relative_to(copy):
                shown = link.relative_to(copy).as_posix()
                raise RenderError(unit, f"symlink {shown} points outside the repository ({target})")


def _find_kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _prepare_kustomization(unit_dir: Path, spec: KustomizationSpec, copy: Path, unit: str) -> None:
    """Write the unit's kustomize settings into its kustomization, generating one if needed.

    Flux edits the kustomization in place rather than wrapping it, so the spec's patches
    and images run in the same kustomize pass as the user's own (and patches still match
    the names before ``namePrefix``); fleet does the same.
    """
    existing = _find_kustomization_file(unit_dir)
    if existing is None:
        document: dict[str, Any] = {
            "apiVersion": KUSTOMIZE_API_VERSION,
            "kind": "Kustomization",
            "resources": _scan_resources(unit_dir, copy, unit),
        }
        changed = True
    else:
        document = _read_kustomization(existing, copy, unit)
        changed = False

    if spec.target_namespace:
        document["namespace"] = spec.target_namespace
        changed = True
    if spec.name_prefix:
        document["namePrefix"] = spec.name_prefix
        changed = True
    if spec.name_suffix:
        document["nameSuffix"] = spec.name_suffix
        changed = True
    if spec.patches:
        patches = list(document.get("patches") or [])
        for patch in spec.patches:
            entry: dict[str, Any] = {"patch": patch.patch}
            if patch.target is not None:
                entry["target"] = patch.target.model_dump(
                    by_alias=True, exclude_none=True, exclude_unset=False
                )
            patches.append(entry)
        document["patches"] = patches
        changed = True
    if spec.images:
        images = list(document.get("images") or [])
        for image in spec.images:
            entry = image.model_dump(by_alias=True, exclude_none=True)
            # Flux replaces an entry for the same image instead of adding a second one.
            same = [i for i, known in enumerate(images) if known.get("name") == image.name]
            if same:
                images[same[0]] = entry
            else:
                images.append(entry)
        document["images"] = images
        changed = True
    if spec.components:
        for component in spec.components:
            _require_inside(unit_dir, component, copy, unit, "spec.components")
        document["components"] = [*(document.get("components") or []), *spec.components]
        changed = True

    if not changed:
        return
    document.setdefault("apiVersion", KUSTOMIZE_API_VERSION)
    document.setdefault("kind", "Kustomization")
    if existing is not None and existing.name != KUSTOMIZATION_FILES[0]:
        existing.unlink()  # kustomize refuses a folder with two kustomization files
    (unit_dir / KUSTOMIZATION_FILES[0]).write_text(manifests.dump_yaml(document), encoding="utf-8")


def _read_kustomization(path: Path, copy: Path, unit: str) -> dict[str, Any]:
    shown = path.relative_to(copy).as_posix()
    try:
        documents = manifests.parse_yaml(path.read_bytes(), shown)
    except ManifestError as error:
        raise RenderError(unit, str(error)) from error
    if len(documents) > 1 or (documents and not isinstance(documents[0][1], dict)):
        raise RenderError(unit, f"{shown}: expected one YAML mapping")
    return dict(documents[0][1]) if documents else {}


def _scan_resources(unit_dir: Path, copy: Path, unit: str) -> list[str]:
    """Flux's generator: every manifest file below the folder, in lexical order.

    A sub-folder with its own kustomization is listed as one resource and not entered.
    A ``.yaml`` file that is not Kubernetes objects fails the unit, as in Flux.
    """
    resources: list[str] = []

    def visit(directory: Path) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            relative = "./" + entry.relative_to(unit_dir).as_posix()
            if entry.is_dir() and not entry.is_symlink():
                if _find_kustomization_file(entry) is not None:
                    resources.append(relative)
                else:
                    visit(entry)
            elif entry.is_file() and entry.suffix in MANIFEST_SUFFIXES:
                shown = entry.relative_to(copy).as_posix()
                try:
                    manifests.load_manifests(entry.read_bytes(), shown)
                except ManifestError as error:
                    raise RenderError(
                        unit, f"not a Kubernetes manifest, so it cannot be applied: {error}"
                    ) from error
                resources.append(relative)

    visit(unit_dir)
    return resources


def _check_references(unit_dir: Path, copy: Path, unit: str) -> tuple[list[str], set[str]]:
    """Walk every kustomization reachable from the unit; refuse local references that leave
    the checkout. Returns the remote references found (kustomize fetches those itself) and
    the fields the kustomizations use.
    """
    remotes: list[str] = []
    fields: set[str] = set()
    visited: set[Path] = set()
    pending = [unit_dir]
    while pending:
        directory = pending.pop()
        if directory in visited:
            continue
        visited.add(directory)
        kustomization_file = _find_kustomization_file(directory)
        if kustomization_file is None:
            continue
        document = _read_kustomization(kustomization_file, copy, unit)
        fields.update(document)
        where = kustomization_file.relative_to(copy).as_posix()
        for field, reference in _local_references(document):
            if _REMOTE.match(reference):
                remotes.append(reference)
                continue
            target = _require_inside(directory, reference, copy, unit, f"{where}: {field}")
            if target.is_dir() and field in ("resources", "bases", "components"):
                pending.append(target)
    return remotes, fields


def _require_inside(base: Path, reference: str, copy: Path, unit: str, field: str) -> Path:
    if PurePosixPath(reference).is_absolute():
        raise RenderError(unit, f"{field} {reference!r} is an absolute path")
    target = (base / reference).resolve()
    if not target.is_relative_to(copy):
        raise RenderError(unit, f"{field} {reference!r} points outside the repository")
    return target


def _local_references(document: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field, path)`` for every file or folder a kustomization names."""

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (item for item in value if isinstance(item, str))

    def is_path(value: str) -> bool:
        # Inline YAML (patches, generator configs) is text, not a file name.
        return bool(value) and "\n" not in value and not value.lstrip().startswith(("{", "["))

    for field in ("resources", "bases", "components", "crds", "configurations"):
        for value in strings(document.get(field)):
            if is_path(value):
                yield field, value
    for field in ("generators", "transformers", "validators", "patchesStrategicMerge"):
        for value in strings(document.get(field)):
            if is_path(value):
                yield field, value
    for field in ("patches", "patchesJson6902", "replacements"):
        for item in document.get(field) or []:
            if isinstance(item, Mapping) and isinstance(item.get("path"), str):
                yield f"{field}[].path", item["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in document.get(field) or []:
            if not isinstance(generator, Mapping):
                continue
            for source in strings(generator.get("files")):
                yield f"{field}[].files", source.split("=", 1)[-1]
            for source in [*strings(generator.get("envs")), *strings(generator.get("env"))]:
                yield f"{field}[].envs", source
    openapi = document.get("openapi")
    if isinstance(openapi, Mapping) and isinstance(openapi.get("path"), str):
        yield "openapi.path", openapi["path"]
    for chart in document.get("helmCharts") or []:
        if isinstance(chart, Mapping) and isinstance(chart.get("valuesFile"), str):
            yield "helmCharts[].valuesFile", chart["valuesFile"]
    globals_ = document.get("helmGlobals")
    if isinstance(globals_, Mapping) and isinstance(globals_.get("chartHome"), str):
        yield "helmGlobals.chartHome", globals_["chartHome"]


def _build(binary: Path, unit_dir: Path, copy: Path, unit: str, seconds: float) -> tuple[str, str]:
    command = [str(binary), "build", "--load-restrictor=LoadRestrictionsNone", str(unit_dir)]
    environment = {**os.environ, "HOME": str(copy.parent)}
    try:
        completed = subprocess.run(
            command,
            cwd=copy,
            env=environment,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RenderError(unit, f"kustomize build timed out after {seconds:g}s") from error
    except OSError as error:
        raise RenderError(unit, f"cannot run kustomize ({binary}): {error}") from error
    if completed.returncode != 0:
        raise RenderError(
            unit, f"kustomize build failed: {_kustomize_message(completed.stderr, copy)}"
        )
    return completed.stdout, completed.stderr


def _kustomize_message(stderr: str, copy: Path) -> str:
    """Kustomize's error without the noise: no ``Error:`` prefix, no temp paths, no repeats."""
    text = _tidy(stderr.strip(), copy)
    text = text.removeprefix("Error: ")
    # A missing resource is reported twice, as a file and then as a directory.
    text = re.sub(r"': must build at directory: .*$", "'", text, flags=re.DOTALL)
    text = " ".join(text.split())
    if len(text) > STDERR_LIMIT:
        text = text[:STDERR_LIMIT] + "..."
    return text or "no error message"


def _tidy(text: str, copy: Path) -> str:
    return text.replace(f"{copy}/", "").replace(str(copy), ".")


def _read_output(
    output: str, unit: str, variables: Mapping[str, str] | None, strict: bool
) -> list[dict[str, Any]]:
    """Parse kustomize's output, substituting variables document by document.

    Substitution works on each object's YAML text, as Flux's does, so a variable can
    produce any YAML type (``replicas: ${count}`` becomes an integer).
    """
    source = f"kustomize build {unit}"
    objects: list[dict[str, Any]] = []
    for number, document in enumerate(split_documents(output), start=1):
        try:
            parsed = manifests.load_manifests(document, source, first_document=number)
            if variables is None or not parsed or any(map(substitute.is_disabled, parsed)):
                objects.extend(parsed)
                continue
            try:
                text = substitute.substitute(document, variables, strict=strict)
            except substitute.SubstitutionError as error:
                described = describe_object(parsed[0])
                raise RenderError(unit, f"{described}: postBuild substitution: {error}") from error
            objects.extend(manifests.load_manifests(text, source, first_document=number))
        except ManifestError as error:
            raise RenderError(unit, str(error)) from error
    return objects


def split_documents(output: str) -> list[str]:
    """Kustomize's output split at ``---`` lines; safe because kustomize indents block
    scalars, so a line that is exactly ``---`` is always a document separator."""
    documents = re.split(r"^---[ \t]*$\n?", output, flags=re.MULTILINE)
    return [document for document in documents if document.strip()]


def _set_common_metadata(
    manifest: dict[str, Any], labels: Mapping[str, str], annotations: Mapping[str, str]
) -> None:
    """Flux's commonMetadata: set on ``metadata`` only, overriding existing keys.

    Done after the build, not with kustomize's ``labels``/``commonAnnotations``: those
    also reach pod templates (restarting pods) or selectors (immutable on Deployments),
    which Flux leaves alone.
    """
    metadata = manifest.setdefault("metadata", {})
    if labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    if annotations:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
