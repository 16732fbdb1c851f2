"""A local Prometheus process scraping fleet's agents: for the demo and the tests.

The binary is the one ``fleet.localkube.toolchain`` builds from source. Each scrape target
gets a ``cluster`` label, so the promotion waves' PromQL checks can select clusters the way
they would on a real fleet (one Prometheus with a label per cluster, or a federation).
The configuration can be rewritten and reloaded while it runs (``--web.enable-lifecycle``).
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from fleet.localkube import ports, toolchain
from fleet.localkube.process import ManagedProcess, ProcessError

SCRAPE_INTERVAL = "1s"
"""Short, so a local gate sees a change within seconds; a real Prometheus scrapes slower."""


def configuration(targets: Mapping[str, str]) -> str:
    """Prometheus's YAML: one job ``fleet-agents``, a target per cluster (``host:port``)."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "fleet-agents",
                "static_configs": [
                    {"targets": [address], "labels": {"cluster": cluster}}
                    for cluster, address in sorted(targets.items())
                ],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


class LocalPrometheus:
    """One Prometheus on a free loopback port, its data and config under ``state_dir``."""

    def __init__(self, state_dir: Path, targets: Mapping[str, str]) -> None:
        self.state_dir = state_dir
        self.port = ports.free_port()
        self.config_path = state_dir / "prometheus.yml"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(configuration(targets))
        self.process = ManagedProcess(
            "prometheus",
            [
                str(toolchain.binary("prometheus")),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={state_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            state_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.process.start()
        self._wait_for("/-/ready", timeout)

    def stop(self) -> None:
        self.process.stop()

    def retarget(self, targets: Mapping[str, str]) -> None:
        """Scrape these targets from now on (the config is rewritten and reloaded)."""
        self.config_path.write_text(configuration(targets))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _wait_for(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.process.check_running()
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"prometheus was not ready within {timeout:.0f}s:\n{self.process.log_tail()}"
                )
            time.sleep(0.2)


@contextlib.contextmanager
def running_prometheus(state_dir: Path, targets: Mapping[str, str]) -> Iterator[LocalPrometheus]:
    """A started Prometheus, stopped by PID on the way out (also on errors and Ctrl-C)."""
    prometheus = LocalPrometheus(state_dir, targets)
    try:
        prometheus.start()
        yield prometheus
    finally:
        prometheus.stop()
