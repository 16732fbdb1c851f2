"""Child processes of a local control plane, started and stopped by PID.

Every process writes its PID into a state folder so that a later ``fleet dev clusters
down`` (or the next test run) can stop what an earlier, killed run left behind. Processes
started with ``die_with_parent`` get ``PR_SET_PDEATHSIG``: the kernel kills them when the
thread that started them exits, so a SIGKILLed test run cannot leak an API server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died between fork and prctl; then nobody would reap us.
    if os.getppid() == 1:
        os._exit(1)


class ProcessError(RuntimeError):
    """A control-plane process failed to start or exited early."""


class ManagedProcess:
    """One long-running binary: its command line, log file and PID file."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        state_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.state_dir = state_dir
        self.env = dict(env) if env is not None else None
        self.log_path = state_dir / "logs" / f"{name}.log"
        self.pid_path = state_dir / "pids" / f"{name}.pid"
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self, *, die_with_parent: bool = True) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        self.pid_path.write_text(f"{self._popen.pid}\n")

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        """Raise ProcessError, with the end of the log, if the process has exited."""
        if self._popen is None:
            raise ProcessError(f"{self.name} was never started")
        code = self._popen.poll()
        if code is not None:
            raise ProcessError(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps and removes the PID file."""
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self._popen.kill()
                self._popen.wait()
        self.pid_path.unlink(missing_ok=True)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    processes: Sequence[ManagedProcess] = (),
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail fast if a process it depends on exits."""
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            process.check_running()
        if check():
            return
        if time.monotonic() >= deadline:
            tails = "".join(f"\n--- {p.name} ({p.log_path}):\n{p.log_tail(15)}" for p in processes)
            raise ProcessError(f"timed out after {timeout:.0f}s waiting for {what}{tails}")
        time.sleep(interval)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_recorded(state_dir: Path, timeout: float = 10.0) -> list[int]:
    """Stop every process whose PID file lies under ``state_dir``; returns their PIDs.

    A PID is only signalled if that process's command line still mentions ``state_dir``,
    so a recycled PID that now belongs to something else is left alone.
    """
    stopped: list[int] = []
    for pid_file in sorted(state_dir.glob("**/pids/*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if str(state_dir) in _cmdline(pid) or str(pid_file.parent.parent) in _cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    for pid in stopped:
        while _cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return stopped
