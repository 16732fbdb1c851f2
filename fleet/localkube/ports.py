"""Free loopback ports for the servers the tests and the demo start.

Ports are picked below Linux's ephemeral range (32768+): a port the kernel hands out for
a bind to 0 is also what it hands out for the next outgoing connection of any process, so
between choosing it and the server binding it, another process may take it. Below that
range only another server could.
"""

from __future__ import annotations

import random
import socket

PORT_RANGE = (20000, 32768)


def bind_free(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port of ``PORT_RANGE``; close it to release the port."""
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((host, random.randrange(*PORT_RANGE)))
        except OSError:
            sock.close()
            continue
        return sock


def free_port(host: str = "127.0.0.1") -> int:
    with bind_free(host) as sock:
        return int(sock.getsockname()[1])
