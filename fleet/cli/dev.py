"""``fleet dev``: local development helpers (local control planes, tool builds)."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from fleet.cli import output
from fleet.localkube import kubeconfig, toolchain
from fleet.localkube.cluster import ClusterError, ProcessError, rss_bytes, start_clusters
from fleet.localkube.process import kill_recorded


def default_root() -> Path:
    return toolchain.cache_dir() / "clusters"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = subparsers.add_parser(
        "dev",
        help="local development: real control planes as processes, tool builds",
        description="Local development helpers. Clusters run as local processes (etcd, "
        "kube-apiserver, controller manager, scheduler, kwok) on 127.0.0.1; no Docker needed.",
    )
    dev_sub = dev.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")

    build = dev_sub.add_parser(
        "build", help="build (or reuse) kube-apiserver, etcd, kwok, kustomize and helm"
    )
    build.add_argument(
        "tools", nargs="*", metavar="TOOL", help=f"any of: {', '.join(toolchain.TOOLS)}"
    )
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.set_defaults(func=_build)

    clusters = dev_sub.add_parser("clusters", help="start, list and stop local clusters")
    clusters_sub = clusters.add_subparsers(
        dest="clusters_command", required=True, metavar="COMMAND"
    )

    up = clusters_sub.add_parser(
        "up",
        help="start local clusters (default: dev staging prod)",
        description="Start one local control plane per NAME and write a kubeconfig with one "
        "context per cluster. Without --foreground the clusters keep running after the "
        "command returns; stop them with `fleet dev clusters down`.",
    )
    up.add_argument("names", nargs="*", default=["dev", "staging", "prod"], metavar="NAME")
    up.add_argument(
        "--root", type=Path, default=None, help=f"state folder (default: {default_root()})"
    )
    up.add_argument("--nodes", type=int, default=1, help="kwok nodes per cluster (default: 1)")
    up.add_argument(
        "--foreground",
        action="store_true",
        help="stay in the foreground; Ctrl-C stops the clusters",
    )
    up.set_defaults(func=_up)

    down = clusters_sub.add_parser("down", help="stop local clusters and delete their state")
    down.add_argument("names", nargs="*", metavar="NAME", help="clusters to stop (default: all)")
    down.add_argument("--root", type=Path, default=None, help="state folder")
    down.set_defaults(func=_down)

    get = clusters_sub.add_parser("get", aliases=["list"], help="list local clusters")
    get.add_argument("--root", type=Path, default=None, help="state folder")
    output.add_output_flag(get)
    get.set_defaults(func=_get)


def _root(args: argparse.Namespace) -> Path:
    return (args.root or default_root()).expanduser().resolve()


def _build(args: argparse.Namespace) -> int:
    argv = [*args.tools] + (["--force"] if args.force else [])
    return toolchain.main(argv)


def merged_kubeconfig_path(root: Path) -> Path:
    return root / "kubeconfig"


def _write_merged_kubeconfig(root: Path) -> Path | None:
    found = [LocalClusterRecord(d).kubeconfig() for d in _cluster_dirs(root)]
    configs: list[dict[str, object]] = [c for c in found if c]
    path = merged_kubeconfig_path(root)
    if not configs:
        path.unlink(missing_ok=True)
        return None
    return kubeconfig.write(path, kubeconfig.merge(configs))


def _up(args: argparse.Namespace) -> int:
    root = _root(args)
    for tool in (toolchain.KUBERNETES, toolchain.ETCD, toolchain.KWOK):
        toolchain.build(tool)
    print(
        f"starting {len(args.names)} cluster(s) under {root}: {', '.join(args.names)}", flush=True
    )
    started = time.monotonic()
    try:
        clusters = start_clusters(
            args.names, root, nodes=args.nodes, die_with_parent=args.foreground, progress=True
        )
    except (ClusterError, ProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    merged = _write_merged_kubeconfig(root)
    print(f"{len(clusters)} cluster(s) ready in {time.monotonic() - started:.1f}s\n", flush=True)
    output.print_table(
        ["name", "server", "kubeconfig"],
        [[c.name, c.server, c.kubeconfig_path] for c in clusters],
    )
    print(f"\nexport KUBECONFIG={merged}    # contexts: {', '.join(args.names)}")
    if not args.foreground:
        print("stop them with: fleet dev clusters down")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        # Announced inside the try: a Ctrl-C right after the message must stop the clusters.
        print("running in the foreground; press Ctrl-C to stop", flush=True)
        while all(p.alive() for c in clusters for p in c.processes.values()):
            time.sleep(1)
        print("error: a control-plane process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping clusters", flush=True)
        return 0
    finally:
        for cluster in clusters:
            cluster.stop()
        _write_merged_kubeconfig(root)


def _cluster_dirs(root: Path, names: list[str] | None = None) -> list[Path]:
    if not root.is_dir():
        return []
    found = sorted(p.parent for p in root.glob("*/cluster.json"))
    return [d for d in found if not names or d.name in names]


class LocalClusterRecord:
    """What a running (or dead) local cluster left in its folder, read by another process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.record: dict[str, Any] = json.loads((directory / "cluster.json").read_text())

    def kubeconfig(self) -> dict[str, Any] | None:
        path = self.directory / "kubeconfig"
        return yaml.safe_load(path.read_text()) if path.exists() else None

    def processes(self) -> dict[str, int]:
        alive = {}
        for pid_file in sorted((self.directory / "pids").glob("*.pid")):
            pid = int(pid_file.read_text().strip() or 0)
            if pid and Path(f"/proc/{pid}").exists():
                alive[pid_file.stem] = pid
        return alive

    def summary(self) -> dict[str, Any]:
        processes = self.processes()
        memory = sum(rss_bytes(pid) for pid in processes.values())
        return {
            "name": self.record["name"],
            "server": self.record["server"],
            "status": "Running"
            if len(processes) == 5
            else ("Degraded" if processes else "Stopped"),
            "processes": processes,
            "memoryMiB": round(memory / 2**20),
            "kubeconfig": str(self.directory / "kubeconfig"),
        }


def _get(args: argparse.Namespace) -> int:
    root = _root(args)
    summaries = [LocalClusterRecord(d).summary() for d in _cluster_dirs(root)]
    if args.output != "table":
        output.print_structured(summaries, args.output)
        return 0
    if not summaries:
        print(f"no local clusters under {root}")
        return 0
    output.print_table(
        ["name", "status", "server", "processes", "memory"],
        [
            [s["name"], s["status"], s["server"], len(s["processes"]), f"{s['memoryMiB']}Mi"]
            for s in summaries
        ],
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    root = _root(args)
    dirs = _cluster_dirs(root, args.names or None)
    if args.names and len(dirs) < len(args.names):
        unknown = sorted(set(args.names) - {d.name for d in dirs})
        print(f"error: no local cluster named {', '.join(unknown)} under {root}", file=sys.stderr)
        return 1
    for directory in dirs:
        pids = kill_recorded(directory)
        shutil.rmtree(directory, ignore_errors=True)
        print(f"{directory.name}: stopped {len(pids)} process(es)")
    _write_merged_kubeconfig(root)
    return 0
