"""``HubClient``: the TUI's async view of the hub's ``/api/v1``, over httpx.

Every call returns the hub's own models (``ClusterSummary``, ``EventRecord``...) or raises
one of this module's errors: httpx's exceptions are translated once, here, so the screens
never see a transport error. The promotion endpoints are optional on a hub: a 404 on
them raises ``PromotionNotConfigured``, which the pipeline screen shows as such.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import httpx
import pydantic

from fleet import sse
from fleet.report import ClusterSummary, HubCommand, ReportModel
from hub import api

__all__ = [
    "HubClient",
    "HubClientError",
    "HubRefused",
    "HubUnreachable",
    "PromotionNotConfigured",
    "PromotionRecord",
    "Promotions",
    "WaveAction",
    "WaveStatus",
]

WaveAction = Literal["promote", "wait", "halt", "rollback", "settled"]
STREAM_READ_TIMEOUT = 60.0
"""Four of the hub's default 15 s keepalives: a stream silent for longer is dead."""


class HubClientError(Exception):
    """Anything that kept a hub call from giving an answer."""


class HubUnreachable(HubClientError):
    """No answer: connection refused or dropped, a timeout, or a 5xx from a proxy or hub."""


class HubRefused(HubClientError):
    """The hub answered and said no (4xx); ``status`` and the hub's message are kept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the hub answered {status}: {message}")
        self.status = status
        self.message = message


class PromotionNotConfigured(HubRefused):
    """The hub has no promoter (its promotion endpoints answer 404)."""


class WaveStatus(ReportModel):
    """One wave of ``GET /api/v1/promotions``: where it stands and why it waits."""

    name: str
    depends_on: list[str] = pydantic.Field(default_factory=list)
    revision: str | None = None
    """What the wave's clusters follow now."""
    candidate: str | None = None
    """What would enter the wave next."""
    action: WaveAction = "wait"
    reason: str = ""
    approval_required: bool = False
    approved: bool = False
    paused: bool = False
    clusters: list[str] = pydantic.Field(default_factory=list)
    last_good: str | None = None


class Promotions(ReportModel):
    waves: list[WaveStatus] = pydantic.Field(default_factory=list)
    """Dependencies first."""
    error: str | None = None
    """Why promotion is halted as a whole (fleet.yaml invalid, the repository unreachable)."""


class PromotionRecord(ReportModel):
    """One action on a wave from ``GET /api/v1/promotions/history``."""

    id: int
    wave: str
    action: str
    revision: str | None = None
    from_: str | None = pydantic.Field(default=None, alias="from")
    """Where the wave's ref pointed before (promote, rollback)."""
    who: str = ""
    why: str = ""
    at: str = ""


class PromotionHistory(ReportModel):
    items: list[PromotionRecord] = pydantic.Field(default_factory=list)


@contextlib.contextmanager
def _map_errors(what: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as error:
        raise HubUnreachable(f"{what}: timed out") from error
    except httpx.TransportError as error:
        raise HubUnreachable(f"{what}: {error or type(error).__name__}") from error


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text.strip()[:200]


class HubClient:
    """One hub, one token; cheap to keep open for the life of the TUI."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        verify: bool | ssl.SSLContext = True,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=verify,
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        with _map_errors(f"{method} {path}"):
            response = await self._http.request(method, path, json=json, params=params)
        if response.status_code >= 500:
            raise HubUnreachable(f"{method} {path}: {response.status_code} {_message(response)}")
        if response.status_code >= 400:
            raise HubRefused(response.status_code, _message(response))
        return response.json()

    async def clusters(self) -> list[ClusterSummary]:
        body = await self._request("GET", f"{api.API_PREFIX}/clusters")
        return api.ClusterList.model_validate(body).items

    async def summary(self) -> api.FleetSummary:
        return api.FleetSummary.model_validate(
            await self._request("GET", f"{api.API_PREFIX}/summary")
        )

    async def cluster(self, name: str) -> api.ClusterDetail:
        body = await self._request("GET", f"{api.API_PREFIX}/clusters/{name}")
        return api.ClusterDetail.model_validate(body)

    async def events(self, cluster: str | None = None, limit: int = 100) -> list[api.EventRecord]:
        """Newest first, as the hub pages them."""
        path = (
            f"{api.API_PREFIX}/clusters/{cluster}/events" if cluster else f"{api.API_PREFIX}/events"
        )
        body = await self._request("GET", path, params={"limit": limit})
        return api.EventList.model_validate(body).items

    async def reconcile(self, cluster: str, unit: str | None = None) -> HubCommand:
        body = await self._request(
            "POST", f"{api.API_PREFIX}/clusters/{cluster}/reconcile", json={"unit": unit}
        )
        return api.CommandQueued.model_validate(body).command

    @contextlib.asynccontextmanager
    async def stream(self, after: str | None) -> AsyncIterator[AsyncIterator[sse.ServerSentEvent]]:
        """One connection to ``/stream``, resuming after ``after`` (the Last-Event-ID).

        Yields the events as they arrive; the iteration ends when the hub closes the
        stream and raises ``HubUnreachable`` when the connection breaks.
        """
        headers = {"Accept": sse.MEDIA_TYPE}
        if after is not None:
            headers["Last-Event-ID"] = after
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT)
        path = f"{api.API_PREFIX}/stream"
        with _map_errors(f"GET {path}"):
            async with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code >= 500:
                    raise HubUnreachable(f"GET {path}: {response.status_code}")
                if response.status_code >= 400:
                    await response.aread()
                    raise HubRefused(response.status_code, _message(response))
                yield self._events(response)

    @staticmethod
    async def _events(response: httpx.Response) -> AsyncIterator[sse.ServerSentEvent]:
        parser = sse.EventStreamParser()
        with _map_errors("reading the stream"):
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event

    async def promotions(self) -> Promotions:
        return Promotions.model_validate(await self._promotion_get("/promotions", {}))

    async def promotion_history(self, wave: str, limit: int = 20) -> list[PromotionRecord]:
        """The wave's recorded actions, newest first."""
        body = await self._promotion_get("/promotions/history", {"wave": wave, "limit": limit})
        return PromotionHistory.model_validate(body).items

    async def _promotion_get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            return await self._request("GET", f"{api.API_PREFIX}{path}", params=params)
        except HubRefused as refused:
            if refused.status in (404, 405):
                raise PromotionNotConfigured(refused.status, refused.message) from None
            raise

    async def _wave_action(self, wave: str, action: str, body: dict[str, Any]) -> None:
        try:
            await self._request("POST", f"{api.API_PREFIX}/promotions/{wave}/{action}", json=body)
        except HubRefused as refused:
            if refused.status == 405:
                raise PromotionNotConfigured(refused.status, refused.message) from None
            raise

    async def approve(self, wave: str, revision: str) -> None:
        await self._wave_action(wave, "approve", {"revision": revision})

    async def pause(self, wave: str) -> None:
        await self._wave_action(wave, "pause", {})

    async def resume(self, wave: str) -> None:
        await self._wave_action(wave, "resume", {})

    async def rollback(self, wave: str, to: str) -> None:
        await self._wave_action(wave, "rollback", {"to": to})
