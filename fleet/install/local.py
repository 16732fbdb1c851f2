"""An agent run as a local process beside a cluster without a container runtime.

``fleet bootstrap --run-local`` installs everything into the cluster (the Deployment with
no replicas) and then starts ``fleet agent run`` here, with a kubeconfig holding a token of
the installed ServiceAccount, so the process has exactly the agent's RBAC. Its PID, log,
kubeconfig and credentials live in ``<state>/<cluster>/``; ``fleet agent stop-local``
stops it by that PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from fleet import tools


def state_root() -> Path:
    return tools.cache_dir() / "local-agents"


@dataclasses.dataclass(frozen=True)
class LocalAgent:
    """The files of one cluster's local agent."""

    cluster: str
    root: Path = dataclasses.field(default_factory=state_root)

    @property
    def dir(self) -> Path:
        return self.root / self.cluster

    @property
    def pid_file(self) -> Path:
        return self.dir / "agent.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "agent.log"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def git_secret_dir(self) -> Path:
        return self.dir / "git-auth"

    @property
    def hub_token_file(self) -> Path:
        return self.dir / "hub-token"

    def pid(self) -> int | None:
        """The running agent's PID; None when none runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def write_credentials(
        self, kubeconfig: Mapping[str, object], git_secret: Mapping[str, str], hub_token: str | None
    ) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.kubeconfig, yaml.safe_dump(dict(kubeconfig), sort_keys=False))
        if git_secret:
            self.git_secret_dir.mkdir(exist_ok=True, mode=0o700)
            for key, value in git_secret.items():
                _write_private(self.git_secret_dir / key, value)
        if hub_token:
            _write_private(self.hub_token_file, hub_token)

    def start(self, agent_args: Sequence[str]) -> int:
        """Start ``fleet agent run`` with ``agent_args`` (after ``agent run``), detached."""
        args = [
            sys.executable,
            "-m",
            "fleet.cli.main",
            "agent",
            "run",
            *agent_args,
            f"--kubeconfig={self.kubeconfig}",
        ]
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process.pid

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM the agent, SIGKILL after ``timeout``; returns the PID it stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return pid


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        # Our own child (tests start and stop in one process): reap it.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
