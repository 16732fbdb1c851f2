"""A local Git server (``git daemon``, git://) for the demo and the tests.

The demo serves the example fleet repository with it; tests serve the repositories they
author. Push is enabled so that the demo's walkthrough (and a person) can commit.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fleet.localkube import ports
from fleet.localkube.process import ManagedProcess, wait_until

HOST = "127.0.0.1"

_GIT_IDENTITY = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Fleet Demo",
    "GIT_AUTHOR_EMAIL": "demo@fleet.invalid",
    "GIT_COMMITTER_NAME": "Fleet Demo",
    "GIT_COMMITTER_EMAIL": "demo@fleet.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def git_env(identity: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for git CLI calls that no user or system config leaks into."""
    return {**os.environ, **_GIT_IDENTITY, **(identity or {})}


def free_port() -> int:
    return ports.free_port(HOST)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, port)) == 0


@dataclasses.dataclass
class GitDaemon:
    root: Path
    port: int
    process: ManagedProcess

    def url(self, name: str) -> str:
        return f"git://{HOST}:{self.port}/{name}"

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def git_daemon(root: Path, state_dir: Path | None = None) -> Iterator[GitDaemon]:
    """Serve every repository under ``root`` over git:// on a free loopback port."""
    port = free_port()
    state = state_dir or Path(tempfile.mkdtemp(prefix=f"{root.name}-git-daemon-", dir=root.parent))
    args = [
        "git",
        "daemon",
        "--reuseaddr",
        f"--base-path={root}",
        "--export-all",
        f"--port={port}",
        f"--listen={HOST}",
        "--enable=receive-pack",
        str(root),
    ]
    process = ManagedProcess("git-daemon", args, state, git_env())
    try:
        process.start()
        wait_until(lambda: port_open(port), timeout=10, what="git daemon", processes=[process])
        yield GitDaemon(root, port, process)
    finally:
        process.stop()


def seed_repository(content: Path, bare: Path, *, branch: str = "main", message: str) -> str:
    """Create bare repository ``bare`` whose first commit holds the files of ``content``.

    Returns the commit SHA. Used by the demo to publish the example fleet repository.
    """
    env = git_env()
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare)],
        check=True,
        env=env,
    )
    with tempfile.TemporaryDirectory(prefix="fleet-seed-") as scratch:
        work = Path(scratch) / "work"
        shutil.copytree(content, work, symlinks=True)
        for command in (
            ["init", "--quiet", f"--initial-branch={branch}"],
            ["add", "--all"],
            ["commit", "--quiet", "-m", message],
            ["push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}"],
        ):
            subprocess.run(["git", *command], cwd=work, check=True, env=env, capture_output=True)
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=work,
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
