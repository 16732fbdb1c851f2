"""Wait until every object of a kind is ready, by watching rather than listing.

Listing a thousand Units (or Kustomizations) four times a second costs the API server
as much as a good part of what is measured; one watch costs almost nothing and sees each
change at once. Used for fleet and Flux alike, so both are timed the same way.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import anyio

from fleet.kube import KubeClient, KubeError, NotFound

Object = dict[str, Any]


@dataclasses.dataclass
class Progress:
    """When the objects became ready, seconds after ``started``."""

    started: float
    first: float | None = None
    half: float | None = None
    all: float | None = None

    def summary(self) -> str:
        def seconds(value: float | None) -> str:
            return "—" if value is None else f"{value:.1f} s"

        return f"first {seconds(self.first)}, half {seconds(self.half)}, all {seconds(self.all)}"


async def wait_all_ready(
    client: KubeClient,
    resource: tuple[str, str],
    namespace: str,
    expected: int,
    ready: Callable[[Object], bool],
    *,
    started: float,
    timeout: float,
) -> Progress:
    """Until ``expected`` objects exist and all are ``ready``; raises TimeoutError naming
    those that are not."""
    api_version, kind = resource
    progress = Progress(started)
    objects: dict[str, Object] = {}
    done_names: set[str] = set()

    def seen(name: str, obj: Object | None) -> None:
        if obj is None:
            objects.pop(name, None)
        else:
            objects[name] = obj
        if obj is not None and ready(obj):
            done_names.add(name)
        else:
            done_names.discard(name)

    def count() -> bool:
        done = len(done_names)
        now = time.monotonic() - started
        if done and progress.first is None:
            progress.first = now
        if done * 2 >= expected and progress.half is None:
            progress.half = now
        if len(objects) >= expected and done == len(objects):
            progress.all = now
            return True
        return False

    with anyio.move_on_after(max(0.0, started + timeout - time.monotonic())):
        while True:
            try:
                items, version = await client.list(api_version, kind, namespace)
            except NotFound:  # the CRD is not there yet
                await anyio.sleep(0.25)
                continue
            objects.clear()
            done_names.clear()
            for item in items:
                seen(item["metadata"]["name"], item)
            if count():
                return progress
            try:
                async for event in client.watch(
                    api_version, kind, namespace, resource_version=version
                ):
                    if event.type == "BOOKMARK":
                        continue
                    name = event.object["metadata"]["name"]
                    seen(name, None if event.type == "DELETED" else event.object)
                    if count():
                        return progress
            except KubeError:
                pass  # expired or interrupted: list again
    waiting = sorted(name for name, obj in objects.items() if not ready(obj))
    raise TimeoutError(
        f"{len(objects)}/{expected} {kind} objects, not all ready within {timeout:.0f}s: "
        f"{', '.join(waiting[:10])}"
    )
