"""A tiny run of each benchmark, as its README invokes it, so that none can rot unnoticed.

The sizes are the smallest that exercise every phase; nothing here checks a timing (those
are the benchmarks' business, on a quiet machine); the results go to ``tmp_path``, never
to ``bench/results/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)
REPOSITORY = Path(__file__).resolve().parents[2]


def bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_mttp_runs_fleet_and_the_floor_on_two_apps() -> None:
    results = REPOSITORY / "bench" / "results" / "mttp.md"
    before = results.read_bytes() if results.exists() else None
    out = bench("bench.mttp", "--apps", "2", "--runs", "1", "--no-write")
    assert "fleet 2 apps, run 1:" in out
    assert "floor 2 apps, run 1:" in out
    assert "- 2 apps, run 1: MTTP" in out
    assert (results.read_bytes() if results.exists() else None) == before


def test_hub_load_ingests_on_sqlite_and_postgresql(tmp_path: Path) -> None:
    output = tmp_path / "hub_load.md"
    out = bench(
        "bench.hub_load",
        "--clusters",
        "300",
        "--backends",
        "sqlite",
        "postgresql",
        "--seconds",
        "2",
        "--saturation-seconds",
        "1",
        "--concurrency",
        "4",
        f"--output={output}",
    )
    for backend in ("sqlite", "postgresql"):
        phases = [line for line in out.splitlines() if line.startswith(backend)]
        assert {line.split()[2] for line in phases} >= {"steady", "saturation"}, out
        assert all("failed=0 " in line for line in phases), phases
    table = output.read_text()
    assert "| sqlite |" in table and "| postgresql |" in table


def test_tui_refresh_renders_a_small_fleet(tmp_path: Path) -> None:
    output = tmp_path / "tui_refresh.md"
    bench("bench.tui_refresh", "--clusters", "20", "--repeat", "1", f"--output={output}")
    table = output.read_text()
    assert "20 clusters, median of 1 runs" in table
    assert "| step | ms |" in table
