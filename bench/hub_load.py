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

``--flood`` measures instead what one compromised cluster token costs the others: the
steady phase of a SQLite fleet without a flood, then with one token sending changed
reports as fast as ``--flood-connections`` connections go, against the default limits
(``limits`` in hub.yaml: that token gets 429) and against a hub whose limits are set out
of reach (what the flood costs when nothing stops it). Writes bench/results/hub_flood.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import uvloop

from fleet.localkube.gitserver import HOST, free_port
from fleet.report import ClusterReport, Event, SourceReport, UnitReport
from hub.auth import issue_token
from hub.store import Store

RESULTS = Path(__file__).parent / "results" / "hub_load.md"
FLOOD_RESULTS = Path(__file__).parent / "results" / "hub_flood.md"
FLOOD_CLUSTER = "flood"
FLOOD_BODIES = 50
"""Bodies the flooder rotates through: each differs from the stored one, so every
admitted flood report is a change (a transaction), the hub's most expensive ingest."""
UNLIMITED = "limits:\n  ingestPerSecond: 10000\n  ingestBurst: 100000\n"
FLOOD_READING = """
## Reading it

- Compare the two rows of one run and hub: the flood's cost is the rise of the normal
  clusters' p99 from "no flood" to "one token flooding". Runs differ among themselves
  with whatever else the shared machine was doing (see the load average); the figures
  of one run were taken minutes apart on the same machine.
- With the limits out of reach every flood report is a changed report: a transaction,
  history, events, change-feed lines streamed to every reader. The hub's CPU per normal
  report goes up eight to nine times, the database grows by the flood (about 5 MB in 20 s)
  and the normal clusters wait behind it.
- With the default limits the flooding token gets its burst and 5 reports/s; everything
  beyond is refused before the body is parsed, with the answer held back for at least
  1 s (`Retry-After`), so each of its connections costs one cheap refusal a second.
  A refusal answered at once was worse than no limit: in a first run with immediate
  429s (flooder in the generator's process, so not comparable figure for figure) the
  flood sent 9,903 requests in 20 s and the normal p99 went from 293 ms to 2,527 ms.
- The limit is per hub process and per token: a flood from many tokens, or over many
  connections of one token, still costs the hub each refusal; `limits.connections` and
  the head and idle timeouts bound how many connections there can be.
"""
READING = """
## Reading it

- A fleet of N clusters needs N/30 reports/s; the steady rows say whether the hub keeps
  up at that rate and with what latency, the saturation rows how much room is left.
- Most reports are heartbeats: one `UPDATE` of the cluster's row (no BEGIN/COMMIT).
  A changed report is one transaction: summary row, latest report, bounded history,
  new events (deduplicated), change-feed entries; the seed rows are all changes.
- PostgreSQL costs the hub more CPU per report than SQLite (driver work and round
  trips to another process) and the server's own CPU comes on top on the same cores;
  it is the option for several hub replicas, not for speed on one machine.
"""
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
    hub_cpu_seconds: float = 0.0
    """CPU the hub process used in this phase: its cost, whatever else ran on the machine."""

    @property
    def cpu_ms_per_report(self) -> float:
        answered = self.sent - self.failed
        return self.hub_cpu_seconds / answered * 1000 if answered else float("nan")

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
        labels={"env": "prod" if cluster[1:].isdigit() and int(cluster[1:]) % 3 == 0 else "dev"},
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
def hub_process(
    database: str, workdir: Path, config: Path | None = None
) -> Iterator[tuple[str, int]]:
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
            *(["--config", str(config)] if config is not None else []),
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
        yield url, process.pid
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
        self.bodies = {name: make_report(name, 1).encode() for name in self.names}
        self.turn = 0

    def next(self) -> tuple[str, bytes]:
        name = self.names[self.turn % len(self.names)]
        self.turn += 1
        if self.turn % CHANGE_EVERY == 0:
            self.generation[name] += 1
            self.bodies[name] = make_report(name, self.generation[name]).encode()
        return name, self.bodies[name]


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP to PUT a report.

    httpx costs more CPU per request than the hub spends on a heartbeat; on two shared
    cores that would make the load generator the thing measured.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def put(self, path: str, token: str, body: bytes) -> int:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


