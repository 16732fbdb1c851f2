"""Semantic versions and ranges over tags, as Flux's ``spec.ref.semver`` selects them.

Pure code, no Git. The range syntax is the one Flux users write (Masterminds/semver):
comparators ``= != > >= < <=``, tilde ``~1.2`` (patch updates), caret ``^1.2`` (no major
change), wildcards ``1.x`` / ``1.2.*`` / ``*``, hyphen ranges ``1.2 - 1.4``, AND by space or
comma, OR by ``||``. Tags may carry a leading ``v`` and may omit minor or patch (``v1`` is
1.0.0), as Flux accepts them.

Prereleases follow npm's rule, which keeps a range from jumping onto a release candidate
nobody asked for: a prerelease version matches only if some comparator of the same
AND-group names a prerelease of the same major.minor.patch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import total_ordering

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PARTIAL = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_COMPARATOR = re.compile(
    r"\s*(?P<op>~>|>=|=>|<=|=<|!=|[=<>~^])?\s*(?P<version>[vV]?[0-9xX*][^\s,]*)"
)
_HYPHEN = re.compile(r"(?P<low>[^\s,]+)\s+-\s+(?P<high>[^\s,]+)")
_WILDCARDS = frozenset("xX*")


class InvalidRange(ValueError):
    """A semver range that cannot be parsed."""


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version; build metadata is kept for display but never compared."""

    major: int
    minor: int = 0
    patch: int = 0
    prerelease: tuple[int | str, ...] = ()
    build: str = field(default="", compare=False)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _precedence(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after all its prereleases; numeric identifiers sort before
        # alphanumeric ones (SemVer 2.0.0, section 11).
        identifiers = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.core, 0 if self.prerelease else 1, identifiers)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() < other._precedence()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        return text + (f"+{self.build}" if self.build else "")


