"""Mean time to production for Flux, on the same machine, workload and Git content as fleet.

One run, on a fresh local control plane (``running_clusters``):

1. Apply Flux's CRDs (from the controllers' module source), create ``flux-system``, start
   source-controller and kustomize-controller as local processes (``bench.fluxrun``).
2. Serve the benchmark repository over smart HTTP (``git http-backend``; Flux's
   GitRepository only accepts http, https and ssh URLs, not git://) and apply what
   ``flux bootstrap`` would put in the cluster: a ``GitRepository flux-system`` polled every
   second (the fleet agent's fetch interval in ``bench.mttp``) and a root
   ``Kustomization flux-system`` syncing ``./clusters/bench``.
3. Wait for the root Kustomization Ready at the first commit (no apps yet), then push the
   commit that adds the N app Kustomizations (``bench.workload``, the same files the fleet
   run pushes) and time push → every Kustomization (the root and the N apps) Ready with
   ``lastAppliedRevision`` at that commit.

Reported: MTTP, how long source-controller took to publish the new artifact, peak RSS
(``VmHWM``) of each controller, and CPU seconds of the controllers and of kube-apiserver +
etcd during MTTP.

Run: ``.venv/bin/python -m bench.flux --apps 100`` (``bench.mttp --flux`` runs it beside
fleet).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from bench import fluxrun, readiness, workload
from fleet.kube import KubeClient
from fleet.localkube import toolchain
from fleet.localkube.cluster import running_clusters
from fleet.localkube.gitserver import git_env, seed_repository
from tests.gitservers import smart_http

RESYNC_INTERVAL = 45
"""The apps' Kustomization interval, as in ``bench.mttp``."""
FIELD_MANAGER = "bench"
KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
GIT_REPOSITORY = ("source.toolkit.fluxcd.io/v1", "GitRepository")


@dataclasses.dataclass
class FluxRun:
    apps: int
    mttp: float
    """Seconds from the push to every Kustomization Ready at the pushed commit."""
    source_seconds: float
    """Seconds from the push to the GitRepository's artifact at the pushed commit."""
    rss_idle_source_mib: float
    rss_idle_kustomize_mib: float
    rss_peak_source_mib: float
    """``VmHWM`` of source-controller after MTTP: its peak over the whole run."""
    rss_peak_kustomize_mib: float
    """``VmHWM`` of kustomize-controller after MTTP: its peak over the whole run."""
    cpu_source: float
    """CPU seconds of source-controller during MTTP."""
    cpu_kustomize: float
    """CPU seconds of kustomize-controller during MTTP."""
    cpu_apiserver: float
    """CPU seconds of kube-apiserver and etcd during MTTP."""

    @property
    def rss_peak_mib(self) -> float:
        """Both controllers' peaks added: what Flux needs for this job (fleet: one agent)."""
        return self.rss_peak_source_mib + self.rss_peak_kustomize_mib

    def summary(self) -> str:
        return (
            f"Flux {self.apps} apps: MTTP {self.mttp:.1f} s (artifact after "
            f"{self.source_seconds:.1f} s); peak RSS kustomize-controller "
            f"{self.rss_peak_kustomize_mib:.0f} MiB, source-controller "
            f"{self.rss_peak_source_mib:.0f} MiB (idle {self.rss_idle_kustomize_mib:.0f} / "
            f"{self.rss_idle_source_mib:.0f} MiB); CPU during MTTP: kustomize-controller "
            f"{self.cpu_kustomize:.1f} s, source-controller {self.cpu_source:.1f} s, "
            f"kube-apiserver + etcd {self.cpu_apiserver:.1f} s"
        )