class Senders:
    """A pool of connections; each request borrows one."""

    def __init__(
        self, connections: list[Connection], fleet: Fleet, address: tuple[str, int]
    ) -> None:
        self.address = address
        self.free: asyncio.Queue[Connection] = asyncio.Queue()
        for connection in connections:
            self.free.put_nowait(connection)
        self.connections = connections
        self.fleet = fleet

    @classmethod
    async def open(cls, url: str, count: int, fleet: Fleet) -> Senders:
        host, _, port = url.removeprefix("http://").partition(":")
        connections = [await Connection.open(host, int(port)) for _ in range(count)]
        return cls(connections, fleet, (host, int(port)))

    async def send(self, name: str, body: bytes) -> bool:
        connection = await self.free.get()
        try:
            status = await connection.put(
                f"/api/v1/clusters/{name}/report", self.fleet.tokens[name], body
            )
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            connection.close()
            connection = await Connection.open(*self.address)
            self.connections.append(connection)
            return False
        finally:
            self.free.put_nowait(connection)
        return status == 200

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


async def closed_loop(
    senders: Senders, count: int | None, seconds: float, workers: int, name: str
) -> Phase:
    fleet = senders.fleet
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
            ok = await senders.send(cluster, body)
            latencies.append(time.perf_counter() - begin)
            sent += 1
            failed += 0 if ok else 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return Phase(name, sent, failed, time.perf_counter() - started, latencies)


async def open_loop(senders: Senders, rate: float, seconds: float) -> Phase:
    """Send at ``rate`` per second on schedule; latency is measured from the scheduled time.

    A hub that cannot keep up builds a backlog; what is still unanswered ``seconds`` after
    the schedule ended is abandoned and counted as failed, so the run stays bounded.
    """
    latencies: list[float] = []
    failed = 0
    tasks = []
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(scheduled: float, cluster: str, body: bytes) -> None:
        nonlocal failed
        ok = await senders.send(cluster, body)
        latencies.append(time.perf_counter() - scheduled)
        failed += 0 if ok else 1

    for n in range(total):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        cluster, body = senders.fleet.next()
        tasks.append(asyncio.create_task(one(scheduled, cluster, body)))
    _, late = await asyncio.wait(tasks, timeout=seconds)
    for task in late:
        task.cancel()
    elapsed = time.perf_counter() - started
    return Phase("steady", total, failed + len(late), elapsed, latencies)


async def server_mean_ms(url: str, database: str) -> float:
    text, record = issue_token("user", "bench", "read-only", time.time())
    store = Store.open(database)
    try:
        store.add_token_sync(record)
    finally:
        store.close()
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {text}"})
    values = {}
    for line in response.text.splitlines():
        if line.startswith("fleet_hub_ingest_duration_seconds_"):
            key, _, value = line.partition(" ")
            values[key] = float(value)
    count = values.get("fleet_hub_ingest_duration_seconds_count", 0.0)
    total = values.get("fleet_hub_ingest_duration_seconds_sum", 0.0)
    return total / count * 1000 if count else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(
    backend: str, database: str, clusters: int, args: argparse.Namespace, workdir: Path
) -> Run:
    names = [f"c{n:05d}" for n in range(clusters)]
    tokens = issue_tokens(database, names)
    fleet = Fleet(tokens)
    rate = clusters / REPORT_INTERVAL_SECONDS
    with hub_process(database, workdir) as (url, pid):

        async def drive() -> tuple[list[Phase], float]:
            phases = []
            plan: list[Callable[[Senders], Awaitable[Phase]]] = [
                lambda s: closed_loop(s, clusters, 600, args.concurrency, "seed"),
                lambda s: open_loop(s, rate, args.seconds),
                lambda s: closed_loop(
                    s, None, args.saturation_seconds, args.concurrency, "saturation"
                ),
            ]
            for run_phase in plan:
                # Fresh connections per phase: an abandoned request leaves its one unusable.
                senders = await Senders.open(url, args.concurrency, fleet)
                try:
                    cpu_before = cpu_seconds(pid)
                    phase = await run_phase(senders)
                    phase.hub_cpu_seconds = cpu_seconds(pid) - cpu_before
                    phases.append(phase)
                finally:
                    senders.close()
            return phases, await server_mean_ms(url, database)

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            phases, mean_ms = runner.run(drive())
    db_bytes = None
    if backend == "sqlite":
        path = Path(database.removeprefix("sqlite:///"))
        db_bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return Run(backend, clusters, rate, phases, mean_ms, db_bytes)


