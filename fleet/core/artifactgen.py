"""ArtifactGenerator copy rules (source.extensions.fluxcd.io/v1beta1) over local folders.

``spec.sources[]{alias, kind, name, namespace}`` name the input trees; each of
``spec.artifacts[]{name, revision, copy[]}`` is built into its own folder by applying its
copy operations in order, as source-watcher's builder does (cp-like):

- ``from: "@alias/pattern"``, ``to: "@artifact/path"``; later operations overwrite earlier
  files (``strategy: Overwrite``, the default) or deep-merge YAML into an existing file
  (``strategy: Merge``: maps merged recursively, the later value wins, lists replaced).
- A pattern without glob characters is one file or folder: a file goes to ``path``, or
  into it when ``path`` ends with ``/`` or is an existing folder; a folder is copied as
  ``path/<folder name>/``.
- A glob (``*`` within a segment, ``**`` across segments, ``?``, ``[...]``, ``{a,b}``)
  copies each match to ``path/<match>``; a pattern ending in ``/**`` drops its literal
  prefix (``deploy/**`` -> ``path/<below deploy>``). Matched folders are copied whole.
- ``exclude`` globs match the source-relative path, the path below the pattern's literal
  prefix, and (for patterns without ``/``) the file name.
- No match is an error unless ``optional``. ``..``, absolute paths and symlinks that leave
  the source are refused, each error naming ``spec.artifacts[i].copy[j]``'s field.

The revision is ``@alias`` (that source's revision) or ``latest@sha256:<content hash>``
(sha256 over the sorted file names and their sha256, like Go's dirhash); source-watcher
uses the digest of its tarball instead, so the hex differs from Flux's for the same files.
``strategy: Extract`` (unpacking tarballs of the source) is not supported here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

Strategy = Literal["Overwrite", "Merge", "Extract"]
_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GLOB_CHARS = frozenset("*?[]{}")
MAX_ALTERNATIVES = 20
"""Most commas inside ``{}`` groups of one pattern: alternation expands multiplicatively."""


class ArtifactGenError(ValueError):
    """A copy rule that cannot be carried out; ``field`` is the spec path to blame."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclasses.dataclass(frozen=True)
class CopyOperation:
    source: str
    """``from``: ``@alias/pattern``."""
    to: str
    exclude: tuple[str, ...] = ()
    strategy: Strategy = "Overwrite"
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class OutputArtifact:
    name: str
    copy: tuple[CopyOperation, ...]
    revision: str = ""


@dataclasses.dataclass(frozen=True)
class SourceRef:
    alias: str
    kind: str
    name: str
    namespace: str = ""


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    sources: tuple[SourceRef, ...]
    artifacts: tuple[OutputArtifact, ...]


@dataclasses.dataclass(frozen=True)
class SourceTree:
    """A checked-out source: its folder and its revision (for ``revision: "@alias"``)."""

    path: Path
    revision: str


@dataclasses.dataclass(frozen=True)
class GeneratedArtifact:
    name: str
    path: Path
    revision: str
    files: tuple[str, ...]


