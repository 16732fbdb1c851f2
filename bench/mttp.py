"""Mean time to production, as fluxcd/flux-benchmark measures it, for fleet and the floor.

For each size (100, 500, 1,000 apps) and each run, on a fresh local control plane:

- fleet: push a commit with N app Kustomizations to a git:// server the agent follows
  (fetch interval 1 s); time from the push to every unit Ready at that revision. Also
  the agent's RSS (idle before the commit, peak after), the requests and CPU time of a
  no-op resync of every unit, and drift heal latency over 100 out-of-band scales.
- floor: the same rendered objects sent as concurrent server-side applies with nothing
  else to do, on another fresh control plane; timed until the applies returned, and
  until every Deployment was also Current (kstatus, as fleet's and Flux's ``wait``
  judge it: its controller has processed it), the like-for-like floor of MTTP.
- Flux (``--flux``): source-controller and kustomize-controller as local processes on
  another fresh control plane, the same commits (``bench.flux``); adds Flux's MTTP, the
  ratio fleet / Flux and both controllers' peak RSS.

Every control plane's controller manager runs at ``--controller-qps`` (default 500)
instead of the upstream 20 requests a second: at 20, a thousand new Deployments wait
minutes for their controller whatever the GitOps tool does.

Writes a Markdown table (medians over the runs) to bench/results/mttp.md.
Run: ``make bench`` or ``.venv/bin/python -m bench.mttp --apps 100 500 1000 --runs 3``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from bench import readiness, workload
from bench.flux import FluxRun, run_flux
from fleet.api import unit as unit_api
from fleet.core import health
from fleet.kube import KubeClient
from fleet.localkube import toolchain
from fleet.localkube.cluster import running_clusters
from fleet.localkube.gitserver import free_port, git_daemon, git_env, seed_repository
from fleet.localkube.process import ManagedProcess

RESULTS = Path(__file__).parent / "results" / "mttp.md"
WORKERS = int(os.environ.get("FLEET_BENCH_WORKERS", "64"))
RESYNC_INTERVAL = 45
"""The apps' Kustomization interval: one full no-op resync round is measured after MTTP."""


@dataclasses.dataclass
class FleetRun:
    apps: int
    mttp: float
    mttp_cpu_agent: float
    """CPU seconds of the agent itself during MTTP."""
    mttp_cpu_render: float
    """CPU seconds of the kustomize processes the agent ran during MTTP."""
    mttp_cpu_apiserver: float
    """CPU seconds of kube-apiserver and etcd during MTTP."""
    rss_idle_mib: float
    rss_peak_mib: float
    resync_seconds: float
    resync_writes: int
    resync_dry_runs: int
    resync_reads: int
    resync_cpu_seconds: float
    heal_p50: float
    heal_p99: float
    mttp_requests: dict[str, int] = dataclasses.field(default_factory=dict)
    """API requests the agent made during MTTP, by verb and resource."""
    timeline: str = ""
    """When the first, half and all units were Ready."""
    rss_steady_mib: float = 0.0
    """After the no-op resync: what the agent holds for the units, without the burst."""


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User and system CPU of a process (and, optionally, of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14]) if children else 0
    return (own + reaped) / ticks


