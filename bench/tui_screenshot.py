"""SVG screenshots of ``fleet tui`` against a running hub, for the README.

Renders the overview and the promotion pipeline headless at ``--size`` (120x40) with
Textual's ``save_screenshot`` once the first load (and the promotion state) is on
screen. Needs a user token (read-only is enough)::

    .venv/bin/python -m bench.tui_screenshot --hub http://127.0.0.1:8080 \\
        --token-file alice.token --out docs/img
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import time
from pathlib import Path

from textual.pilot import Pilot

from hub.tui.app import FleetApp
from hub.tui.client import HubClient
from hub.tui.feed import HubSource
from hub.tui.screens.pipeline import PipelineScreen

WAIT_SECONDS = 20.0


async def _settle(pilot: Pilot[object], app: FleetApp, check: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check == "loaded" and app.loaded and app.promotions_read:
            break
        if check == "pipeline" and isinstance(app.screen, PipelineScreen) and app.screen.shown:
            break
        await pilot.pause(0.1)
    else:
        print(f"warning: {check} not complete after {WAIT_SECONDS:.0f}s", file=sys.stderr)
    await pilot.pause(0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", required=True, help="hub URL")
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--ca-file", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--size", default="120x40", help="columns x rows (default 120x40)")
    args = parser.parse_args(argv)
    columns, rows = (int(part) for part in args.size.split("x"))
    verify: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else True
    )
    token = args.token_file.read_text().strip()
    app = FleetApp(HubSource(HubClient(args.hub, token, verify=verify)))
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    async def shoot(pilot: Pilot[object]) -> None:
        await _settle(pilot, app, "loaded")
        written.append(Path(app.save_screenshot("tui-overview.svg", str(args.out))))
        await pilot.press("w")
        await _settle(pilot, app, "pipeline")
        written.append(Path(app.save_screenshot("tui-pipeline.svg", str(args.out))))
        app.exit()

    asyncio.run(app.run_async(headless=True, size=(columns, rows), auto_pilot=shoot))
    for path in written:
        print(path)
    return 0 if len(written) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