def parse_spec(spec: Mapping[str, Any]) -> GeneratorSpec:
    """The typed spec of an ArtifactGenerator, with every rule's syntax checked."""
    sources: list[SourceRef] = []
    seen: set[str] = set()
    for i, raw in enumerate(spec.get("sources") or []):
        where = f"spec.sources[{i}]"
        if not isinstance(raw, Mapping):
            raise ArtifactGenError(where, "must be an object")
        alias = str(raw.get("alias", ""))
        if not _ALIAS.match(alias):
            raise ArtifactGenError(f"{where}.alias", f"{alias!r} must be letters, digits, - or _")
        if alias in seen:
            raise ArtifactGenError(f"{where}.alias", f"{alias!r} is used twice")
        seen.add(alias)
        kind = str(raw.get("kind", ""))
        if kind not in ("GitRepository", "OCIRepository", "Bucket"):
            raise ArtifactGenError(f"{where}.kind", f"{kind!r} is not a source kind")
        sources.append(
            SourceRef(alias, kind, str(raw.get("name", "")), str(raw.get("namespace") or ""))
        )
    if not sources:
        raise ArtifactGenError("spec.sources", "at least one source is required")
    artifacts: list[OutputArtifact] = []
    names: set[str] = set()
    for i, raw in enumerate(spec.get("artifacts") or []):
        where = f"spec.artifacts[{i}]"
        if not isinstance(raw, Mapping):
            raise ArtifactGenError(where, "must be an object")
        name = str(raw.get("name", ""))
        if not _NAME.match(name) or len(name) > 253:
            raise ArtifactGenError(f"{where}.name", f"{name!r} is not a valid object name")
        if name in names:
            raise ArtifactGenError(f"{where}.name", f"{name!r} is used twice")
        names.add(name)
        revision = str(raw.get("revision") or "")
        if revision and (not revision.startswith("@") or revision[1:] not in seen):
            raise ArtifactGenError(f"{where}.revision", f"{revision!r} must be @<a source alias>")
        operations = []
        for j, op in enumerate(raw.get("copy") or []):
            operations.append(_parse_copy(op, f"{where}.copy[{j}]", seen))
        if not operations:
            raise ArtifactGenError(f"{where}.copy", "at least one copy operation is required")
        artifacts.append(OutputArtifact(name, tuple(operations), revision))
    if not artifacts:
        raise ArtifactGenError("spec.artifacts", "at least one artifact is required")
    return GeneratorSpec(tuple(sources), tuple(artifacts))


def _parse_copy(raw: object, where: str, aliases: set[str]) -> CopyOperation:
    if not isinstance(raw, Mapping):
        raise ArtifactGenError(where, "must be an object")
    source, to = str(raw.get("from", "")), str(raw.get("to", ""))
    alias, pattern = _split_source(source, f"{where}.from")
    if alias not in aliases:
        raise ArtifactGenError(f"{where}.from", f"source alias {alias!r} is not in spec.sources")
    _destination(to, f"{where}.to")
    raw_strategy = raw.get("strategy") or "Overwrite"
    strategies: dict[str, Strategy] = {
        "Overwrite": "Overwrite",
        "Merge": "Merge",
        "Extract": "Extract",
    }
    strategy = strategies.get(str(raw_strategy))
    if strategy is None:
        raise ArtifactGenError(
            f"{where}.strategy", f"{raw_strategy!r} is not Overwrite, Merge or Extract"
        )
    excludes = raw.get("exclude") or []
    if not isinstance(excludes, list) or not all(isinstance(e, str) for e in excludes):
        raise ArtifactGenError(f"{where}.exclude", "must be a list of glob patterns")
    for k, pattern_text in enumerate(excludes):
        _check_pattern(pattern_text, f"{where}.exclude[{k}]")
    _check_pattern(pattern, f"{where}.from")
    return CopyOperation(source, to, tuple(excludes), strategy, bool(raw.get("optional", False)))


def _split_source(source: str, field: str) -> tuple[str, str]:
    if not source.startswith("@") or "/" not in source:
        raise ArtifactGenError(field, f"{source!r} must look like @alias/pattern")
    alias, pattern = source[1:].split("/", 1)
    if not pattern:
        raise ArtifactGenError(field, f"{source!r} has no pattern after the alias")
    path = PurePosixPath(pattern)
    if path.is_absolute() or pattern.startswith("/"):
        raise ArtifactGenError(field, f"{source!r} is an absolute path")
    if ".." in path.parts:
        raise ArtifactGenError(field, f"{source!r} climbs out of the source with '..'")
    return alias, pattern


