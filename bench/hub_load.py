"""Hub ingest under a simulated fleet: throughput and latency, SQLite and PostgreSQL.

Every agent reports every 30 s (heartbeat, or sooner on a change). For a fleet of N
clusters that is N/30 reports per second; the schedule is compressed by sending at that
rate for a fixed wall time instead of waiting 30 s per round. Per backend and fleet size:

1. seed: each cluster's first report (a change: full insert of report, history, events),
   sent as fast as ``--concurrency`` senders go;
2. steady: open loop at N/30 reports/s for ``--seconds``; clusters in turn, 90 % heartbeats
   (same content), 10 % changes (a new revision and a new event), as a real fleet sends;
   latency counts from the scheduled send time, so a hub that falls behind shows it;
3. saturation: closed loop, ``--concurrency`` senders as fast as the hub answers, same mix.

The hub is ``fleet hub serve`` in its own process (one uvicorn worker); the load generator
is this process (httpx, asyncio). PostgreSQL is started from the machine's binaries as the
tests do (``tests/pgserver.py``). Writes bench/results/hub_load.md.

Run: ``.venv/bin/python -m bench.hub_load`` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fleet.localkube.gitserver import HOST, free_port
from fleet.report import ClusterReport, Event, SourceReport, UnitReport
from hub.auth import issue_token
from hub.store import Store

RESULTS = Path(__file__).parent / "results" / "hub_load.md"
REPORT_INTERVAL_SECONDS = 30.0
CHANGE_EVERY = 10
"""One report in ten is a change; the rest are heartbeats."""
UNITS_PER_CLUSTER = 12
EVENTS_PER_REPORT = 5


@dataclasses.dataclass
class Phase:
    name: str
    sent: int
    failed: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return (self.sent - self.failed) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclasses.dataclass
class Run:
    backend: str
    clusters: int
    target_rate: float
    phases: list[Phase]
    server_mean_ms: float
    db_bytes: int | None


def make_report(cluster: str, generation: int) -> str:
    """A realistic report: a dozen units, a few recent events, ~6 KB of JSON."""
    sha = f"{generation:040x}"
    revision = f"main@sha1:{sha}"
    now = datetime.datetime.now(datetime.UTC)
    units = [
        UnitReport(
            namespace="flux-system",
            name=f"app-{n}",
            ready="True",
            reason="ReconciliationSucceeded",
            message=f"Applied revision: {revision}",
            last_applied_revision=revision,
            last_attempted_revision=revision,
            inventory_size=8,
            depends_on=["flux-system/infra"] if n else [],
            last_reconcile_seconds=0.4,
            last_reconcile_at=now,
        )
        for n in range(UNITS_PER_CLUSTER)
    ]
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    events = [
        Event(
            time=base + datetime.timedelta(seconds=generation * 10 + n),
            type="Normal",
            reason="DriftCorrected" if n % 2 else "ReconcileSucceeded",
            unit="flux-system/app-1",
            object="apps/v1/Deployment/default/web",
            message=f"generation {generation} event {n}",
        )
        for n in range(EVENTS_PER_REPORT)
    ]
    report = ClusterReport(
        cluster=cluster,
        agent_version="0.1.0",
        reported_at=now,
        labels={"env": "prod" if int(cluster[1:]) % 3 == 0 else "dev"},
        source=SourceReport(
            url="https://git.example.com/fleet.git",
            ref="refs/heads/main",
            revision=revision,
            ready=True,
            last_fetched_at=now,
        ),
        units=units,
        events=events,
    )
    return report.model_dump_json(by_alias=True)


def issue_tokens(database: str, names: list[str]) -> dict[str, str]:
    tokens = {}
    records = []
    for name in names:
        text, record = issue_token("cluster", name, "cluster", time.time())
        tokens[name] = text
        records.append(record)
    store = Store.open(database)
    try:
        store.migrate_sync()
        store.add_tokens_sync(records)
    finally:
        store.close()
    return tokens


@contextlib.contextmanager
def hub_process(database: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    log = (workdir / f"hub-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.cli.main",
            "hub",
            "serve",
            "--listen",
            f"{HOST}:{port}",
            "--db",
            database,
            "--stale-after",
            "1h",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"hub exited: {(workdir / log.name).read_text()}")
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hub did not start")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


class Fleet:
    """The simulated agents: who reports next and with which body."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens
        self.names = list(tokens)
        self.generation = dict.fromkeys(self.names, 1)
        self.bodies = {name: make_report(name, 1) for name in self.names}
        self.turn = 0

    def next(self) -> tuple[str, str]:
        name = self.names[self.turn % len(self.names)]
        self.turn += 1
        if self.turn % CHANGE_EVERY == 0:
            self.generation[name] += 1
            self.bodies[name] = make_report(name, self.generation[name])
        return name, self.bodies[name]


