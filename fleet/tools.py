"""Where fleet finds the programs it runs (``kustomize``, ``helm``) and keeps its caches.

A program is the explicit path a setting or flag names, else the first one on ``PATH``,
as a shell would find it. The development harness (``fleet.localkube.toolchain``) builds
pinned versions and puts them on ``PATH`` for tests and the demo; production code never
asks it. A missing program is an error that says what to install or pass.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

KUSTOMIZE = "kustomize"
HELM = "helm"


class ToolNotFound(FileNotFoundError):
    """A program fleet runs is not installed (or not where a setting says)."""


def find(name: str, explicit: Path | None = None) -> Path:
    """The program to run: ``explicit`` when given (it must be executable), else the one
    on PATH. Raises ToolNotFound saying which setting to use."""
    if explicit is not None:
        if explicit.is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise ToolNotFound(f"{name}: {explicit} is not an executable file")
    found = shutil.which(name)
    if found is None:
        raise ToolNotFound(
            f"{name} not found on PATH: install it, or give its path (--{name} for "
            f"`fleet agent run`)"
        )
    return Path(found)


def cache_dir() -> Path:
    """Root of fleet's caches: ``$FLEET_CACHE_DIR``, else ``$XDG_CACHE_HOME/fleet``."""
    if explicit := os.environ.get("FLEET_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "fleet"