def _proc_status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _install_crds(client: KubeClient) -> None:
    definitions = fluxrun.crds()
    for crd in definitions:
        await client.apply(crd, field_manager=FIELD_MANAGER, force=True)
    with anyio.fail_after(60):
        for crd in definitions:
            name = crd["metadata"]["name"]
            while True:
                found = await client.get(
                    "apiextensions.k8s.io/v1", "CustomResourceDefinition", name
                )
                conditions = ((found or {}).get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                await anyio.sleep(0.2)


async def _wait(
    client: KubeClient, expected: int, sha: str, timeout: float, started: float
) -> tuple[float, float]:
    """Until the GitRepository's artifact and ``expected`` Kustomizations are Ready at
    ``sha`` (watched, as fleet's Units are); returns when each was (monotonic times)."""
    artifact = kustomizations = readiness.Progress(started)

    async def ready(
        resource: tuple[str, str], count: int, test: Callable[[dict[str, Any]], bool]
    ) -> readiness.Progress:
        return await readiness.wait_all_ready(
            client, resource, fluxrun.NAMESPACE, count, test, started=started, timeout=timeout
        )

    async def source() -> None:
        nonlocal artifact
        artifact = await ready(
            GIT_REPOSITORY[:2],
            1,
            lambda repository: fluxrun.ready_at(repository, sha, revision_field="artifact"),
        )

    async def units() -> None:
        nonlocal kustomizations
        kustomizations = await ready(
            KUSTOMIZATION[:2], expected, lambda kustomization: fluxrun.ready_at(kustomization, sha)
        )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(source)
        tasks.start_soon(units)
    assert artifact.all is not None and kustomizations.all is not None
    return started + artifact.all, started + kustomizations.all


async def run_flux(
    apps: int, root: Path, controller_qps: int | None = None, *, timeout: float = 1800
) -> FluxRun:
    """One MTTP run of Flux with ``apps`` apps on a fresh control plane under ``root``."""
    with running_clusters(["flux"], root / "clusters", controller_qps=controller_qps) as (cluster,):
        served = root / "git"
        served.mkdir()
        content = root / "content"
        workload.write_repository(content, 0)
        first = seed_repository(content, served / "fleet.git", message="empty fleet")
        work = root / "work"
        subprocess.run(
            ["git", "clone", "--quiet", str(served / "fleet.git"), str(work)],
            check=True,
            env=git_env(),
        )
        client = await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path))
        try:
            await _install_crds(client)
            await client.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fluxrun.NAMESPACE}},
                field_manager=FIELD_MANAGER,
            )
            with (
                smart_http(served, None, None) as http,
                fluxrun.flux_controllers(cluster.kubeconfig_path, root / "flux") as flux,
            ):
                await client.apply(
                    fluxrun.git_repository(http.url("fleet.git")), field_manager=FIELD_MANAGER
                )
                await client.apply(
                    fluxrun.root_kustomization("./clusters/bench"), field_manager=FIELD_MANAGER
                )
                await _wait(client, 1, first, 180, time.monotonic())
                await anyio.sleep(2)
                pids = flux.pids()
                source_pid, kustomize_pid = pids["source-controller"], pids["kustomize-controller"]
                rss_idle = [_proc_status_mib(p, "VmRSS") for p in (source_pid, kustomize_pid)]

                sha = workload.commit_apps(work, apps, f"{RESYNC_INTERVAL}s")
                plane = [cluster.processes[n].pid for n in ("kube-apiserver", "etcd")]
                plane_pids = [p for p in plane if p]
                cpu_before = [_cpu_seconds(p) for p in (source_pid, kustomize_pid)]
                plane_before = sum(_cpu_seconds(p) for p in plane_pids)
                started = time.monotonic()
                workload.git(work, "push", "--quiet", "origin", "HEAD:main")
                artifact_at, finished = await _wait(client, apps + 1, sha, timeout, started)
                cpu_after = [_cpu_seconds(p) for p in (source_pid, kustomize_pid)]
                plane_after = sum(_cpu_seconds(p) for p in plane_pids)
                rss_peak = [_proc_status_mib(p, "VmHWM") for p in (source_pid, kustomize_pid)]
                for process in flux.processes:
                    process.check_running()
        finally:
            await client.close()
    return FluxRun(
        apps=apps,
        mttp=finished - started,
        source_seconds=artifact_at - started,
        rss_idle_source_mib=rss_idle[0],
        rss_idle_kustomize_mib=rss_idle[1],
        rss_peak_source_mib=rss_peak[0],
        rss_peak_kustomize_mib=rss_peak[1],
        cpu_source=cpu_after[0] - cpu_before[0],
        cpu_kustomize=cpu_after[1] - cpu_before[1],
        cpu_apiserver=plane_after - plane_before,
    )


def median_run(runs: Sequence[FluxRun]) -> FluxRun:
    """Field-by-field medians of several runs of the same size."""
    values = {
        field.name: statistics.median(getattr(r, field.name) for r in runs)
        for field in dataclasses.fields(FluxRun)
        if field.name != "apps"
    }
    return FluxRun(apps=runs[0].apps, **values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flux", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--apps", type=int, nargs="+", default=[100])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=500,
        help="the controller manager's API request rate (default: 500, as bench.mttp)",
    )
    args = parser.parse_args(argv)
    # SIGTERM cleans up as Ctrl-C does: the control plane, the controllers, the git server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(
        f"Flux source-controller {toolchain.FLUX_SOURCE_CONTROLLER_VERSION}, kustomize-controller "
        f"{toolchain.FLUX_KUSTOMIZE_CONTROLLER_VERSION} (--concurrent "
        f"{fluxrun.SOURCE_CONCURRENT} / {fluxrun.KUSTOMIZE_CONCURRENT})",
        flush=True,
    )
    for apps in args.apps:
        results = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="fleet-flux-") as scratch:
                result = anyio.run(run_flux, apps, Path(scratch), args.controller_qps)
            results.append(result)
            print(f"run {run + 1}: {result.summary()}", flush=True)
        if args.runs > 1:
            print(f"median: {median_run(results).summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