def _metrics(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _sum(metrics: dict[str, float], prefix: str, *needles: str) -> float:
    return sum(
        v for k, v in metrics.items() if k.startswith(prefix) and all(n in k for n in needles)
    )


def _requests_by_verb(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """``VERB resource`` -> requests between two scrapes of fleet_kube_requests_total."""
    counted: dict[str, int] = {}
    for series, value in after.items():
        if not series.startswith("fleet_kube_requests_total{"):
            continue
        labels = dict(part.split("=", 1) for part in series[series.index("{") + 1 : -1].split(","))
        name = f"{labels['verb'].strip(chr(34))} {labels['resource'].strip(chr(34))}"
        if labels.get("dry_run") == '"true"':
            name += " (dry run)"
        delta = int(value - before.get(series, 0))
        if delta:
            counted[name] = counted.get(name, 0) + delta
    return dict(sorted(counted.items()))


def _start_profiler(pid: int, phase: str) -> subprocess.Popen[bytes] | None:
    """With FLEET_BENCH_PROFILE=DIR, record the agent with py-spy during a phase."""
    folder = os.environ.get("FLEET_BENCH_PROFILE")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    output = Path(folder) / f"{phase}.txt"
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(output),
            "--rate",
            "50",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(2)  # py-spy writes its output on SIGINT
        profiler.wait(30)


def _ready_at(unit: dict[str, Any], sha: str) -> bool:
    status = unit.get("status") or {}
    ready = unit_api.ready_condition(status) or {}
    return ready.get("status") == "True" and str(status.get("lastAppliedRevision", "")).endswith(
        sha
    )


async def _wait_all_ready(
    client: KubeClient, expected: int, sha: str, timeout: float, started: float
) -> readiness.Progress:
    return await readiness.wait_all_ready(
        client,
        (unit_api.API_VERSION, unit_api.KIND),
        unit_api.AGENT_NAMESPACE,
        expected,
        lambda unit: _ready_at(unit, sha),
        started=started,
        timeout=timeout,
    )


async def _heal_latencies(client: KubeClient, apps: int, samples: int) -> list[float]:
    """Scale a managed Deployment out of band; time until the agent's revert is seen."""
    latencies: list[float] = []
    step = max(1, apps // samples)
    for index in range(0, apps, step)[:samples]:
        name = f"app-{index:04d}"
        _, version = await client.list("apps/v1", "Deployment", workload.NAMESPACE)
        started = time.monotonic()
        await client.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{workload.NAMESPACE}/deployments/{name}/scale",
            body={"spec": {"replicas": 3}},
            content_type="application/merge-patch+json",
            query={"fieldManager": "bench-scale"},
        )
        with anyio.fail_after(30):
            async for event in client.watch(
                "apps/v1",
                "Deployment",
                workload.NAMESPACE,
                resource_version=version,
                timeout_seconds=30,
            ):
                obj = event.object
                if obj.get("metadata", {}).get("name") != name:
                    continue
                if (
                    obj["spec"]["replicas"] == 0
                    and any(
                        m.get("manager") == unit_api.FIELD_MANAGER and m.get("time", "") != ""
                        for m in obj["metadata"].get("managedFields", [])
                    )
                    and event.type == "MODIFIED"
                    and obj["metadata"].get("generation", 0) > 1
                ):
                    latencies.append(time.monotonic() - started)
                    break
    return latencies


async def run_fleet(apps: int, root: Path, controller_qps: int | None = None) -> FleetRun:
    with running_clusters(["bench"], root / "clusters", controller_qps=controller_qps) as (
        cluster,
    ):
        served = root / "git"
        served.mkdir()
        content = root / "content"
        workload.write_repository(content, 0)
        seed_repository(content, served / "fleet.git", message="empty fleet")
        work = root / "work"
        subprocess.run(
            ["git", "clone", "--quiet", str(served / "fleet.git"), str(work)],
            check=True,
            env=git_env(),
        )
        with git_daemon(served, root / "git-daemon") as daemon:
            port = free_port()
            agent = ManagedProcess(
                "agent",
                [
                    sys.executable,
                    "-m",
                    "fleet.cli.main",
                    "agent",
                    "run",
                    "--cluster=bench",
                    f"--repo={daemon.url('fleet.git')}",
                    f"--kubeconfig={cluster.kubeconfig_path}",
                    "--interval=1s",
                    f"--work-dir={root / 'agent-work'}",
                    f"--metrics-address=127.0.0.1:{port}",
                    "--log-level=warning",
                    f"--workers={WORKERS}",
                ],
                root / "agent",
            )
            agent.start()
            client = await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path))
            try:
                head = workload.git(work, "rev-parse", "HEAD")
                await _wait_all_ready(client, 1, head, 120, time.monotonic())
                await anyio.sleep(2)
                assert agent.pid is not None
                rss_idle = _rss_mib(agent.pid)

                sha = workload.commit_apps(work, apps, f"{RESYNC_INTERVAL}s")
                control_plane = [cluster.processes[n].pid for n in ("kube-apiserver", "etcd")]
                cpu_agent = _cpu_seconds(agent.pid)
                cpu_all = _cpu_seconds(agent.pid, children=True)
                cpu_plane = sum(_cpu_seconds(p) for p in control_plane if p)
                requests_before = _metrics(port)
                started = time.monotonic()
                profiler = _start_profiler(agent.pid, "mttp")
                workload.git(work, "push", "--quiet", "origin", "HEAD:main")
                progress = await _wait_all_ready(client, apps + 1, sha, 600, started)
                _stop_profiler(profiler)
                assert progress.all is not None
                mttp = progress.all
                mttp_cpu_agent = _cpu_seconds(agent.pid) - cpu_agent
                mttp_cpu_render = _cpu_seconds(agent.pid, children=True) - cpu_all - mttp_cpu_agent
                mttp_cpu_plane = sum(_cpu_seconds(p) for p in control_plane if p) - cpu_plane
                rss_peak = _rss_mib(agent.pid, "VmHWM")
                mttp_requests = _requests_by_verb(requests_before, _metrics(port))

                # A no-op resync: every unit reconciles again on its interval, nothing changed.
                before = _metrics(port)
                cpu_before = _cpu_seconds(agent.pid)
                reconciles_before = _sum(before, "fleet_reconcile_duration_seconds_count")
                resync_started = time.monotonic()
                profiler = _start_profiler(agent.pid, "resync")
                # Scraping /metrics costs the agent CPU (a histogram per unit): look rarely.
                while (
                    _sum(_metrics(port), "fleet_reconcile_duration_seconds_count")
                    < reconciles_before + apps + 1
                ):
                    await anyio.sleep(2)
                _stop_profiler(profiler)
                resync_seconds = time.monotonic() - resync_started
                await anyio.sleep(1)
                after = _metrics(port)
                cpu = _cpu_seconds(agent.pid) - cpu_before
                delta = {
                    k: after[k] - before.get(k, 0)
                    for k in after
                    if k.startswith("fleet_kube_requests_total")
                }
                writes = sum(
                    v
                    for k, v in delta.items()
                    if 'dry_run="false"' in k
                    and any(f'verb="{w}"' in k for w in ("PATCH", "POST", "PUT", "DELETE"))
                )
                dry_runs = sum(v for k, v in delta.items() if 'dry_run="true"' in k)
                reads = sum(
                    v for k, v in delta.items() if any(f'verb="{r}"' in k for r in ("GET", "LIST"))
                )
                rss_steady = _rss_mib(agent.pid)
                heals = await _heal_latencies(client, apps, 100)
            finally:
                await client.close()
                agent.stop()
    heals.sort()
    return FleetRun(
        apps,
        mttp,
        mttp_cpu_agent,
        mttp_cpu_render,
        mttp_cpu_plane,
        rss_idle,
        rss_peak,
        resync_seconds,
        int(writes),
        int(dry_runs),
        int(reads),
        cpu,
        statistics.median(heals),
        heals[min(len(heals) - 1, int(len(heals) * 0.99))],
        mttp_requests,
        progress.summary(),
        rss_steady,
    )