async def send(client: httpx.AsyncClient, fleet: Fleet, name: str, body: str) -> bool:
    try:
        response = await client.put(
            f"/api/v1/clusters/{name}/report",
            content=body,
            headers={
                "Authorization": f"Bearer {fleet.tokens[name]}",
                "Content-Type": "application/json",
            },
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def closed_loop(
    client: httpx.AsyncClient,
    fleet: Fleet,
    count: int | None,
    seconds: float,
    workers: int,
    name: str,
) -> Phase:
    latencies: list[float] = []
    failed = 0
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds
    seed_order = iter(fleet.names) if count is not None else None

    async def worker() -> None:
        nonlocal failed, sent
        while time.perf_counter() < deadline:
            if seed_order is not None:
                cluster = next(seed_order, None)
                if cluster is None:
                    return
                body = fleet.bodies[cluster]
            else:
                cluster, body = fleet.next()
            begin = time.perf_counter()
            ok = await send(client, fleet, cluster, body)
            latencies.append(time.perf_counter() - begin)
            sent += 1
            failed += 0 if ok else 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return Phase(name, sent, failed, time.perf_counter() - started, latencies)


async def open_loop(
    client: httpx.AsyncClient, fleet: Fleet, rate: float, seconds: float, max_in_flight: int
) -> Phase:
    """Send at ``rate`` per second on schedule; latency is measured from the scheduled time."""
    latencies: list[float] = []
    failed = 0
    gate = asyncio.Semaphore(max_in_flight)
    tasks = []
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(scheduled: float, cluster: str, body: str) -> None:
        nonlocal failed
        async with gate:
            ok = await send(client, fleet, cluster, body)
        latencies.append(time.perf_counter() - scheduled)
        failed += 0 if ok else 1

    for n in range(total):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        cluster, body = fleet.next()
        tasks.append(asyncio.create_task(one(scheduled, cluster, body)))
    await asyncio.gather(*tasks)
    return Phase("steady", total, failed, time.perf_counter() - started, latencies)


async def server_mean_ms(client: httpx.AsyncClient, database: str) -> float:
    text, record = issue_token("user", "bench", "read-only", time.time())
    store = Store.open(database)
    try:
        store.add_token_sync(record)
    finally:
        store.close()
    metrics = (await client.get("/metrics", headers={"Authorization": f"Bearer {text}"})).text
    values = {}
    for line in metrics.splitlines():
        if line.startswith("fleet_hub_ingest_duration_seconds_"):
            key, _, value = line.partition(" ")
            values[key] = float(value)
    count = values.get("fleet_hub_ingest_duration_seconds_count", 0.0)
    total = values.get("fleet_hub_ingest_duration_seconds_sum", 0.0)
    return total / count * 1000 if count else float("nan")


def run_one(
    backend: str, database: str, clusters: int, args: argparse.Namespace, workdir: Path
) -> Run:
    names = [f"c{n:05d}" for n in range(clusters)]
    tokens = issue_tokens(database, names)
    fleet = Fleet(tokens)
    rate = clusters / REPORT_INTERVAL_SECONDS
    with hub_process(database, workdir) as url:

        async def drive() -> tuple[list[Phase], float]:
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
                seed = await closed_loop(client, fleet, clusters, 600, args.concurrency, "seed")
                steady = await open_loop(client, fleet, rate, args.seconds, args.concurrency)
                saturation = await closed_loop(
                    client, fleet, None, args.saturation_seconds, args.concurrency, "saturation"
                )
                return [seed, steady, saturation], await server_mean_ms(client, database)

        phases, mean_ms = asyncio.run(drive())
    db_bytes = None
    if backend == "sqlite":
        path = Path(database.removeprefix("sqlite:///"))
        db_bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return Run(backend, clusters, rate, phases, mean_ms, db_bytes)


def markdown(
    runs: list[Run], args: argparse.Namespace, elapsed: float, load: tuple[float, float]
) -> str:
    lines = [
        "# Hub ingest load",
        "",
        f"Measured {datetime.date.today().isoformat()} with `python -m bench.hub_load` "
        f"on {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}; whole run {elapsed:.0f} s. Load average "
        f"before/after: {load[0]:.1f}/{load[1]:.1f} (the machine is shared with other work).",
        "",
        "## Method",
        "",
        "- Hub: `fleet hub serve` in its own process (one uvicorn worker, h11), database on",
        "  the same machine: SQLite file (WAL, synchronous=NORMAL) or PostgreSQL 15 started",
        "  from the machine's binaries (fsync off, as in the tests). Load generator: one",
        f"  Python process (httpx, asyncio), up to {args.concurrency} connections. Both share",
        "  the 2 cores, so saturation figures are a floor for a hub on its own machine.",
        f"- Each simulated agent sends a ~6 KB report ({UNITS_PER_CLUSTER} units,",
        f"  {EVENTS_PER_REPORT} recent events) every 30 s; 1 in {CHANGE_EVERY} reports changes",
        "  content (new revision, new events), the rest are heartbeats. The 30 s schedule is",
        f"  compressed: the steady phase sends N/30 reports/s for {args.seconds:.0f} s.",
        "- seed: every cluster's first report (all changes), as fast as the senders go.",
        "- steady: open loop at the target rate; latency counts from the scheduled send",
        "  time, so queueing in the hub shows in p99.",
        f"- saturation: closed loop for {args.saturation_seconds:.0f} s, {args.concurrency} senders"
        " as fast as the hub answers: the ingest capacity.",
        "- server mean: `fleet_hub_ingest_duration_seconds` sum/count over the whole run",
        "  (validation, digest, store transaction, change feed).",
        "",
        "## Results",
        "",
        "| backend | clusters | target/s | phase | reports | errors | reports/s "
        "| p50 ms | p99 ms |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        for phase in run.phases:
            lines.append(
                f"| {run.backend} | {run.clusters:,} | {run.target_rate:.0f} | {phase.name} | "
                f"{phase.sent:,} | {phase.failed} | {phase.throughput:.0f} | "
                f"{phase.percentile(0.5):.1f} | {phase.percentile(0.99):.1f} |"
            )
    lines += [
        "",
        "| backend | clusters | server mean ms per report | SQLite file |",
        "| --- | ---: | ---: | ---: |",
    ]
    for run in runs:
        size = f"{run.db_bytes / 1e6:.1f} MB" if run.db_bytes else "-"
        lines.append(f"| {run.backend} | {run.clusters:,} | {run.server_mean_ms:.2f} | {size} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--seconds", type=float, default=20.0, help="steady phase length")
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-hub-bench-")))
        server = None
        if "postgresql" in args.backends:
            from tests.pgserver import postgres_server

            server = stack.enter_context(postgres_server())
        for backend in args.backends:
            for clusters in args.clusters:
                if backend == "sqlite":
                    database = f"sqlite:///{workdir / f'hub-{clusters}.db'}"
                else:
                    assert server is not None
                    database = server.create_database(f"bench{clusters}")
                run = run_one(backend, database, clusters, args, workdir)
                runs.append(run)
                for phase in run.phases:
                    print(
                        f"{backend:10} {clusters:6} {phase.name:10} sent={phase.sent:6} "
                        f"failed={phase.failed} {phase.throughput:7.0f}/s "
                        f"p50={phase.percentile(0.5):7.1f}ms p99={phase.percentile(0.99):7.1f}ms",
                        flush=True,
                    )
    load = (load_before, os.getloadavg()[0])
    text = markdown(runs, args, time.monotonic() - started, load)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
