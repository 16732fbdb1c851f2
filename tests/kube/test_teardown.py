"""Control-plane processes never outlive their owner: normal stop, Ctrl-C, or SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from fleet.localkube.cluster import running_clusters
from tests.support import eventually

COMPONENTS = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}


def _alive(pid: int) -> bool:
    # A zombie has an empty cmdline: it is gone for our purposes.
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def test_stop_leaves_no_processes(tmp_path: Path) -> None:
    with running_clusters(["solo"], tmp_path) as (cluster,):
        pids = cluster.pids()
        assert set(pids) == COMPONENTS
        assert all(_alive(p) for p in pids.values())
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not list(tmp_path.glob("*/pids/*.pid"))


def _fleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleet.cli.main", *args]


def test_ctrl_c_on_foreground_clusters_stops_every_process(tmp_path: Path) -> None:
    cli = subprocess.Popen(
        _fleet("dev", "clusters", "up", "one", "--root", str(tmp_path), "--foreground"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert cli.stdout is not None
        for line in cli.stdout:
            if "press Ctrl-C" in line:
                break
        else:
            raise AssertionError(f"fleet dev clusters up exited early with {cli.wait()}")
        pids = {p.stem: int(p.read_text()) for p in tmp_path.glob("one/pids/*.pid")}
        assert set(pids) == COMPONENTS
        cli.send_signal(signal.SIGINT)
        # Generous: five processes stop one by one (SIGTERM, SIGKILL after 10 s each).
        assert cli.wait(180) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert not [name for name, pid in pids.items() if _alive(pid)]


_OWNER = """
import json, sys, time
from pathlib import Path
from fleet.localkube.cluster import start_clusters
(cluster,) = start_clusters(["orphan"], Path(sys.argv[1]))
print(json.dumps(cluster.pids()), flush=True)
time.sleep(600)
"""


def test_sigkilled_owner_takes_its_control_plane_down(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pids: dict[str, int] = json.loads(owner.stdout.readline() or "{}")
        assert set(pids) == COMPONENTS
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        eventually(
            lambda: not any(_alive(p) for p in pids.values()), 15, "orphaned processes to die"
        )
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_detached_clusters_are_stopped_by_down(tmp_path: Path) -> None:
    up = subprocess.run(
        _fleet("dev", "clusters", "up", "bg", "--root", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    listed = subprocess.run(
        _fleet("dev", "clusters", "get", "--root", str(tmp_path), "-o", "json"),
        capture_output=True,
        text=True,
        check=True,
    )
    (summary,) = json.loads(listed.stdout)
    assert summary["name"] == "bg" and summary["status"] == "Running"
    pids = summary["processes"]
    assert set(pids) == COMPONENTS
    down = subprocess.run(
        _fleet("dev", "clusters", "down", "--root", str(tmp_path)), capture_output=True, text=True
    )
    assert down.returncode == 0, down.stderr
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not (tmp_path / "bg").exists()
