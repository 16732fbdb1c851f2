"""How Flux words an event for incident tools and commit statuses (``util.go``)."""

from __future__ import annotations

import re

from fleet.notify.event import Event


def _char_class(char: str) -> int:
    if char.islower():
        return 1
    if char.isupper():
        return 2
    if char.isdigit():
        return 3
    return 4


def split_camelcase(text: str) -> list[str]:
    """``HealthCheckFailed`` -> ``Health Check Failed``; ``PDFLoader`` -> ``PDF Loader``
    (Flux's ``splitCamelcase``, itself from fatih/camelcase)."""
    runs: list[list[str]] = []
    last = 0
    for char in text:
        cls = _char_class(char)
        if runs and cls == last:
            runs[-1].append(char)
        else:
            runs.append([char])
        last = cls
    for i in range(len(runs) - 1):
        if runs[i] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(run) for run in runs if run]


def name_and_description(event: Event) -> tuple[str, str]:
    """``kustomization/apps`` and ``reconciliation succeeded`` (``formatNameAndDescription``)."""
    obj = event.involved_object
    name = f"{obj.kind}/{obj.name}".lower()
    description = " ".join(split_camelcase(event.reason)).lower()
    return name, description


def title_case(text: str) -> str:
    """``golang.org/x/text/cases.Title``: each word capitalised, the rest lowered, so
    ``ReconciliationSucceeded`` becomes ``Reconciliationsucceeded`` (as Flux's alertname)."""
    return "".join(
        part[:1].upper() + part[1:].lower() if re.match(r"\w", part) else part
        for part in re.split(r"(\W+)", text)
    )


def commit_status_id(event: Event, provider_uid: str) -> str:
    """``<kind>/<name>/<first segment of the Provider's uid>``, lowered
    (``generateCommitStatusID``): one status per object per cluster."""
    obj = event.involved_object
    return f"{obj.kind}/{obj.name}/{provider_uid.split('-')[0]}".lower()
