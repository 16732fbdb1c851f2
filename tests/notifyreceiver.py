"""A provider's endpoint for tests: a real HTTP server on loopback that records every request.

``recording_receiver()`` serves until the block ends. Each request is kept whole (method,
path, query, headers, raw body), so tests check payloads byte for byte (signatures) and
field by field. What it answers is scripted per path prefix with ``answer(prefix, ...)``:
a list of statuses to give in turn before the default (``[500, 500]`` then 200), a body, or
``hang`` (hold the request until the receiver is released or closed). ``stop()`` and
``start()`` close and reopen the same port, for connection-refused cases; ``tls`` serves
HTTPS with a given certificate.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fleet.localkube.gitserver import HOST


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lowered."""
    body: bytes
    target: str = ""
    """The request line's target as sent: absolute (``http://host/path``) through a proxy."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    statuses: list[int] = field(default_factory=list)
    """Given in turn to the next requests; then ``status``."""
    status: int = 200
    body: bytes = b'{"ok": true}'
    hang: bool = False


class RecordingReceiver:
    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.tls = tls
        """(certificate, key) files to serve HTTPS with."""
        self.requests: list[Recorded] = []
        self.port = 0
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.port}"

    def answer(
        self,
        prefix: str,
        *,
        statuses: list[int] | None = None,
        status: int = 200,
        body: Any = None,
        hang: bool = False,
    ) -> None:
        raw = (
            body
            if isinstance(body, bytes)
            else json.dumps(body).encode()
            if body is not None
            else b'{"ok": true}'
        )
        with self._lock:
            self._scripts[prefix] = Script(list(statuses or []), status, raw, hang)

    def to(self, path: str) -> list[Recorded]:
        """The requests whose path starts with ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path)]

    def release(self) -> None:
        """Let hung requests go (with a 200)."""
        self._released.set()

    def _script(self, path: str) -> Script:
        matching = [p for p in self._scripts if path.startswith(p)]
        return self._scripts[max(matching, key=len)] if matching else Script()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        recorded = Recorded(
            handler.command,
            parsed.path,
            urllib.parse.parse_qs(parsed.query),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            handler.path,
        )
        with self._lock:
            self.requests.append(recorded)
            script = self._script(parsed.path)
            status = script.statuses.pop(0) if script.statuses else script.status
        if script.hang:
            self._released.wait()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(script.body)))
            handler.end_headers()
            handler.wfile.write(script.body)
        except OSError:
            pass  # the client gave up (a timeout test)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                receiver._handle(self)

            do_POST = do_PUT = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer((HOST, self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket: new connections are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


@contextmanager
def recording_receiver(tls: tuple[Path, Path] | None = None) -> Iterator[RecordingReceiver]:
    receiver = RecordingReceiver(tls)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.release()
        receiver.stop()