@dataclasses.dataclass
class FloorRun:
    applied: float
    """Seconds until every apply returned."""
    current: float
    """Seconds until, also, every Deployment was Current (its controller processed it)."""


async def run_floor(
    apps: int, root: Path, controller_qps: int | None = None, concurrency: int = 64
) -> FloorRun:
    """The same objects as concurrent server-side applies: what the API server allows."""
    with running_clusters(["floor"], root / "clusters", controller_qps=controller_qps) as (
        cluster,
    ):
        client = await KubeClient.from_kubeconfig(
            str(cluster.kubeconfig_path), max_concurrency=concurrency
        )
        try:
            await client.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": workload.NAMESPACE}},
                field_manager="floor",
            )
            objects = []
            for index in range(apps):
                for obj in workload.app_objects(index):
                    obj["metadata"]["namespace"] = workload.NAMESPACE  # type: ignore[index]
                    objects.append(obj)
            for obj in objects[:4]:  # warm discovery, as the agent's would be
                await client.resource(obj["apiVersion"], obj["kind"])  # type: ignore[arg-type]
            started = time.monotonic()
            async with anyio.create_task_group() as tasks:
                for obj in objects:
                    tasks.start_soon(
                        functools.partial(client.apply, obj, field_manager="floor", force=True)
                    )
            applied = time.monotonic() - started
            progress = await readiness.wait_all_ready(
                client,
                ("apps/v1", "Deployment"),
                workload.NAMESPACE,
                apps,
                lambda deployment: health.assess(deployment).ready,
                started=started,
                timeout=600,
            )
            assert progress.all is not None
            return FloorRun(applied, progress.all)
        finally:
            await client.close()


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def write_results(
    fleet: dict[int, list[FleetRun]],
    floor: dict[int, list[FloorRun]],
    controller_qps: int,
    runs: int,
    flux: dict[int, list[FluxRun]] | None = None,
) -> str:
    lines = [
        "# MTTP benchmark: fleet vs the floor",
        "",
        f"Measured {datetime.date.today()} on {platform.node()}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Kubernetes {toolchain.KUBERNETES_VERSION} "
        f"(local control plane: etcd {toolchain.ETCD_VERSION}, kwok {toolchain.KWOK_VERSION}), "
        f"kustomize {toolchain.KUSTOMIZE_VERSION}. Median of {runs} run(s) each; every run on a "
        f"fresh control plane, its controller manager at {controller_qps} requests a second. "
        "Command: `.venv/bin/python -m bench.mttp`.",
        "",
        "Workload (fluxcd/flux-benchmark): N apps, each a Kustomization (wait: true) of a "
        "Deployment scaled to zero, a ServiceAccount, a Service and an Ingress.",
        "",
        "| apps | fleet MTTP | CPU agent / kustomize / API server+etcd "
        "| floor: applied / and Current | fleet / floor (Current) "
        "| agent RSS idle | agent RSS peak | agent RSS after resync | no-op resync (all units) "
        "| writes | dry-runs | reads | CPU | drift heal p50 | p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    if flux is not None:
        lines[-2] += " Flux MTTP | fleet / Flux | Flux RSS peak (kustomize- + source-controller) |"
        lines[-1] += " ---: | ---: | ---: |"
        lines[2] += (
            f" Flux: source-controller {toolchain.FLUX_SOURCE_CONTROLLER_VERSION} and "
            f"kustomize-controller {toolchain.FLUX_KUSTOMIZE_CONTROLLER_VERSION} as local "
            "processes on their own fresh control plane, the same repository over smart HTTP "
            "(see bench/README.md); RSS is VmHWM."
        )
    for apps, runs_ in sorted(fleet.items()):

        def median(field: str, runs: list[FleetRun] = runs_) -> float:
            return _median([getattr(r, field) for r in runs])

        mttp = median("mttp")
        floors = floor.get(apps, [])
        applied_s = _median([f.applied for f in floors]) if floors else float("nan")
        floor_s = _median([f.current for f in floors]) if floors else float("nan")
        cpu = " / ".join(
            f"{median(f):.0f} s"
            for f in ("mttp_cpu_agent", "mttp_cpu_render", "mttp_cpu_apiserver")
        )
        lines.append(
            f"| {apps} | {mttp:.1f} s | {cpu} | {applied_s:.1f} s / {floor_s:.1f} s "
            f"| {mttp / floor_s:.2f}x "
            f"| {median('rss_idle_mib'):.0f} MiB | {median('rss_peak_mib'):.0f} MiB "
            f"| {median('rss_steady_mib'):.0f} MiB | {median('resync_seconds'):.1f} s "
            f"| {median('resync_writes'):.0f} "
            f"| {median('resync_dry_runs'):.0f} | {median('resync_reads'):.0f} "
            f"| {median('resync_cpu_seconds'):.1f} s "
            f"| {median('heal_p50') * 1000:.0f} ms | {median('heal_p99') * 1000:.0f} ms |"
        )
        if flux is not None:
            flux_runs = flux.get(apps, [])
            flux_s = _median([r.mttp for r in flux_runs]) if flux_runs else float("nan")
            kc = _median([r.rss_peak_kustomize_mib for r in flux_runs]) if flux_runs else 0.0
            sc = _median([r.rss_peak_source_mib for r in flux_runs]) if flux_runs else 0.0
            rss = f"{kc + sc:.0f} MiB ({kc:.0f} + {sc:.0f})"
            if flux_runs:
                lines[-1] += f" {flux_s:.1f} s | {mttp / flux_s:.2f}x | {rss} |"
            else:
                lines[-1] += " not run | — | — |"
    lines += ["", "Per run (the timeline: when the first, half and all units were Ready):", ""]
    for apps, runs_ in sorted(fleet.items()):
        floors = floor.get(apps, [])
        for number, run in enumerate(runs_, start=1):
            floor_run = floors[number - 1] if number <= len(floors) else None
            shown = (
                f"applied {floor_run.applied:.1f} s, Current {floor_run.current:.1f} s"
                if floor_run
                else "not run"
            )
            lines.append(
                f"- {apps} apps, run {number}: MTTP {run.mttp:.1f} s ({run.timeline}); "
                f"floor {shown}"
            )
        requests = ", ".join(f"{verb} {count}" for verb, count in runs_[0].mttp_requests.items())
        lines.append(f"- {apps} apps, API requests of the agent during MTTP: {requests}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    toolchain.put_on_path()  # the agent finds kustomize on PATH, as in production
    parser = argparse.ArgumentParser(
        prog="python -m bench.mttp", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--apps", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not update results")
    parser.add_argument(
        "--flux", action="store_true", help="also run Flux on the same workload (bench.flux)"
    )
    parser.add_argument(
        "--flux-apps",
        type=int,
        nargs="+",
        help="with --flux: the sizes to run Flux at (default: every size; Flux takes many "
        "minutes at 500 and more on two cores)",
    )
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=500,
        help="the controller manager's API request rate on every control plane (default: "
        "500; upstream's 20 makes a thousand new Deployments wait minutes for it)",
    )
    args = parser.parse_args(argv)
    # SIGTERM cleans up as Ctrl-C does: clusters, agent and git daemon stop by PID.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    fleet: dict[int, list[FleetRun]] = {}
    floor: dict[int, list[FloorRun]] = {}
    flux: dict[int, list[FluxRun]] | None = {} if args.flux else None
    for apps in args.apps:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="fleet-bench-") as scratch:
                result = anyio.run(run_fleet, apps, Path(scratch), args.controller_qps)
                fleet.setdefault(apps, []).append(result)
                print(f"fleet {apps} apps, run {run + 1}: {result}", flush=True)
            with tempfile.TemporaryDirectory(prefix="fleet-floor-") as scratch:
                floor_run = anyio.run(run_floor, apps, Path(scratch), args.controller_qps)
                floor.setdefault(apps, []).append(floor_run)
                print(f"floor {apps} apps, run {run + 1}: {floor_run}", flush=True)
            if flux is not None and (args.flux_apps is None or apps in args.flux_apps):
                with tempfile.TemporaryDirectory(prefix="fleet-flux-") as scratch:
                    flux_run = anyio.run(run_flux, apps, Path(scratch), args.controller_qps)
                    flux.setdefault(apps, []).append(flux_run)
                    print(f"run {run + 1}: {flux_run.summary()}", flush=True)
    table = write_results(fleet, floor, args.controller_qps, args.runs, flux)
    print(table)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
