"""Which remote ref a GitRepository-style ``spec.ref`` follows, decided from plain data.

Pure code: ``plan_fetch`` looks at the refs a server advertises and says what to fetch and
how to label the result, so the Git adapter only moves objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from fleet.source import semver

DEFAULT_BRANCH = "main"
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_PEELED_SUFFIX = "^{}"


class RefKind(StrEnum):
    """What a GitRef follows, in Flux's order of precedence."""

    COMMIT = "commit"
    NAME = "name"
    SEMVER = "semver"
    TAG = "tag"
    BRANCH = "branch"


class GitRef(BaseModel):
    """Flux GitRepository ``spec.ref``: the first of commit, name, semver, tag, branch wins.

    With nothing set the source follows branch ``main``. ``commit`` may be combined with
    ``branch``: then the commit must be part of that branch.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    """A range over tags such as ``>=1.0.0 <2.0.0``, ``~1.2``, ``^1.0`` or ``1.x``."""
    name: str | None = None
    """A full ref name such as ``refs/heads/main`` or ``refs/pull/7/head``."""
    commit: str | None = None
    """A full SHA; pins the source to that commit."""

    @field_validator("branch", "tag", "name", "commit", "semver")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("commit")
    @classmethod
    def _full_sha(cls, value: str | None) -> str | None:
        if value is not None and not _FULL_SHA.match(value.lower()):
            raise ValueError(f"commit {value!r} must be a full lowercase hex SHA")
        return value.lower() if value is not None else None

    @field_validator("name")
    @classmethod
    def _full_ref_name(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("refs/"):
            raise ValueError(f"name {value!r} must be a full ref name starting with refs/")
        return value

    @field_validator("semver")
    @classmethod
    def _valid_range(cls, value: str | None) -> str | None:
        if value is not None:
            semver.parse_range(value)
        return value

    @property
    def kind(self) -> RefKind:
        if self.commit:
            return RefKind.COMMIT
        if self.name:
            return RefKind.NAME
        if self.semver:
            return RefKind.SEMVER
        if self.tag:
            return RefKind.TAG
        return RefKind.BRANCH

    @property
    def effective_branch(self) -> str:
        return self.branch or DEFAULT_BRANCH

    def describe(self) -> str:
        """Short human form for messages: ``branch main``, ``semver '>=1.0 <2'``..."""
        kind = self.kind
        if kind is RefKind.COMMIT:
            return f"commit {self.commit}" + (f" on branch {self.branch}" if self.branch else "")
        if kind is RefKind.NAME:
            return f"ref {self.name}"
        if kind is RefKind.SEMVER:
            return f"semver {self.semver!r}"
        if kind is RefKind.TAG:
            return f"tag {self.tag}"
        return f"branch {self.effective_branch}"


@dataclass(frozen=True)
class FetchPlan:
    """What to fetch for a ref, and how the resulting revision is labelled."""

    refspecs: tuple[str, ...]
    remote_ref: str | None
    """The single remote ref whose tip is the revision; None for a bare commit pin."""
    advertised_target: str | None
    """The object the server advertised for ``remote_ref`` (maybe an annotated tag)."""
    label: str
    """Flux's revision prefix: ``main``, ``v1.2.3``, ``refs/pull/7/head``; empty for a pin."""
    pinned_commit: str | None = None


class RefMissing(LookupError):
    """The server does not advertise what the ref asks for; the message says what is missing."""


def _mirror(ref_name: str) -> str:
    return f"+{ref_name}:{ref_name}"


def plan_fetch(ref: GitRef, advertised: Mapping[str, str]) -> FetchPlan:
    """Decide what to fetch from the refs a server advertises (name -> object id)."""
    kind = ref.kind
    if kind is RefKind.COMMIT:
        assert ref.commit is not None
        if ref.branch:
            branch_ref = f"refs/heads/{ref.branch}"
            if branch_ref not in advertised:
                raise RefMissing(f"branch {ref.branch} not found")
            return FetchPlan(
                (_mirror(branch_ref),),
                branch_ref,
                advertised[branch_ref],
                ref.branch,
                pinned_commit=ref.commit,
            )
        tips = [name for name, oid in advertised.items() if oid == ref.commit]
        refspecs = (
            (_mirror(tips[0]),)
            if tips
            else ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
        )
        return FetchPlan(refspecs, None, None, "", pinned_commit=ref.commit)
    if kind is RefKind.SEMVER:
        assert ref.semver is not None
        tags = {
            name.removeprefix("refs/tags/")
            for name in advertised
            if name.startswith("refs/tags/") and not name.endswith(_PEELED_SUFFIX)
        }
        chosen = semver.newest_matching(semver.parse_range(ref.semver), tags)
        if chosen is None:
            raise RefMissing(f"no tag matches semver range {ref.semver!r}")
        tag_ref = f"refs/tags/{chosen[0]}"
        return FetchPlan((_mirror(tag_ref),), tag_ref, advertised[tag_ref], chosen[0])
    if kind is RefKind.NAME:
        assert ref.name is not None
        full, label, what = ref.name, ref.name, f"ref {ref.name}"
    elif kind is RefKind.TAG:
        assert ref.tag is not None
        full, label, what = f"refs/tags/{ref.tag}", ref.tag, f"tag {ref.tag}"
    else:
        branch = ref.effective_branch
        full, label, what = f"refs/heads/{branch}", branch, f"branch {branch}"
    if full not in advertised:
        raise RefMissing(f"{what} not found")
    return FetchPlan((_mirror(full),), full, advertised[full], label)


def revision_display(label: str, commit: str) -> str:
    """Flux's revision string: ``main@sha1:<sha>``, or ``sha1:<sha>`` for a bare pin."""
    algorithm = "sha256" if len(commit) == 64 else "sha1"
    return f"{label}@{algorithm}:{commit}" if label else f"{algorithm}:{commit}"
