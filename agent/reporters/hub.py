"""``HubReporter``: the agent's side of the hub, over connections the agent opens itself.

Reports: ``submit`` only records the latest report and returns; a background task sends it
when its content changed and re-sends it every ``heartbeat_seconds`` so the hub can tell
a silent agent from a quiet cluster. While the hub is unreachable the task retries with
exponential backoff (with jitter, capped), and delivers whatever is latest when the hub
is back: reports in between are superseded, never queued.

Commands: a second task keeps ``GET /api/v1/clusters/{name}/commands`` open (server-sent
events) and hands each ``HubCommand`` to ``on_command`` or to the ``commands()`` iterator.
It reconnects with ``Last-Event-ID``, so a command queued while the stream was down is
delivered when it comes back. Nothing ever connects into the cluster.

    async with HubReporter(url, token, "dev", on_command=handle) as hub:
        ...
        hub.submit(report)   # from the reconcile loop, never blocks
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
import httpx
import pydantic
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from fleet import report as report_schema
from fleet import sse
from fleet.report import ClusterReport, HubCommand

log = logging.getLogger(__name__)

CommandHandler = Callable[[HubCommand], Awaitable[None]]
COMMAND_BUFFER = 64
"""Commands waiting for a reader; reconciles coalesce, so dropping beyond this is harmless."""
_RETRYABLE_STATUS = frozenset({401, 403, 408, 425, 429})
"""Worth retrying: a token being rotated, a hub being restarted or rate limiting."""


class HubReporter:
    """Delivers reports to the hub and receives its commands; see the module docstring.

    ``verify`` says how to trust the hub's TLS certificate: the system CAs (True), a CA
    bundle file (a path), an ``ssl.SSLContext``, or not at all (False, for tests only).
    """

    def __init__(
        self,
        url: str,
        token: str,
        cluster: str,
        *,
        heartbeat_seconds: float = report_schema.DEFAULT_HEARTBEAT_SECONDS,
        retry_min_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        stream_idle_seconds: float = 60.0,
        verify: bool | str | ssl.SSLContext = True,
        on_command: CommandHandler | None = None,
        receive_commands: bool = True,
    ) -> None:
        self.cluster = cluster
        self.heartbeat_seconds = heartbeat_seconds
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        self.stream_idle_seconds = stream_idle_seconds
        """A stream silent this long (the hub sends keepalives) is considered dead."""
        self.on_command = on_command
        self.receive_commands = receive_commands
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "fleet-agent"},
            timeout=timeout_seconds,
            verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify,
        )
        self._latest: ClusterReport | None = None
        self._submitted = anyio.Event()
        self._send_commands: MemoryObjectSendStream[HubCommand]
        self._receive_commands: MemoryObjectReceiveStream[HubCommand]
        self._send_commands, self._receive_commands = anyio.create_memory_object_stream[HubCommand](
            COMMAND_BUFFER
        )
        self._task_group: anyio.abc.TaskGroup | None = None
        self._last_command_id: str | None = None
        self.delivered_digest: str | None = None
        """Content digest of the last report the hub accepted."""
        self.deliveries = 0
        self.failures = 0
        """Consecutive failed deliveries; 0 once the hub accepts a report again."""
        self.last_error: str | None = None
        self.stream_connected = False

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._deliver_forever)
        if self.receive_commands:
            self._task_group.start_soon(self._stream_forever)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._task_group.__aexit__(kind, error, traceback)
        finally:
            self._task_group = None
            await self._client.aclose()
            self._send_commands.close()

    def submit(self, report: ClusterReport) -> None:
        """Make ``report`` the one to deliver; returns at once, whatever the hub's state."""
        if report.cluster != self.cluster:
            raise ValueError(
                f"report of {report.cluster!r} given to the reporter of {self.cluster!r}"
            )
        self._latest = report
        self._submitted.set()

    async def commands(self) -> AsyncIterator[HubCommand]:
        """Commands from the hub as they arrive (when no ``on_command`` was given)."""
        async for command in self._receive_commands:
            yield command

    async def _deliver_forever(self) -> None:
        next_heartbeat = 0.0
        backoff = self.retry_min_seconds
        while True:
            report = self._latest
            if report is None:
                await self._wait_for_submit(None)
                continue
            digest = report_schema.content_digest(report)
            now = time.monotonic()
            if digest == self.delivered_digest and now < next_heartbeat:
                await self._wait_for_submit(next_heartbeat - now)
                continue
            try:
                await self._put(report)
            except _Rejected as rejected:
                # The hub will refuse this content however often it is sent; wait for the
                # next change, or re-offer it at heartbeat pace (the hub may be upgraded).
                log.error("hub rejected the report: %s", rejected)
                self.last_error = str(rejected)
                self.delivered_digest = digest
                next_heartbeat = time.monotonic() + self.heartbeat_seconds
                continue
            except (httpx.HTTPError, _Retry) as error:
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("hub unreachable (%s); retrying in %.1fs", self.last_error, backoff)
                await anyio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.retry_max_seconds)
                continue
            if self.failures:
                log.info("hub reachable again after %d failed deliveries", self.failures)
            self.failures, self.last_error, backoff = 0, None, self.retry_min_seconds
            self.delivered_digest = digest
            self.deliveries += 1
            next_heartbeat = time.monotonic() + self.heartbeat_seconds

    async def _wait_for_submit(self, timeout: float | None) -> None:
        waiting = self._submitted
        with anyio.move_on_after(timeout):
            await waiting.wait()
        if waiting.is_set():
            self._submitted = anyio.Event()

    async def _put(self, report: ClusterReport) -> None:
        sending = report.model_copy(
            update={
                "reported_at": report_schema.utc_now(),
                "heartbeat_seconds": max(1, round(self.heartbeat_seconds)),
            }
        )
        response = await self._client.put(
            f"/api/v1/clusters/{self.cluster}/report",
            content=sending.model_dump_json(by_alias=True),
            headers={"Content-Type": "application/json"},
        )
        if response.is_success:
            return
        detail = _error_text(response)
        if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
            raise _Retry(f"HTTP {response.status_code}: {detail}")
        raise _Rejected(f"HTTP {response.status_code}: {detail}")

    async def _stream_forever(self) -> None:
        backoff = self.retry_min_seconds
        while True:
            try:
                await self._stream_once()
                backoff = self.retry_min_seconds
            except (httpx.HTTPError, _Retry, _Rejected) as error:
                log.warning("command stream: %s: %s", type(error).__name__, error)
            finally:
                self.stream_connected = False
            await anyio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.retry_max_seconds)

    async def _stream_once(self) -> None:
        headers = {"Accept": sse.MEDIA_TYPE}
        if self._last_command_id is not None:
            headers["Last-Event-ID"] = self._last_command_id
        timeout = httpx.Timeout(self._client.timeout.connect, read=self.stream_idle_seconds)
        async with self._client.stream(
            "GET", f"/api/v1/clusters/{self.cluster}/commands", headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise _Retry(f"HTTP {response.status_code}: {_error_text(response)}")
            parser = sse.EventStreamParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                if event.id is not None:
                    self._last_command_id = event.id
                if event.event == "ready":
                    self.stream_connected = True
                elif event.event == "command":
                    await self._dispatch(event.data)

    async def _dispatch(self, data: str) -> None:
        try:
            command = HubCommand.model_validate_json(data)
        except pydantic.ValidationError as error:
            log.warning("ignoring a command this agent does not understand: %s", error)
            return
        if self.on_command is not None:
            try:
                await self.on_command(command)
            except Exception:
                log.exception("command handler failed for %s", command)
            return
        with contextlib.suppress(anyio.WouldBlock):
            self._send_commands.send_nowait(command)


class _Retry(Exception):
    """The hub answered, but with something that may pass (5xx, 401 while rotating)."""


class _Rejected(Exception):
    """The hub refused this report's content (400, 413, 422)."""


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "error" in body:
        detail = body.get("detail")
        return f"{body['error']}" + (f" {detail}" if detail else "")
    return response.text[:200]
