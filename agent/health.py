"""The agent's HTTP endpoint: ``/metrics``, ``/healthz`` (the process serves) and ``/readyz``
(the agent has started: its Units are loaded and watches run), for the Deployment's probes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

_WRITE_SIZE = 64 * 1024


class HealthServer:
    """A small threaded HTTP server; ``scrape`` gives ``/metrics`` in pieces, ``ready`` is
    asked on every ``/readyz``."""

    def __init__(
        self,
        host: str,
        port: int,
        scrape: Callable[[], Iterable[bytes]],
        ready: Callable[[], bool],
    ) -> None:
        self._scrape = scrape
        self._ready = ready
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agent-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._stream(outer._scrape(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    ready = outer._ready()
                    self._send(200 if ready else 503, b"ok\n" if ready else b"starting\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, pieces: Iterable[bytes], content_type: str) -> None:
                """Send a body of unknown length in large writes, then close (HTTP/1.0):
                a thousand units' metrics are never held as one string."""
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                buffer = bytearray()
                for piece in pieces:
                    buffer += piece
                    if len(buffer) >= _WRITE_SIZE:
                        self.wfile.write(buffer)
                        buffer.clear()
                self.wfile.write(buffer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
