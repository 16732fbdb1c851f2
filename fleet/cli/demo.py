"""``fleet demo``: the whole product on this machine, no Docker needed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from fleet.cli import output
from fleet.demo.status import UnitRow
from fleet.localkube import kubeconfig, toolchain


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the demo fleet locally (clusters, Git server, agents)",
        description="Start three local clusters (dev, staging, prod), a git:// server with the "
        "example fleet repository and one agent per cluster; wait until every unit is Ready and "
        "keep running until Ctrl-C, which stops everything.",
    )
    sub = demo.add_subparsers(dest="demo_command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="bring the demo up and keep it running until Ctrl-C")
    up.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"state folder, wiped on start (default: {toolchain.cache_dir() / 'demo'})",
    )
    up.add_argument("--timeout", type=float, default=300, help="seconds to wait for Ready")
    up.add_argument(
        "--exit-when-ready",
        action="store_true",
        help="stop once every unit is Ready (and the walkthrough, with --story, passed): "
        "exit 0; or when the timeout passes or the walkthrough failed: exit 1",
    )
    up.add_argument(
        "--story",
        action="store_true",
        help="run the walkthrough once the fleet is Ready: a commit through the waves, a "
        "scale healed, a bad commit halted and rolled back",
    )
    up.add_argument(
        "--no-tui",
        action="store_true",
        help="do not open the TUI (it opens only on an interactive terminal anyway)",
    )
    up.set_defaults(func=_up)


def _print_rows(rows: Sequence[UnitRow]) -> None:
    output.print_table(
        ["cluster", "unit", "ready", "revision", "message"],
        [[r.cluster, r.unit, r.ready, r.revision, r.message[:70]] for r in rows],
    )


def _up(args: argparse.Namespace) -> int:
    from fleet.demo import status
    from fleet.demo.environment import CLUSTERS, demo_fleet
    from fleet.demo.story import Story, StoryFailed

    root = (args.root or toolchain.cache_dir() / "demo").expanduser().resolve()
    try:
        with demo_fleet(root) as fleet:
            configs = [c.kubeconfig() for c in fleet.clusters.values()]
            kubeconfig.write(fleet.kubeconfig, kubeconfig.merge(configs))
            print(f"◎ waiting for every unit to be Ready (up to {args.timeout:.0f}s)", flush=True)
            deadline = time.monotonic() + args.timeout
            rows: list[UnitRow] = []
            while time.monotonic() < deadline:
                rows = anyio.run(status.unit_rows, fleet.clusters)
                if status.all_ready(rows, CLUSTERS, minimum_units=3):
                    break
                for agent in fleet.agents.values():
                    agent.check_running()
                time.sleep(1)
            print()
            _print_rows(rows)
            ready = status.all_ready(rows, CLUSTERS, minimum_units=3)
            print()
            if not ready:
                print(f"✗ not every unit became Ready within {args.timeout:.0f}s", file=sys.stderr)
                print(f"  agent logs: {root / 'agents'}/*/logs/", file=sys.stderr)
                if args.exit_when_ready:
                    return 1
            else:
                print("✔ the fleet is Ready")
            if args.story and ready:
                try:
                    Story(fleet).run()
                except StoryFailed as failure:
                    print(f"✗ {failure}", file=sys.stderr)
                    return 1
            if args.exit_when_ready:
                return 0
            tui = [sys.executable, "-m", "fleet.cli.main", "tui", f"--hub={fleet.hub_url}"]
            tui.append(f"--token-file={fleet.admin_token_file}")
            if not args.no_tui and sys.stdin.isatty() and sys.stdout.isatty():
                print("◎ opening the TUI; quit it (q) to stop the demo", flush=True)
                subprocess.run(tui, check=False)
                return 0
            print(
                f"""
Try it:
  export KUBECONFIG={fleet.kubeconfig}      # contexts: {", ".join(fleet.clusters)}
  kubectl --context dev -n podinfo scale deployment podinfo --replicas=7   # healed at once
  fleet get units --context dev
  git clone {fleet.repo_url} && cd fleet    # commit and push: the waves carry it
  {" ".join(tui)}
  fleet promote status --hub {fleet.hub_url} --token-file {fleet.admin_token_file}
Press Ctrl-C to stop everything.""",
                flush=True,
            )
            last = rows
            while True:
                time.sleep(5)
                rows = anyio.run(status.unit_rows, fleet.clusters)
                if rows != last:
                    print(time.strftime("\n%H:%M:%S"))
                    _print_rows(rows)
                    last = rows
    except KeyboardInterrupt:
        print("\nstopping the demo", flush=True)
        return 0
