"""Running the hub: the store, the app and uvicorn, with TLS when a cert and key are given."""

from __future__ import annotations

import socket

import uvicorn

from hub.app import build_app
from hub.config import HubConfig
from hub.service import Hub
from hub.store import Store

GRACEFUL_SHUTDOWN_SECONDS = 5


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
    uvicorn_config = uvicorn.Config(
        build_app(hub),
        host=host,
        port=port,
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