def _destination(to: str, field: str) -> str:
    if not to.startswith("@artifact/"):
        raise ArtifactGenError(field, f"{to!r} must start with @artifact/")
    relative = to.removeprefix("@artifact/")
    path = PurePosixPath(relative)
    if relative.startswith("/") or ".." in path.parts:
        raise ArtifactGenError(field, f"{to!r} must stay within the artifact")
    return relative.rstrip("/") or "."


def _check_pattern(pattern: str, field: str) -> None:
    commas, depth, escaped = 0, 0, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif char == "," and depth:
            commas += 1
    if commas > MAX_ALTERNATIVES:
        raise ArtifactGenError(field, f"{pattern!r} has more than {MAX_ALTERNATIVES} alternatives")


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [e for option in match.group(1).split(",") for e in _expand_braces(head + option + tail)]


def glob_match(pattern: str, path: str) -> bool:
    """Whether ``path`` matches ``pattern``: ``**`` spans segments, ``*`` stays within one."""
    parts = path.split("/") if path else []
    return any(_match_segments(p.split("/"), parts) for p in _expand_braces(pattern))


def _match_segments(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(_match_segments(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], head)
        and _match_segments(pattern[1:], parts[1:])
    )


def _literal_prefix(pattern: str) -> str:
    parts = []
    for part in PurePosixPath(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return "/".join(parts) or "."


def _excluded(path: str, base: str, patterns: Sequence[str]) -> bool:
    def matches(candidate: str) -> bool:
        name = candidate.rsplit("/", 1)[-1]
        return any(
            glob_match(p, candidate) or ("/" not in p and glob_match(p, name)) for p in patterns
        )

    if not patterns:
        return False
    if matches(path):
        return True
    if base not in (".", "") and path.startswith(base + "/"):
        return matches(path[len(base) + 1 :])
    return False


def _entries(root: Path, field: str) -> Iterator[tuple[str, bool]]:
    """``(relative path, is folder)`` of everything in ``root`` but ``.git``."""
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in sorted(dirs) + sorted(files):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if relative == ".git" or relative.startswith(".git/"):
                continue
            # A symlink leaving the source is refused when it is copied, not when listed.
            yield relative, path.is_dir() and path.resolve().is_relative_to(real_root)
        dirs[:] = sorted(d for d in dirs if d != ".git" and not (here / d).is_symlink())


def build(
    artifact: OutputArtifact,
    index: int,
    sources: Mapping[str, SourceTree],
    staging: Path,
) -> GeneratedArtifact:
    """Apply ``artifact``'s copy operations from ``sources`` (by alias) into ``staging``.

    ``index`` is the artifact's position in ``spec.artifacts`` (for error fields).
    ``staging`` must be an empty or missing folder.
    """
    staging.mkdir(parents=True, exist_ok=True)
    for j, operation in enumerate(artifact.copy):
        _apply(operation, f"spec.artifacts[{index}].copy[{j}]", sources, staging)
    files = tuple(
        sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    )
    if artifact.revision:
        revision = sources[artifact.revision[1:]].revision
    else:
        revision = f"latest@sha256:{content_hash(staging, files)}"
    return GeneratedArtifact(artifact.name, staging, revision, files)


def content_hash(root: Path, files: Sequence[str]) -> str:
    """sha256 over ``"<sha256 of file>  <name>\\n"`` for each file, sorted (dirhash's Hash1)."""
    summary = hashlib.sha256()
    for name in sorted(files):
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
        summary.update(f"{digest}  {name}\n".encode())
    return summary.hexdigest()


def _apply(
    operation: CopyOperation, where: str, sources: Mapping[str, SourceTree], staging: Path
) -> None:
    alias, pattern = _split_source(operation.source, f"{where}.from")
    destination = _destination(operation.to, f"{where}.to")
    if operation.strategy == "Extract":
        raise ArtifactGenError(f"{where}.strategy", "Extract is not supported by fleet yet")
    if alias not in sources:
        raise ArtifactGenError(f"{where}.from", f"source alias {alias!r} has no checked-out tree")
    root = sources[alias].path
    field = f"{where}.from"
    into_folder = operation.to.endswith("/")
    if not (_GLOB_CHARS & set(pattern)):
        clean = PurePosixPath(pattern).as_posix()
        source = root / clean
        if source.is_symlink() and not source.resolve().is_relative_to(root.resolve()):
            raise ArtifactGenError(field, f"{clean!r} is a symlink that leaves the source")
        if not source.exists():
            if operation.optional:
                return
            raise ArtifactGenError(field, f"{clean!r} does not exist in source {alias!r}")
        if source.is_dir():
            _copy_tree(
                root, clean, staging, _join(destination, source.name), operation, field, clean
            )
            return
        if _excluded(clean, ".", operation.exclude):
            return
        target = destination
        if into_folder or (staging / destination).is_dir():
            target = _join(destination, source.name)
        _copy_file(root, clean, staging, target, operation, field)
        return
    base = _literal_prefix(pattern)
    entries = list(_entries(root, field))
    strip = pattern[: -len("/**")] + "/" if pattern.endswith("/**") else ""
    # ``dir/**`` means what is in dir: dir itself (``**`` matching nothing) is not a match.
    matches = [(p, d) for p, d in entries if glob_match(pattern, p) and p + "/" != strip]
    if not matches:
        if operation.optional:
            return
        raise ArtifactGenError(field, f"no files match {pattern!r} in source {alias!r}")
    kept = [(p, d) for p, d in matches if not _excluded(p, base, operation.exclude)]
    if not kept:
        if operation.optional:
            return
        raise ArtifactGenError(field, f"every file matching {pattern!r} is excluded")
    folders = {p for p, d in kept if d}
    for path, is_dir in kept:
        if any(path.startswith(f + "/") for f in folders):
            continue  # copied with its matched folder
        relative = path[len(strip) :] if strip and path.startswith(strip) else path
        target = _join(destination, relative)
        if is_dir:
            _copy_tree(root, path, staging, target, operation, field, base)
        else:
            _copy_file(root, path, staging, target, operation, field)


def _join(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _copy_tree(
    root: Path,
    relative: str,
    staging: Path,
    target: str,
    operation: CopyOperation,
    field: str,
    base: str,
) -> None:
    (staging / target).mkdir(parents=True, exist_ok=True)
    source = root / relative
    for path, is_dir in _entries(source, field):
        full = f"{relative}/{path}"
        if _excluded(full, base, operation.exclude) or any(
            _excluded(f"{relative}/{p}", base, operation.exclude) for p in _ancestors(path)
        ):
            continue
        if is_dir:
            (staging / target / path).mkdir(parents=True, exist_ok=True)
        else:
            _copy_file(root, full, staging, f"{target}/{path}", operation, field)


def _ancestors(path: str) -> Iterator[str]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def _copy_file(
    root: Path, relative: str, staging: Path, target: str, operation: CopyOperation, field: str
) -> None:
    source = root / relative
    if not source.resolve().is_relative_to(root.resolve()):
        raise ArtifactGenError(field, f"{relative!r} is a symlink that leaves the source")
    destination = staging / target
    if destination.is_dir():
        raise ArtifactGenError(field, f"cannot overwrite folder {target!r} with file {relative!r}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if operation.strategy == "Merge" and destination.is_file():
        merged = merge_maps(_load_yaml(destination, field), _load_yaml(source, field))
        destination.write_text(yaml.safe_dump(merged, sort_keys=True))
        return
    shutil.copyfile(source, destination)
    destination.chmod(source.stat().st_mode & 0o777)


def _load_yaml(path: Path, field: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    try:
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ArtifactGenError(
                    field, f"Merge needs YAML maps; {path.name} holds another value"
                )
            merged = merge_maps(merged, document)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ArtifactGenError(field, f"Merge cannot parse {path.name} as YAML ({error})") from None
    return merged


def merge_maps(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Helm-style deep merge: maps merge recursively, any other overlay value replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = value
    return out
