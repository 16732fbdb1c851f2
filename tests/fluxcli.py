"""Run the real ``flux`` CLI against a local cluster, for the Flux compatibility tests.

The binary is the one ``make k8s-bin`` builds (``fleet.localkube.toolchain.FLUX_CLI``).
A missing binary fails the test with the command that builds it: the compatibility
tests are the point, so they never skip.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from fleet.localkube import toolchain
from fleet.localkube.cluster import LocalCluster

DEFAULT_TIMEOUT = 120.0
"""Seconds one flux command may take before the test fails; far above what one needs."""


@dataclasses.dataclass(frozen=True)
class FluxResult:
    """What one flux command did: its arguments, exit code and both output streams."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"`flux {' '.join(self.args)}` exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def check(self) -> FluxResult:
        """This result, or an AssertionError showing both streams if flux failed."""
        if self.returncode != 0:
            raise AssertionError(self.describe())
        return self

    def table(self) -> list[dict[str, str]]:
        """stdout as rows keyed by the header (``NAME``, ``READY``...), as flux prints tables.

        flux pads cells with spaces and ends each cell with a tab
        (pkg/printers/table_printer.go), so a tab is the column boundary.
        """
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"no table in the output of {self.describe()}")
        header = _cells(lines[0])
        rows = []
        for line in lines[1:]:
            cells = _cells(line)
            if len(cells) != len(header):
                raise AssertionError(f"row {line!r} does not fit header {header}")
            rows.append(dict(zip(header, cells, strict=True)))
        return rows


def _cells(line: str) -> list[str]:
    cells = [cell.strip() for cell in line.split("\t")]
    return cells[:-1] if len(cells) > 1 and line.endswith("\t") else cells


def flux_binary() -> Path:
    """The built flux CLI; fails the test (never skips) when it is not built."""
    path = toolchain.FLUX_CLI.path()
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"the flux CLI is not built ({path} is missing): run `make k8s-bin` "
            "(python -m fleet.localkube.toolchain flux)",
            pytrace=False,
        )
    return path


def run_flux(
    target: LocalCluster | Path,
    *args: str,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> FluxResult:
    """Run ``flux ARGS --kubeconfig <target's admin kubeconfig>`` and return what it did.

    Each kubeconfig gets its own discovery cache next to it, so a CRD installed in one test
    session is never hidden by a cache another session left behind.
    """
    kubeconfig = target.kubeconfig_path if isinstance(target, LocalCluster) else target
    command = [
        str(flux_binary()),
        *args,
        f"--kubeconfig={kubeconfig}",
        f"--cache-dir={kubeconfig.parent / 'flux-cache'}",
    ]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(
            f"`flux {' '.join(args)}` did not finish in {timeout}s\n"
            f"--- stdout\n{_text(expired.stdout)}--- stderr\n{_text(expired.stderr)}"
        ) from expired
    return FluxResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