def _prerelease(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def parse_version(text: str) -> Version | None:
    """The version a tag names, or None when the tag is not a version at all."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return Version(
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        _prerelease(match["pre"]),
        match["build"] or "",
    )


@dataclass(frozen=True)
class _Partial:
    """A version with trailing parts left open (``1.2``, ``1.x``, ``*``)."""

    parts: tuple[int, ...]
    prerelease: tuple[int | str, ...]

    @property
    def low(self) -> Version:
        major, minor, patch = (*self.parts, 0, 0, 0)[:3]
        return Version(major, minor, patch, self.prerelease)

    @property
    def high(self) -> Version | None:
        """First version above every version this partial covers (None: unbounded)."""
        if not self.parts:
            return None
        if len(self.parts) == 1:
            return Version(self.parts[0] + 1)
        if len(self.parts) == 2:
            return Version(self.parts[0], self.parts[1] + 1)
        return None

    @property
    def exact(self) -> bool:
        return len(self.parts) == 3


def _parse_partial(text: str, source: str) -> _Partial:
    match = _PARTIAL.match(text)
    if not match:
        raise InvalidRange(f"{text!r} in {source!r} is not a version")
    parts: list[int] = []
    for name in ("major", "minor", "patch"):
        value = match[name]
        if value is None or value in _WILDCARDS:
            break
        parts.append(int(value))
    prerelease = _prerelease(match["pre"])
    if prerelease and len(parts) < 3:
        raise InvalidRange(f"{text!r} in {source!r}: a prerelease needs a full version")
    return _Partial(tuple(parts), prerelease)


@dataclass(frozen=True)
class _Bounds:
    """One comparator as an interval (plus an optional exclusion for ``!=``)."""

    low: Version | None = None
    low_inclusive: bool = True
    high: Version | None = None
    high_inclusive: bool = False
    excluded: tuple[Version, Version | None] | None = None
    named_prerelease: tuple[int, int, int] | None = None
    matches_nothing: bool = False

    def contains(self, version: Version) -> bool:
        if self.matches_nothing:
            return False
        if self.low is not None and (
            version < self.low or (version == self.low and not self.low_inclusive)
        ):
            return False
        if self.high is not None and (
            version > self.high or (version == self.high and not self.high_inclusive)
        ):
            return False
        if self.excluded is not None:
            low, high = self.excluded
            inside = low <= version < high if high is not None else version == low
            if inside:
                return False
        return True


def _caret_high(partial: _Partial) -> Version | None:
    parts = partial.parts
    if not parts:
        return None
    if parts[0] > 0 or len(parts) == 1:
        return Version(parts[0] + 1)
    if len(parts) == 2 or parts[1] > 0:
        return Version(0, parts[1] + 1)
    return Version(0, 0, parts[2] + 1)


def _comparator(op: str, partial: _Partial) -> _Bounds:
    low, high, exact = partial.low, partial.high, partial.exact
    named = low.core if partial.prerelease else None
    if op in ("", "="):
        if exact:
            return _Bounds(low, True, low, True, named_prerelease=named)
        return _Bounds(low, True, high, False)
    if op == "!=":
        if not partial.parts:
            return _Bounds(matches_nothing=True)
        return _Bounds(excluded=(low, None if exact else high))
    if op == ">":
        if exact:
            return _Bounds(low, False, named_prerelease=named)
        return _Bounds(low=high) if high is not None else _Bounds(matches_nothing=True)
    if op in (">=", "=>"):
        return _Bounds(low, True, named_prerelease=named)
    if op == "<":
        if not partial.parts:
            return _Bounds(matches_nothing=True)
        return _Bounds(high=low, high_inclusive=False, named_prerelease=named)
    if op in ("<=", "=<"):
        if exact:
            return _Bounds(high=low, high_inclusive=True, named_prerelease=named)
        return _Bounds(high=high)
    if op in ("~", "~>"):
        if not partial.parts:
            return _Bounds()
        if len(partial.parts) == 1:
            return _Bounds(low, True, Version(low.major + 1), named_prerelease=named)
        return _Bounds(low, True, Version(low.major, low.minor + 1), named_prerelease=named)
    if op == "^":
        return _Bounds(low, True, _caret_high(partial), named_prerelease=named)
    raise AssertionError(f"unhandled operator {op!r}")


@dataclass(frozen=True)
class Range:
    """A parsed semver range: OR of AND-groups of comparators."""

    text: str
    groups: tuple[tuple[_Bounds, ...], ...]

    def matches(self, version: Version) -> bool:
        return any(self._group_matches(group, version) for group in self.groups)

    @staticmethod
    def _group_matches(group: tuple[_Bounds, ...], version: Version) -> bool:
        if version.prerelease and not any(b.named_prerelease == version.core for b in group):
            return False
        return all(bounds.contains(version) for bounds in group)

    def __str__(self) -> str:
        return self.text


def parse_range(text: str) -> Range:
    """Parse a range such as ``>=1.0.0 <2.0.0``, ``~1.2``, ``^1.0`` or ``1.x``."""
    if not text.strip():
        raise InvalidRange("empty semver range")
    groups: list[tuple[_Bounds, ...]] = []
    for alternative in text.split("||"):
        group: list[_Bounds] = []
        rest = alternative
        for hyphen in _HYPHEN.finditer(alternative):
            group.append(_comparator(">=", _parse_partial(hyphen["low"], text)))
            group.append(_comparator("<=", _parse_partial(hyphen["high"], text)))
        rest = _HYPHEN.sub(" ", alternative)
        position = 0
        for match in _COMPARATOR.finditer(rest):
            skipped = rest[position : match.start()]
            if skipped.strip(" ,\t"):
                raise InvalidRange(f"cannot parse {skipped.strip()!r} in {text!r}")
            group.append(_comparator(match["op"] or "", _parse_partial(match["version"], text)))
            position = match.end()
        if rest[position:].strip(" ,\t"):
            raise InvalidRange(f"cannot parse {rest[position:].strip()!r} in {text!r}")
        if not group:
            raise InvalidRange(f"empty alternative in {text!r}")
        groups.append(tuple(group))
    return Range(text, tuple(groups))


def newest_matching(semver_range: Range, tags: Iterable[str]) -> tuple[str, Version] | None:
    """The tag with the highest version inside the range; tags that are no version are skipped.

    When two tags name the same version (``v1.0.0`` and ``1.0.0``) the choice is made
    stable by the tag name, so every agent picks the same one.
    """
    best: tuple[Version, str] | None = None
    for tag in tags:
        version = parse_version(tag)
        if version is None or not semver_range.matches(version):
            continue
        if best is None or (version, tag) > best:
            best = (version, tag)
    return (best[1], best[0]) if best else None
