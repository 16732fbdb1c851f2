"""The hub's ``Verifier`` against real servers: a Prometheus built from source answering
PromQL, and a local HTTP server answering health checks with the status the test sets."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import anyio
import pytest

from fleet.core.verification import CheckState
from fleet.localkube import ports
from fleet.localkube.prometheus import LocalPrometheus, running_prometheus
from fleet.models.fleetconfig import FleetConfig, load_fleet_config
from hub.promotion.verify import CheckKey, Verifier

pytestmark = pytest.mark.anyio


def config(checks: str) -> FleetConfig:
    return load_fleet_config(
        f"""
clusters: [{{name: dev}}, {{name: dev-2}}, {{name: prod}}]
waves:
  - {{name: dev, clusters: [dev, dev-2]}}
  - name: prod
    clusters: [prod]
    dependsOn: [dev]
    verify:
{checks}
"""
    )


async def settle(
    verifier: Verifier, keys: list[CheckKey], timeout: float = 30
) -> dict[CheckKey, CheckState]:
    """The states once every check was evaluated at least once."""
    with anyio.fail_after(timeout):
        while not all(key in verifier.states() for key in keys):
            await anyio.sleep(0.05)
    return dict(verifier.states())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), {}) as running:
        yield running


async def test_prometheus_answers_decide_whether_a_check_holds(
    prometheus: LocalPrometheus,
) -> None:
    checks = "\n".join(
        f"      - {{name: {name}, prometheus: {{address: '{prometheus.url}', query: '{query}'}}}}"
        for name, query in [
            ("one", "vector(0) < 1"),
            ("zero", "0 > bool 1"),
            ("filtered", "vector(1) > 2"),
            ("bad", "sum(("),
        ]
    )
    changes = 0

    def changed() -> None:
        nonlocal changes
        changes += 1

    verifier = Verifier(time.time, changed)
    verifier.configure(config(checks))
    async with anyio.create_task_group() as group:
        await group.start(verifier.run)
        names = ["one", "zero", "filtered", "bad"]
        states = await settle(verifier, [("prod", name) for name in names])
        group.cancel_scope.cancel()
    assert states[("prod", "one")].holding_since is not None
    assert states[("prod", "one")].detail == "1 sample(s), first {} = 0"
    assert states[("prod", "zero")].holding_since is None
    assert states[("prod", "zero")].detail == "scalar = 0"
    assert states[("prod", "filtered")].detail == "query returned no samples"
    bad = states[("prod", "bad")]
    assert bad.holding_since is None and bad.detail.startswith("query failed (bad_data): ")
    assert changes >= len(names)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_an_http_check_fetches_each_cluster_and_stops_holding_on_an_error(
    health_server: tuple[str, type[_Health]],
) -> None:
    url, handler = health_server
    nothing = f"http://127.0.0.1:{ports.free_port()}/"
    checks = (
        f"      - {{name: health, interval: 1s, http: {{url: '{url}/{{cluster}}/healthz'}}}}\n"
        f"      - {{name: gone, http: {{url: '{nothing}'}}}}"
    )
    verifier = Verifier(time.time, lambda: None)
    verifier.configure(config(checks))
    async with anyio.create_task_group() as group:
        await group.start(verifier.run)
        states = await settle(verifier, [("prod", "health"), ("prod", "gone")])
        assert states[("prod", "health")].holding_since is not None
        assert sorted(set(handler.paths)) == ["/dev-2/healthz", "/dev/healthz"]
        assert states[("prod", "gone")].holding_since is None
        assert states[("prod", "gone")].detail.startswith(f"{nothing}: ")

        handler.status = 503
        with anyio.fail_after(30):
            while verifier.states()[("prod", "health")].holding_since is not None:
                await anyio.sleep(0.05)
        detail = verifier.states()[("prod", "health")].detail
        assert detail in (f"{url}/dev/healthz answered 503", f"{url}/dev-2/healthz answered 503")
        group.cancel_scope.cancel()


async def test_a_changed_check_starts_its_clock_again(
    health_server: tuple[str, type[_Health]],
) -> None:
    url, _ = health_server
    verifier = Verifier(time.time, lambda: None)
    verifier.configure(config(f"      - {{name: health, http: {{url: '{url}/a'}}}}"))
    async with anyio.create_task_group() as group:
        await group.start(verifier.run)
        first = (await settle(verifier, [("prod", "health")]))[("prod", "health")]
        verifier.configure(config(f"      - {{name: health, http: {{url: '{url}/b'}}}}"))
        assert ("prod", "health") not in verifier.states()
        second = (await settle(verifier, [("prod", "health")]))[("prod", "health")]
        group.cancel_scope.cancel()
    assert first.holding_since is not None and second.holding_since is not None
    assert second.holding_since > first.holding_since
