"""A real hub for tests: uvicorn on a free loopback port, in a thread of the test process.

``running_hub(config)`` starts the server (its lifespan migrates the database) and stops
it on exit, also when the test fails; ``RunningHub.restart()`` stops it and starts a new
one on the same port and database, as an operator's restart would. Tokens are made the
way ``fleet hub token create`` makes them, straight into the database.

Also: ``report(...)`` builds a valid ``ClusterReport`` with sensible defaults, and
``receiver()`` is a small HTTP server that records what is POSTed to it (a stand-in
Slack or webhook endpoint on loopback).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from fleet.localkube.gitserver import HOST, free_port
from fleet.report import ClusterReport, Event, SourceReport, UnitReport
from hub.auth import Role, issue_token
from hub.config import HubConfig
from hub.server import HubServer, make_server
from hub.store import Store

SHA = "0123456789abcdef0123456789abcdef01234567"


def create_token(
    database: str,
    subject: str,
    *,
    role: Role = "cluster",
    labels: dict[str, str] | None = None,
) -> str:
    """A new token for a cluster (role ``cluster``) or a user (``read-only``/``admin``)."""
    kind: Literal["cluster", "user"] = "cluster" if role == "cluster" else "user"
    text, record = issue_token(kind, subject, role, time.time(), labels)
    store = Store.open(database)
    try:
        store.migrate_sync()
        store.add_token_sync(record)
    finally:
        store.close()
    return text


def revoke_tokens(database: str, selector: str) -> list[str]:
    store = Store.open(database)
    try:
        return store.revoke_tokens_sync(selector, time.time())
    finally:
        store.close()


@dataclass
class RunningHub:
    config: HubConfig
    port: int
    server: HubServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{HOST}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():
            raise RuntimeError("the hub did not stop within 15 s")
        self.server.hub.store.close()

    def start(self) -> None:
        started = _start(self.config, self.port)
        self.server, self.thread = started.server, started.thread

    def restart(self, pause: float = 0.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()


def _start(config: HubConfig, port: int) -> RunningHub:
    server = make_server(config, log_level="warning")
    thread = threading.Thread(target=server.run, name=f"hub-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the hub exited during startup (see the captured log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the hub did not start within 15 s")
        time.sleep(0.02)
    return RunningHub(config, port, server, thread)


@contextmanager
def running_hub(config: HubConfig) -> Iterator[RunningHub]:
    """Serve ``config`` (its ``listen`` port is replaced by a free one)."""
    port = free_port()
    config = config.model_copy(update={"listen": f"{HOST}:{port}"})
    hub = _start(config, port)
    try:
        yield hub
    finally:
        if hub.thread.is_alive():
            hub.stop()


def report(
    cluster: str,
    *,
    revision_sha: str = SHA,
    ref: str = "refs/heads/main",
    url: str = "https://git.example.com/fleet.git",
    units: Sequence[UnitReport] | None = None,
    events: Sequence[Event] = (),
    source_ready: bool = True,
    labels: dict[str, str] | None = None,
    reported_at: datetime.datetime | None = None,
) -> ClusterReport:
    """A report with one Ready unit unless ``units`` says otherwise."""
    revision = f"main@sha1:{revision_sha}"
    return ClusterReport(
        cluster=cluster,
        agent_version="0.1.0",
        reported_at=reported_at or datetime.datetime.now(datetime.UTC),
        labels=labels or {},
        source=SourceReport(url=url, ref=ref, revision=revision, ready=source_ready),
        units=list(units)
        if units is not None
        else [
            UnitReport(
                namespace="flux-system",
                name="apps",
                ready="True",
                reason="ReconciliationSucceeded",
                last_applied_revision=revision,
                inventory_size=3,
            )
        ],
        events=list(events),
    )


def event(
    reason: str,
    message: str,
    *,
    unit: str = "flux-system/apps",
    type: str = "Warning",
    at: datetime.datetime | None = None,
) -> Event:
    return Event.model_validate(
        {
            "time": at or datetime.datetime.now(datetime.UTC),
            "type": type,
            "reason": reason,
            "unit": unit,
            "message": message,
        }
    )


def body_of(cluster_report: ClusterReport) -> str:
    return cluster_report.model_dump_json(by_alias=True)


@dataclass
class Receiver:
    """What a loopback HTTP endpoint received: one parsed JSON body per POST."""

    port: int
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"


@contextmanager
def receiver() -> Iterator[Receiver]:
    received = Receiver(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(received.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    httpd.daemon_threads = True
    received.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
