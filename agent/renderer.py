"""Renders for the reconcilers: a few kustomize processes at a time, batched when queued.

A unit that renders while nothing else waits runs kustomize on its own, with no delay.
When many units wait for a render slot (a new revision reaches a thousand units), the
one that gets a slot takes every waiting unit of the same checkout along, up to
``max_batch``, into one kustomize process (``fleet.render.batch``): starting kustomize
costs more than building a small unit. Results are the same as renders alone.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from fleet.models.kustomization import KustomizationSpec
from fleet.render import batch
from fleet.render.kustomize import RenderError, RenderResult

MAX_BATCH = 20
"""Units per kustomize process: enough to spread its start-up cost thin; kustomize's own
work grows faster than linearly with a build's size, so not more."""


@dataclasses.dataclass(eq=False)
class _Request:
    spec: KustomizationSpec
    variables: Mapping[str, str] | None
    taken: bool = False
    done: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    result: RenderResult | RenderError | None = None
    crash: Exception | None = None
    """A bug in rendering, not a unit's error: raised to the caller as it is."""


class Renderer:
    def __init__(
        self, workers: int, *, max_batch: int = MAX_BATCH, kustomize: Path | None = None
    ) -> None:
        self._slots = anyio.CapacityLimiter(workers)
        self._max_batch = max_batch
        self._kustomize = kustomize
        self._waiting: dict[Path, list[_Request]] = {}

    async def render(
        self, checkout: Path, spec: KustomizationSpec, variables: Mapping[str, str]
    ) -> RenderResult:
        """The unit's render of the (verified) checkout; raises RenderError."""
        (result,) = await self.render_many(checkout, [(spec, variables)])
        if isinstance(result, RenderError):
            raise result
        assert result is not None
        return result

    async def render_many(
        self, checkout: Path, requests: Sequence[batch.Request]
    ) -> list[RenderResult | RenderError | None]:
        """The first request's render, and the others' when they could come along (None
        when the first joined a batch that was already being built)."""
        first, *along = (_Request(spec, variables) for spec, variables in requests)
        waiting = self._waiting.setdefault(checkout, [])
        waiting.append(first)
        try:
            async with self._slots:
                if not first.taken:
                    await self._render_batch(checkout, first, along)
        finally:
            if not first.taken:  # cancelled while waiting for a slot
                waiting.remove(first)
                if not waiting:
                    self._waiting.pop(checkout, None)
        await first.done.wait()
        if first.crash is not None:
            raise first.crash
        return [first.result, *(r.result if r.done.is_set() else None for r in along)]

    async def _render_batch(self, checkout: Path, first: _Request, along: list[_Request]) -> None:
        waiting = self._waiting[checkout]
        taken = [first, *along][: self._max_batch]
        others = [r for r in waiting if r is not first][: self._max_batch - len(taken)]
        for request in [first, *others]:
            request.taken = True
            waiting.remove(request)
        if not waiting:
            del self._waiting[checkout]
        taken += others
        render = functools.partial(
            batch.render_many,
            checkout,
            [(r.spec, r.variables) for r in taken],
            kustomize_binary=self._kustomize,
            verified_checkout=True,
        )
        # Shielded: the other units of the batch wait for these results.
        with anyio.CancelScope(shield=True):
            results: list[RenderResult | RenderError] | Exception
            try:
                results = await anyio.to_thread.run_sync(render)
            except Exception as error:  # each waiting unit hears of it
                results = error
        for number, request in enumerate(taken):
            if isinstance(results, Exception):
                request.crash = results
            else:
                request.result = results[number]
            request.done.set()
