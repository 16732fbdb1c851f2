"""Production finds kustomize and helm as a shell would: an explicit path, else PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet import tools


def executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_program_on_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = executable(tmp_path, "kustomize")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.find(tools.KUSTOMIZE) == found


def test_an_explicit_path_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executable(tmp_path, "helm")
    pinned = executable(tmp_path, "helm-pinned")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.find(tools.HELM, pinned) == pinned


def test_a_missing_program_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tools.ToolNotFound, match=r"kustomize not found on PATH.*--kustomize"):
        tools.find(tools.KUSTOMIZE)


def test_an_explicit_path_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "helm"
    plain.write_text("not a program")
    with pytest.raises(tools.ToolNotFound, match="is not an executable file"):
        tools.find(tools.HELM, plain)
