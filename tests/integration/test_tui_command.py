"""``fleet tui`` itself, as a user starts it: a real process in a pseudo-terminal, talking to
a real hub; what it draws is read from the terminal, and ``q`` ends it with status 0."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleet.report import UnitReport
from hub.config import HubConfig
from tests.hubserver import RunningHub, body_of, create_token, report, running_hub

pytestmark = pytest.mark.timeout(180)
FLEET = (sys.executable, "-m", "fleet.cli.main")

# CSI and OSC sequences, and the two-byte escapes: what remains is the drawn text.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


class Terminal:
    """The controlling side of a pseudo-terminal, with what the program drew so far."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.raw = b""

    def text(self) -> str:
        return _ESCAPES.sub(b"", self.raw).decode(errors="replace")

    def read_until(self, wanted: str, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.text():
            if process.poll() is not None:
                raise AssertionError(f"fleet tui exited ({process.returncode}): {self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted!r} never drawn; drawn: {self.text()[-2000:]}")
            self.pump(0.2)

    def pump(self, wait: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            with contextlib.suppress(OSError):  # EIO: the program closed the terminal
                self.raw += os.read(self.fd, 65536)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningHub]:
    with running_hub(HubConfig.model_validate({"database": f"sqlite:///{tmp_path / 'h.db'}"})) as h:
        yield h


def test_fleet_tui_draws_the_fleet_in_a_terminal_and_quits_on_q(
    hub: RunningHub, tmp_path: Path
) -> None:
    cluster_token = create_token(hub.config.database, "prod-eu", labels={"env": "prod"})
    failing = UnitReport(
        namespace="flux-system",
        name="payments",
        ready="False",
        reason="HealthCheckFailed",
        message="Deployment payments: 0/2 ready",
    )
    httpx.put(
        f"{hub.url}/api/v1/clusters/prod-eu/report",
        content=body_of(report("prod-eu", units=[failing], labels={"env": "prod"})),
        headers={"Authorization": f"Bearer {cluster_token}"},
    ).raise_for_status()
    token_file = tmp_path / "user.token"
    token_file.write_text(create_token(hub.config.database, "viewer", role="read-only"))

    controller, terminal_side = os.openpty()
    fcntl.ioctl(terminal_side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [*FLEET, "tui", f"--hub={hub.url}", f"--token-file={token_file}"],
        stdin=terminal_side,
        stdout=terminal_side,
        stderr=terminal_side,
        env=env,
        start_new_session=True,
    )
    os.close(terminal_side)
    terminal = Terminal(controller)
    try:
        terminal.read_until("prod-eu", process, 90)
        terminal.read_until("Degraded", process, 60)
        os.write(controller, b"q")
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            terminal.pump(0.2)
        assert process.poll() == 0, f"fleet tui did not quit on q: {terminal.text()[-1000:]}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(controller)
