"""Sending one ``Request`` over HTTP: the only module that touches httpx.

Clients are kept per (proxy, CA) pair so connections are reused; the answer's body is read up
to ``MAX_BODY`` (a receiver cannot make us buffer gigabytes). httpx's exceptions become
``DeliveryFailed`` here and nowhere else.
"""

from __future__ import annotations

import ssl
from typing import Protocol

import httpx

from fleet.notify.errors import DeliveryFailed
from fleet.notify.request import Request, Response

MAX_BODY = 256 * 1024
USER_AGENT = "fleet-notify"


class Transport(Protocol):
    """What delivery needs to send a request; tests may pass their own."""

    async def send(
        self, request: Request, *, timeout: float, proxy: str = "", ca_pem: str = ""
    ) -> Response: ...

    async def aclose(self) -> None: ...


class HttpTransport:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}

    def _client(self, proxy: str, ca_pem: str) -> httpx.AsyncClient:
        key = (proxy, ca_pem)
        client = self._clients.get(key)
        if client is None:
            verify: ssl.SSLContext | bool = True
            if ca_pem:
                try:
                    verify = ssl.create_default_context(cadata=ca_pem)
                except (ssl.SSLError, ValueError) as error:
                    raise DeliveryFailed(
                        f"the CA certificate cannot be loaded: {error}", transient=False
                    ) from error
            try:
                client = httpx.AsyncClient(
                    proxy=proxy or None,
                    verify=verify,
                    trust_env=False,
                    headers={"User-Agent": USER_AGENT},
                )
            except ValueError as error:
                raise DeliveryFailed(
                    f"invalid proxy {proxy!r}: {error}", transient=False
                ) from error
            self._clients[key] = client
        return client

    async def send(
        self, request: Request, *, timeout: float, proxy: str = "", ca_pem: str = ""
    ) -> Response:
        client = self._client(proxy, ca_pem)
        auth = httpx.BasicAuth(*request.basic_auth) if request.basic_auth else None
        try:
            async with client.stream(
                request.method,
                request.url,
                content=request.body,
                headers=dict(request.headers),
                auth=auth,
                timeout=timeout,
            ) as answer:
                body = b""
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY:
                        body = body[:MAX_BODY]
                        break
                return Response(answer.status_code, body, dict(answer.headers))
        except httpx.TimeoutException as error:
            raise DeliveryFailed(f"timed out: {type(error).__name__}", transient=True) from error
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise DeliveryFailed(f"invalid URL: {error}", transient=False) from error
        except httpx.TransportError as error:
            raise DeliveryFailed(
                f"cannot reach {built_host(request.url)}: {error or type(error).__name__}",
                transient=True,
            ) from error
        except (httpx.HTTPError, httpx.StreamError) as error:
            # Redirect loops, undecodable bodies: trying again would do the same.
            raise DeliveryFailed(f"{type(error).__name__}: {error}", transient=False) from error

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


def built_host(url: str) -> str:
    """The scheme and host of ``url`` for messages (paths carry webhook secrets)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "the address"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
