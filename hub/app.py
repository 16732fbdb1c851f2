"""The hub's HTTP API (Starlette): one table of endpoints drives both routing and OpenAPI.

Access per endpoint: ``public`` (only ``/healthz``), ``read`` (a user token, read-only or
admin), ``admin``, ``cluster`` (the token of the cluster named in the path, nobody
else's) and ``signature`` (webhooks: the provider's signature or shared token, since
GitHub and GitLab cannot send our bearer tokens).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio
import pydantic
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fleet import sse
from fleet.report import ClusterReport, HubCommand
from hub import api, limits, metrics, openapi
from hub.auth import Principal
from hub.service import Hub, HubError
from hub.webhooks import PROVIDERS

Access = Literal["public", "read", "admin", "cluster", "signature"]
Handler = Callable[[Request, Hub, Principal | None], Awaitable[Response]]
Body = TypeVar("Body", bound=pydantic.BaseModel)
WEBHOOK_MAX_BYTES = 5 * 1024 * 1024
REQUEST_MAX_BYTES = 64 * 1024
"""Bodies of the admin requests (reconcile, wave actions, tokens): a few fields each."""
DEFAULT_EVENT_LIMIT = 100
MAX_EVENT_LIMIT = 1000
STREAM_RETRY_MS = 2000
REFUSAL_DELAY_SECONDS = 1.0
MAX_REFUSAL_DELAY_SECONDS = 5.0
"""A rate-limited report is answered after its wait (at least 1 s, at most 5 s): each
connection of a flooding token then costs the hub about one cheap refusal a second."""
MAX_RESUME_ID = 2**62
"""Feed and command ids are 64-bit integers in the database; larger ones never existed."""
_DECIMAL = re.compile(r"^[0-9]{1,19}$")
"""ASCII digits only: ``str.isdigit`` also accepts ``²`` and other digits ``int`` refuses."""


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    access: Access
    response: type[pydantic.BaseModel] | None = None
    request: type[pydantic.BaseModel] | None = None
    status: int = 200
    media_type: str = "application/json"
    query: tuple[tuple[str, str, str], ...] = ()
    """(name, JSON type, description) of query parameters."""
    errors: tuple[int, ...] = ()
    description: str = ""
    stream_events: dict[str, type[pydantic.BaseModel] | None] = field(default_factory=dict)


def _json(model: pydantic.BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status)


def _error(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    response = _json(api.ErrorBody(error=message, detail=detail), status)
    response.headers.update(headers or {})
    return response


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it is known to exceed ``limit``, and with
    408 when it has not arrived within ``limits.bodyTimeout`` (a trickled body)."""
    declared = request.headers.get("content-length")
    if declared is not None and _DECIMAL.match(declared) and int(declared) > limit:
        raise HubError(413, f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    timeout = request.app.state.hub.config.limits.body_timeout.total_seconds()
    with anyio.move_on_after(timeout) as scope:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HubError(413, f"the body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise HubError(408, f"the request body did not arrive within {timeout:g}s")
    return b"".join(chunks)


def _int_query(
    request: Request, name: str, default: int | None, *, low: int, high: int
) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise HubError(400, f"query parameter {name!r} must be an integer") from None
    if not low <= value <= high:
        raise HubError(400, f"query parameter {name!r} must be between {low} and {high}")
    return value


def _resume_from(request: Request) -> int | None:
    """Where a stream resumes: ``Last-Event-ID`` (set by reconnecting clients) or ``?after=``."""
    text = request.headers.get("last-event-id") or request.query_params.get("after")
    if text is None or text == "":
        return None
    if not _DECIMAL.match(text) or int(text) > MAX_RESUME_ID:
        raise HubError(
            400, f"Last-Event-ID / after must be an integer between 0 and {MAX_RESUME_ID}"
        )
    return int(text)


class _SlotStream(StreamingResponse):
    """A stream that gives its slot back however it ends (done, client gone, cancelled)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            body,
            media_type=sse.MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _streaming(
    hub: Hub, principal: Principal | None, body: AsyncIterator[bytes]
) -> StreamingResponse:
    """``body`` as server-sent events, if this token and the hub have a stream slot left."""
    key = principal.token_id if principal else "?"
    refused = hub.stream_slots.take(key)
    if refused is not None:
        hub.metrics.limited.labels(limit="streams").inc()
        raise HubError(429, refused, headers={"Retry-After": limits.retry_after(5)})
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            hub.stream_slots.give_back(key)

    return _SlotStream(body, release)


async def healthz(request: Request, hub: Hub, principal: Principal | None) -> Response:
    try:
        await hub.store.last_change_id()
    except Exception as error:
        return _error(503, f"database unavailable: {type(error).__name__}")
    return _json(api.Health(status="ok", database=hub.store.database.dialect.name))


async def metrics_endpoint(request: Request, hub: Hub, principal: Principal | None) -> Response:
    await hub.refresh_fleet_metrics()
    return Response(hub.metrics.render(), media_type=metrics.CONTENT_TYPE)


async def openapi_document(request: Request, hub: Hub, principal: Principal | None) -> Response:
    return JSONResponse(openapi.document(ENDPOINTS))


async def put_report(request: Request, hub: Hub, principal: Principal | None) -> Response:
    # Before the body is read: a refused flood costs the hub as little as possible.
    wait = hub.ingest_limiter.admit(principal.token_id if principal else "?")
    if wait is not None:
        hub.metrics.limited.labels(limit="ingest_rate").inc()
        # Answered late: a flooder that retries at once would otherwise get refusals as
        # fast as the hub can write them, and take the event loop from everyone else.
        await anyio.sleep(min(max(wait, REFUSAL_DELAY_SECONDS), MAX_REFUSAL_DELAY_SECONDS))
        raise HubError(
            429,
            f"this token sends reports faster than {hub.config.limits.ingest_per_second:g}/s",
            headers={"Retry-After": limits.retry_after(wait)},
        )
    body = await _read_body(request, hub.config.max_report_bytes)
    return _json(await hub.ingest(request.path_params["name"], body))


async def list_clusters(request: Request, hub: Hub, principal: Principal | None) -> Response:
    return _json(api.ClusterList(items=await hub.list_clusters()))


async def get_cluster(request: Request, hub: Hub, principal: Principal | None) -> Response:
    return _json(await hub.cluster_detail(request.path_params["name"]))


async def cluster_events(request: Request, hub: Hub, principal: Principal | None) -> Response:
    limit = _int_query(request, "limit", DEFAULT_EVENT_LIMIT, low=1, high=MAX_EVENT_LIMIT)
    before = _int_query(request, "before", None, low=1, high=2**62)
    assert limit is not None
    return _json(await hub.events(request.path_params["name"], limit, before))


async def cluster_history(request: Request, hub: Hub, principal: Principal | None) -> Response:
    limit = _int_query(request, "limit", 10, low=1, high=1000)
    assert limit is not None
    return _json(await hub.history(request.path_params["name"], limit))


async def fleet_events(request: Request, hub: Hub, principal: Principal | None) -> Response:
    limit = _int_query(request, "limit", DEFAULT_EVENT_LIMIT, low=1, high=MAX_EVENT_LIMIT)
    before = _int_query(request, "before", None, low=1, high=2**62)
    assert limit is not None
    return _json(await hub.events(None, limit, before))


async def summary(request: Request, hub: Hub, principal: Principal | None) -> Response:
    return _json(await hub.summary())


async def _request_body(request: Request, model: type[Body], what: str) -> Body:
    """The JSON body as ``model`` (no body: ``{}``); else 422 naming each field at fault."""
    body = await _read_body(request, REQUEST_MAX_BYTES)
    try:
        return model.model_validate_json(body or b"{}")
    except pydantic.ValidationError as error:
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        named = "; ".join(
            ".".join(str(part) for part in problem["loc"]) + ": " + problem["msg"]
            if problem["loc"]
            else problem["msg"]
            for problem in problems
        )
        raise HubError(422, f"invalid {what}: {named}", problems) from None


async def reconcile(request: Request, hub: Hub, principal: Principal | None) -> Response:
    wanted = await _request_body(request, api.ReconcileRequest, "reconcile request")
    name = request.path_params["name"]
    who = principal.subject if principal else "?"
    command = await hub.queue_reconcile(name, wanted.unit, wanted.source, f"requested by {who}")
    return _json(api.CommandQueued(cluster=name, command=command), 202)


async def stream(request: Request, hub: Hub, principal: Principal | None) -> Response:
    resume = _resume_from(request)
    start = await hub.store.last_change_id() if resume is None else resume
    oldest = await hub.store.oldest_change_id() if resume is not None else None
    # The feed is bounded: a client further behind than it reaches has missed changes.
    missed = oldest is not None and start < oldest - 1

    async def events() -> AsyncIterator[bytes]:
        if missed:
            yield sse.format_event("{}", event="reset")
        yield sse.format_event("{}", event="ready", id=start, retry_ms=STREAM_RETRY_MS)
        async for item in hub.change_stream(start):
            if item is None:
                yield sse.format_comment("keepalive")
            else:
                yield sse.format_event(_dumps(item.payload), event=item.type, id=item.id)

    return _streaming(hub, principal, events())


async def commands(request: Request, hub: Hub, principal: Principal | None) -> Response:
    name = request.path_params["name"]
    resume = _resume_from(request)
    start = await hub.current_command_id() if resume is None else resume

    async def events() -> AsyncIterator[bytes]:
        yield sse.format_event("{}", event="ready", id=start, retry_ms=STREAM_RETRY_MS)
        async for item in hub.command_stream(name, start):
            if item is None:
                yield sse.format_comment("keepalive")
                continue
            command = HubCommand.model_validate(
                {**item.payload, "id": item.id, "queuedAt": _iso(item.created_at)}
            )
            yield sse.format_event(
                command.model_dump_json(by_alias=True), event="command", id=item.id
            )

    return _streaming(hub, principal, events())


async def webhook(request: Request, hub: Hub, principal: Principal | None) -> Response:
    provider = request.path_params["provider"]
    if provider not in PROVIDERS:
        raise HubError(
            404, f"unknown webhook provider {provider!r}; use one of {', '.join(PROVIDERS)}"
        )
    body = await _read_body(request, WEBHOOK_MAX_BYTES)
    headers = {key.lower(): value for key, value in request.headers.items()}
    return _json(await hub.webhook(provider, headers, body), 202)


async def promotions(request: Request, hub: Hub, principal: Principal | None) -> Response:
    return _json(await hub.promotions())


async def promotion_history(request: Request, hub: Hub, principal: Principal | None) -> Response:
    limit = _int_query(request, "limit", 100, low=1, high=1000)
    before = _int_query(request, "before", None, low=1, high=2**62)
    assert limit is not None
    wave = request.query_params.get("wave") or None
    return _json(await hub.promotion_history(limit, wave, before))


def _wave_action(
    action: str, body_model: type[api.ApproveRequest] | type[api.RollbackRequest] | None
) -> Handler:
    async def handle(request: Request, hub: Hub, principal: Principal | None) -> Response:
        revision = None
        if body_model is not None:
            wanted = await _request_body(request, body_model, f"{action} request")
            revision = wanted.to if isinstance(wanted, api.RollbackRequest) else wanted.revision
        who = principal.subject if principal else "?"
        wave = request.path_params["wave"]
        return _json(await hub.promotion_action(wave, action, who, revision))

    handle.__name__ = f"{action}_wave"
    return handle


async def create_token(request: Request, hub: Hub, principal: Principal | None) -> Response:
    wanted = await _request_body(request, api.TokenRequest, "token request")
    who = principal.subject if principal else "?"
    return _json(await hub.create_token(wanted, who), 201)


async def list_tokens(request: Request, hub: Hub, principal: Principal | None) -> Response:
    return _json(await hub.list_tokens())


async def revoke_token(request: Request, hub: Hub, principal: Principal | None) -> Response:
    who = principal.subject if principal else "?"
    return _json(await hub.revoke_token(request.path_params["id"], who))


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


_P = api.API_PREFIX
_LIMITS = (
    (
        "limit",
        "integer",
        f"at most this many events, newest first "
        f"(1-{MAX_EVENT_LIMIT}, default {DEFAULT_EVENT_LIMIT})",
    ),
    ("before", "integer", "only events with an id below this one (paging back)"),
)
_RESUME = (("after", "integer", "resume after this id (same as the Last-Event-ID header)"),)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/healthz",
        healthz,
        "Liveness and database reachability",
        "public",
        api.Health,
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/metrics",
        metrics_endpoint,
        "Prometheus metrics",
        "read",
        media_type=metrics.CONTENT_TYPE,
    ),
    Endpoint(
        "GET",
        f"{_P}/openapi.json",
        openapi_document,
        "This document",
        "read",
        media_type="application/json",
    ),
    Endpoint(
        "PUT",
        f"{_P}/clusters/{{name}}/report",
        put_report,
        "Ingest a cluster's report (its agent's token only)",
        "cluster",
        api.IngestResult,
        request=ClusterReport,
        errors=(400, 408, 413, 422, 429),
        description="Reports equal in content to the stored one (see content_digest) count "
        "as heartbeats. 429 (with Retry-After) when the token sends faster than "
        "limits.ingestPerSecond allows.",
    ),
    Endpoint(
        "GET",
        f"{_P}/clusters",
        list_clusters,
        "All clusters with their health",
        "read",
        api.ClusterList,
    ),
    Endpoint(
        "GET",
        f"{_P}/clusters/{{name}}",
        get_cluster,
        "One cluster: summary and latest report",
        "read",
        api.ClusterDetail,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        f"{_P}/clusters/{{name}}/events",
        cluster_events,
        "A cluster's events, newest first",
        "read",
        api.EventList,
        query=_LIMITS,
        errors=(400, 404),
    ),
    Endpoint(
        "GET",
        f"{_P}/clusters/{{name}}/history",
        cluster_history,
        "A cluster's changed reports, newest first",
        "read",
        api.ReportHistory,
        query=(("limit", "integer", "at most this many reports (1-1000, default 10)"),),
        errors=(400, 404),
    ),
    Endpoint(
        "GET",
        f"{_P}/events",
        fleet_events,
        "Events of every cluster, newest first",
        "read",
        api.EventList,
        query=_LIMITS,
        errors=(400,),
    ),
    Endpoint(
        "GET",
        f"{_P}/summary",
        summary,
        "Cluster counts per health and per label value",
        "read",
        api.FleetSummary,
    ),
    Endpoint(
        "GET",
        f"{_P}/stream",
        stream,
        "Server-sent events of fleet changes, resumable by id",
        "read",
        media_type=sse.MEDIA_TYPE,
        query=_RESUME,
        errors=(400, 429),
        description="First a `ready` event whose id is the starting position; then "
        "`cluster-updated` and `event` events, and with promotion configured `promotion` "
        "(an action on a wave was recorded) and `promotion-status` (a wave's action changed: "
        "re-read /promotions). Reconnect with Last-Event-ID to resume "
        "without gaps; if the hub no longer holds changes that far back, a `reset` event "
        "comes before `ready`: re-read the cluster list, then follow the stream.",
        stream_events={
            "ready": None,
            "reset": None,
            "cluster-updated": api.StreamChange,
            "event": api.StreamEvent,
            "promotion": api.StreamPromotion,
            "promotion-status": api.StreamPromotionStatus,
        },
    ),
    Endpoint(
        "GET",
        f"{_P}/clusters/{{name}}/commands",
        commands,
        "The agent's outbound command stream (server-sent events)",
        "cluster",
        media_type=sse.MEDIA_TYPE,
        query=_RESUME,
        errors=(400, 429),
        description="First a `ready` event whose id is the starting position; then `command` "
        "events. Opened by the agent, so the hub never connects into a cluster.",
        stream_events={"ready": None, "command": HubCommand},
    ),
    Endpoint(
        "POST",
        f"{_P}/clusters/{{name}}/reconcile",
        reconcile,
        "Queue an immediate reconcile on a cluster",
        "admin",
        api.CommandQueued,
        request=api.ReconcileRequest,
        status=202,
        errors=(404, 422),
    ),
    Endpoint(
        "GET",
        f"{_P}/promotions",
        promotions,
        "Every promotion wave: its revision, candidate, gate state and why it waits",
        "read",
        api.PromotionStatus,
        errors=(404,),
        description="404 when the hub has no `promotion` configured. `error` says why "
        "promotion is halted as a whole (fleet.yaml invalid, repository unreachable).",
    ),
    Endpoint(
        "GET",
        f"{_P}/promotions/history",
        promotion_history,
        "Promotions, approvals, pauses, halts and rollbacks, newest first",
        "read",
        api.PromotionHistory,
        query=(
            ("limit", "integer", "at most this many records (1-1000, default 100)"),
            ("before", "integer", "only records with an id below this one (paging back)"),
            ("wave", "string", "only this wave's records"),
        ),
        errors=(400, 404),
    ),
    Endpoint(
        "POST",
        f"{_P}/promotions/{{wave}}/approve",
        _wave_action("approve", api.ApproveRequest),
        "Approve a revision (default: the candidate) for a wave with approval: required",
        "admin",
        api.PromotionRecord,
        request=api.ApproveRequest,
        errors=(404, 409, 422),
        description="Approving a revision that failed in the wave also lifts that mark.",
    ),
    Endpoint(
        "POST",
        f"{_P}/promotions/{{wave}}/pause",
        _wave_action("pause", None),
        "Stop promotions into a wave (failures still halt or roll back)",
        "admin",
        api.PromotionRecord,
        errors=(404, 409),
    ),
    Endpoint(
        "POST",
        f"{_P}/promotions/{{wave}}/resume",
        _wave_action("resume", None),
        "Let promotions into a paused wave again",
        "admin",
        api.PromotionRecord,
        errors=(404, 409),
    ),
    Endpoint(
        "POST",
        f"{_P}/promotions/{{wave}}/rollback",
        _wave_action("rollback", api.RollbackRequest),
        "Move a wave's ref(s) back (default: to its last good revision)",
        "admin",
        api.PromotionRecord,
        request=api.RollbackRequest,
        errors=(404, 409, 422, 502),
        description="The revision rolled back from is marked failed in the wave, so the "
        "gate does not promote it again until a new commit or an approval of it.",
    ),
    Endpoint(
        "POST",
        f"{_P}/tokens",
        create_token,
        "Create a cluster or user token; the token is in this response only",
        "admin",
        api.TokenCreated,
        request=api.TokenRequest,
        status=201,
        errors=(413, 422),
        description="The hub keeps a salted hash, never the token. A cluster token makes the "
        "cluster known (Unknown until its agent reports) with its `labels`; without "
        "`labels` the cluster keeps those it has. Earlier tokens of the same cluster or user "
        "stay valid until revoked.",
    ),
    Endpoint(
        "GET",
        f"{_P}/tokens",
        list_tokens,
        "Every token, revoked ones included, without its secret",
        "admin",
        api.TokenList,
    ),
    Endpoint(
        "DELETE",
        f"{_P}/tokens/{{id}}",
        revoke_token,
        "Revoke a token; this hub refuses it from now on",
        "admin",
        api.TokenInfo,
        errors=(404,),
        description="Revoking a revoked token changes nothing and answers as the first time. "
        "Other replicas may accept it for up to `tokenCacheTtl`.",
    ),
    Endpoint(
        "POST",
        f"{_P}/webhooks/{{provider}}",
        webhook,
        "Push webhook (github, gitlab, generic): reconcile the clusters following the pushed ref",
        "signature",
        api.WebhookResult,
        status=202,
        errors=(400, 404, 409, 413),
        description="GitHub: X-Hub-Signature-256. GitLab: X-Gitlab-Token. Generic: "
        "X-Fleet-Signature (sha256=HMAC of '<timestamp>.<body>'), X-Fleet-Timestamp "
        "(unix seconds, within 5 minutes) and X-Fleet-Delivery (unique per delivery).",
    ),
)


def _wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        hub: Hub = request.app.state.hub
        try:
            principal = await _admit(endpoint, request, hub)
            return await endpoint.handler(request, hub, principal)
        except HubError as error:
            return _error(error.status, str(error), error.detail, error.headers)

    return handle


async def _admit(endpoint: Endpoint, request: Request, hub: Hub) -> Principal | None:
    if endpoint.access in ("public", "signature"):
        return None
    principal = await hub.authenticate(request.headers.get("authorization"))
    if endpoint.access == "cluster":
        name = request.path_params.get("name", "")
        if not principal.is_cluster(name):
            raise hub.forbid(f"this token may not act as cluster {name!r}")
    elif endpoint.access == "admin" and not principal.is_admin():
        raise hub.forbid("this endpoint needs an admin token")
    elif endpoint.access == "read" and not principal.may_read():
        raise hub.forbid("this endpoint needs a read-only or admin user token")
    return principal


async def _http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = error.detail if isinstance(error, HTTPException) else "internal error"
    return _error(status, str(detail))


def build_app(hub: Hub) -> Starlette:
    """The ASGI app; its lifespan migrates the store and runs the hub's background work."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.store.migrate()
        async with anyio.create_task_group() as group:
            await group.start(hub.run)
            if hub.promoter is not None:
                await group.start(hub.promoter.run)
            yield
            hub.stop_streams()
            group.cancel_scope.cancel()

    routes = [
        Route(
            endpoint.path,
            _wrap(endpoint),
            methods=[endpoint.method],
            name=f"{endpoint.method} {endpoint.path}",
        )
        for endpoint in ENDPOINTS
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.hub = hub
    return app