@dataclasses.dataclass
class FloodRun:
    """The normal clusters' steady phase, and what the flooding token got meanwhile."""

    name: str
    normal: Phase
    flood_sent: int = 0
    flood_statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    db_bytes: int = 0
    """The SQLite file (and WAL) after the phase."""


async def flood(url: str, token: str, connections: int, seconds: float) -> dict[int, int]:
    """One token, ``connections`` connections, changed reports back to back."""
    host, _, port = url.removeprefix("http://").partition(":")
    bodies = [make_report(FLOOD_CLUSTER, g).encode() for g in range(2, 2 + FLOOD_BODIES)]
    statuses: dict[int, int] = {}
    turn = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal turn
        connection = await Connection.open(host, int(port))
        try:
            while time.perf_counter() < deadline:
                body = bodies[turn % len(bodies)]
                turn += 1
                try:
                    status = await connection.put(
                        f"/api/v1/clusters/{FLOOD_CLUSTER}/report", token, body
                    )
                except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                    status = 0
                    connection.close()
                    connection = await Connection.open(host, int(port))
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses


@contextlib.contextmanager
def flood_process(
    url: str, token: str, connections: int, seconds: float, workdir: Path
) -> Iterator[Path]:
    """The flooder in a process of its own, so that it does not slow the normal senders'
    event loop (which would count as hub latency); its statuses land in the yielded file."""
    result = workdir / f"flood-{time.monotonic_ns()}.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.hub_load",
            "--flood-worker",
            url,
            token,
            str(connections),
            str(seconds),
            str(result),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        yield result
        process.wait(seconds + 60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_flood(
    database: str, clusters: int, args: argparse.Namespace, workdir: Path, limited: bool
) -> list[FloodRun]:
    """Steady phase without a flood, then with one; on a hub with or without limits."""
    names = [f"c{n:05d}" for n in range(clusters)]
    tokens = issue_tokens(database, [*names, FLOOD_CLUSTER])
    flood_token = tokens.pop(FLOOD_CLUSTER)
    fleet = Fleet(tokens)
    rate = clusters / REPORT_INTERVAL_SECONDS
    bodies = [
        make_report(FLOOD_CLUSTER.replace("flood", "f9"), g).encode()
        for g in range(2, 2 + FLOOD_BODIES)
    ]
    bodies = [body.replace(b'"cluster":"f9"', b'"cluster":"flood"') for body in bodies]
    config = None
    if not limited:
        config = workdir / "unlimited.yaml"
        config.write_text(UNLIMITED)
    label = "default limits" if limited else "limits out of reach"
    with hub_process(database, workdir, config) as (url, pid):

        async def drive() -> list[FloodRun]:
            senders = await Senders.open(url, args.concurrency, fleet)
            try:
                await closed_loop(senders, clusters, 600, args.concurrency, "seed")
            finally:
                senders.close()
            results = []
            for flooding in (False, True):
                senders = await Senders.open(url, args.concurrency, fleet)
                with contextlib.ExitStack() as stack:
                    result = (
                        stack.enter_context(
                            flood_process(
                                url,
                                flood_token,
                                args.flood_connections,
                                args.seconds + 2,
                                workdir,
                            )
                        )
                        if flooding
                        else None
                    )
                    if result is not None:
                        await asyncio.sleep(1.0)  # the flood is running before we measure
                    try:
                        cpu_before = cpu_seconds(pid)
                        phase = await open_loop(senders, rate, args.seconds)
                        phase.hub_cpu_seconds = cpu_seconds(pid) - cpu_before
                    finally:
                        senders.close()
                statuses: dict[int, int] = {}
                if result is not None:
                    statuses = {int(k): v for k, v in json.loads(result.read_text()).items()}
                name = f"{label}, {'one token flooding' if flooding else 'no flood'}"
                path = Path(database.removeprefix("sqlite:///"))
                size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
                results.append(FloodRun(name, phase, sum(statuses.values()), statuses, size))
            return results

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(drive())


def flood_markdown(
    runs: list[FloodRun], args: argparse.Namespace, elapsed: float, load: tuple[float, float]
) -> str:
    clusters = args.clusters[0]
    lines = [
        "# Hub ingest under a flood from one cluster token",
        "",
        f"Measured {datetime.date.today().isoformat()} with `python -m bench.hub_load --flood "
        f"--clusters {clusters} --seconds {args.seconds:.0f} --flood-connections "
        f"{args.flood_connections} --repeat {args.repeat}` on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}; "
        f"whole run {elapsed:.0f} s. Load average before/after: {load[0]:.1f}/{load[1]:.1f} "
        "(the machine is shared with other work).",
        "",
        "## Method",
        "",
        "- Hub: `fleet hub serve` in its own process, SQLite, on loopback; load generator as",
        "  for `hub_load.md` (raw HTTP/1.1 keep-alive connections, uvloop), on the same cores.",
        f"- Normal clusters: {clusters:,} agents, each its own token, steady open loop at",
        f"  {clusters / REPORT_INTERVAL_SECONDS:.0f} reports/s for {args.seconds:.0f} s "
        f"({args.concurrency} connections), 1 in {CHANGE_EVERY} a change; latency from the",
        "  scheduled send time. Their p99 is the figure that matters.",
        f"- The flood: one cluster token on {args.flood_connections} connections sending",
        "  changed ~6 KB reports back to back, for the whole steady phase.",
        "- Each hub: the steady phase once without the flood, then once with it. Twice: with",
        "  the default `limits` (5 reports/s per token, burst 30: the flood gets 429 before its",
        "  body is parsed, answered after at least 1 s) and with the limits set out of reach",
        "  (10,000/s), which is what the hub did before it had them.",
        "",
        "## Results",
        "",
        "| run: hub | normal reports | errors | p50 ms | p99 ms | hub CPU ms/report "
        "| flood requests | flood 200 | flood 429 | database after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        phase = run.normal
        lines.append(
            f"| {run.name} | {phase.sent:,} | {phase.failed} | {phase.percentile(0.5):.1f} | "
            f"{phase.percentile(0.99):.1f} | {phase.cpu_ms_per_report:.2f} | "
            f"{run.flood_sent:,} | {run.flood_statuses.get(200, 0):,} | "
            f"{run.flood_statuses.get(429, 0):,} | {run.db_bytes / 1e6:.1f} MB |"
        )
    lines += [
        "",
        "`hub CPU ms/report` here is the hub's CPU in the phase per normal report answered,",
        "so with a flood it includes what the flood cost.",
    ]
    return "\n".join(lines) + "\n" + FLOOD_READING


def main_flood(args: argparse.Namespace) -> int:
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    runs: list[FloodRun] = []
    with tempfile.TemporaryDirectory(prefix="fleet-hub-flood-") as scratch:
        workdir = Path(scratch)
        for repetition in range(1, args.repeat + 1):
            for limited in (True, False):
                database = f"sqlite:///{workdir / f'flood-{repetition}-{limited}.db'}"
                for run in run_flood(database, args.clusters[0], args, workdir, limited):
                    run.name = f"{repetition}: {run.name}"
                    runs.append(run)
                    phase = run.normal
                    print(
                        f"{run.name:45} normal={phase.sent} failed={phase.failed} "
                        f"p50={phase.percentile(0.5):.1f}ms p99={phase.percentile(0.99):.1f}ms "
                        f"flood={run.flood_sent} {run.flood_statuses}",
                        flush=True,
                    )
    load = (load_before, os.getloadavg()[0])
    output = args.output if args.output != RESULTS else FLOOD_RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(flood_markdown(runs, args, time.monotonic() - started, load))
    print(f"wrote {output}")
    return 0


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
        "- Hub: `fleet hub serve` in its own process (one uvicorn worker, httptools, uvloop),",
        "  database on the same machine: SQLite file (WAL, synchronous=NORMAL) or PostgreSQL 15",
        "  started from the machine's binaries (fsync off, as in the tests). Load generator:",
        f"  one Python process (uvloop) with {args.concurrency} keep-alive HTTP/1.1 connections",
        "  speaking raw HTTP (httpx costs more CPU per request than the hub does). Hub,",
        "  PostgreSQL and generator share the 2 cores (and the machine is shared with other",
        "  work, see the load average), so the rates are a floor for a hub on its own machine;",
        "  `hub CPU ms/report` (the hub process's CPU time per answered report) is the",
        "  figure that does not depend on what else runs.",
        f"- Each simulated agent sends a ~6 KB report ({UNITS_PER_CLUSTER} units,",
        f"  {EVENTS_PER_REPORT} recent events) every 30 s; 1 in {CHANGE_EVERY} reports changes",
        "  content (new revision, new events), the rest are heartbeats. The 30 s schedule is",
        f"  compressed: the steady phase sends N/30 reports/s for {args.seconds:.0f} s.",
        "- seed: every cluster's first report (all changes), as fast as the senders go.",
        "- steady: open loop at the target rate; latency counts from the scheduled send",
        "  time, so queueing in the hub shows in p99.",
        f"- saturation: closed loop for {args.saturation_seconds:.0f} s, {args.concurrency} senders"
        " as fast as the hub answers: the ingest capacity.",
        "- time in ingest: `fleet_hub_ingest_duration_seconds` sum/count over the whole run:",
        "  validation, digest and the store transaction, including the wait for the",
        "  database's writer, which dominates when 32 senders saturate it.",
        "",
        "## Results",
        "",
        "| backend | clusters | target/s | phase | reports | errors | reports/s "
        "| p50 ms | p99 ms | hub CPU ms/report |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        for phase in run.phases:
            lines.append(
                f"| {run.backend} | {run.clusters:,} | {run.target_rate:.0f} | {phase.name} | "
                f"{phase.sent:,} | {phase.failed} | {phase.throughput:.0f} | "
                f"{phase.percentile(0.5):.1f} | {phase.percentile(0.99):.1f} | "
                f"{phase.cpu_ms_per_report:.2f} |"
            )
    lines += [
        "",
        "| backend | clusters | mean ms in ingest | SQLite file |",
        "| --- | ---: | ---: | ---: |",
    ]
    for run in runs:
        size = f"{run.db_bytes / 1e6:.1f} MB" if run.db_bytes else "-"
        lines.append(f"| {run.backend} | {run.clusters:,} | {run.server_mean_ms:.2f} | {size} |")
    return "\n".join(lines) + "\n" + READING


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--seconds", type=float, default=20.0, help="steady phase length")
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--flood", action="store_true", help="one flooding token beside normal clusters instead"
    )
    parser.add_argument("--flood-connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="with --flood: runs of each hub")
    parser.add_argument("--flood-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_worker:
        url, token, connections, seconds, result = args.flood_worker
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            statuses = runner.run(flood(url, token, int(connections), float(seconds)))
        Path(result).write_text(json.dumps(statuses))
        return 0
    if args.flood:
        return main_flood(args)
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
                        f"p50={phase.percentile(0.5):7.1f}ms p99={phase.percentile(0.99):7.1f}ms "
                        f"hub-cpu={phase.cpu_ms_per_report:.2f}ms/report",
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
