"""Running the hub: the store, the app and uvicorn, with TLS when a cert and key are given.

Connections are bounded as ``limits`` in hub.yaml says: uvicorn closes kept-alive
connections that stay idle (``idleTimeout``) and answers 503 beyond ``connections``;
``GuardedHttpProtocol`` adds what uvicorn lacks, a deadline and a size limit for the
request head, so half-sent requests (slowloris) do not hold sockets forever.
"""

from __future__ import annotations

import asyncio
import math
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hub.app import build_app
from hub.config import HubConfig
from hub.service import Hub
from hub.store import Store

GRACEFUL_SHUTDOWN_SECONDS = 5
MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers together; a hub request needs a few hundred bytes."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head has not
    arrived within ``header_timeout`` seconds or grew beyond ``MAX_HEAD_BYTES``."""

    header_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _awaiting_head = True
    """No request, or the last one was received in full (its body too): what arrives
    now is a new request head. A body still arriving (or being discarded after an early
    answer such as a 413) is not a head."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            if self._head_timer is None:
                self._arm_head_timer()
            self._head_bytes += len(data)
        super().data_received(data)
        # Still armed: the head is not complete after all this data (a complete head
        # disarms the timer, whatever body bytes came with it).
        if self._head_timer is not None and self._head_bytes > MAX_HEAD_BYTES:
            self._disarm_head_timer()
            self.send_400_response("Request head too large.")

    def on_message_begin(self) -> None:
        # A head has begun (also one that follows a body in the same read).
        if self._head_timer is None:
            self._arm_head_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, with this deadline."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"header_timeout": header_timeout})


class HubServer(uvicorn.Server):
    """uvicorn waits for open connections on shutdown; ending the hub's streams first
    lets agents and TUIs reconnect elsewhere at once instead of after a timeout."""

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.stop_streams()
        await super().shutdown(sockets)


def make_server(config: HubConfig, *, log_level: str = "info") -> HubServer:
    """A ready-to-run server; the store opens now, so a bad database URL fails early."""
    store = Store.open(config.database, history_per_cluster=config.report_history)
    hub = Hub(config, store)
    host, port = config.listen_host_port
    limits = config.limits
    uvicorn_config = uvicorn.Config(
        build_app(hub),
        host=host,
        port=port,
        http=guarded_protocol(limits.header_timeout.total_seconds()),
        timeout_keep_alive=max(1, math.ceil(limits.idle_timeout.total_seconds())),
        limit_concurrency=limits.connections,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        log_level=log_level,
        access_log=log_level == "debug",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    return HubServer(uvicorn_config, hub)


def serve(config: HubConfig, *, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM; the store is closed afterwards."""
    server = make_server(config, log_level=log_level)
    try:
        server.run()
    finally:
        server.hub.store.close()
