"""A local OCI registry (the CNCF distribution registry) for the source tests.

The binary is the one ``fleet.localkube.toolchain`` builds from source. The harness writes
the registry's configuration itself: filesystem storage under the state folder, a free
loopback port, and optionally htpasswd basic auth (bcrypt entries made with the system's
libcrypt, so no Python package is needed) and TLS with a certificate from a CA of its own.
The process is stopped by PID on the way out.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from fleet.localkube import pki, ports, toolchain
from fleet.localkube.process import ManagedProcess, ProcessError

HOST = "127.0.0.1"
REALM = "fleet-registry"


def bcrypt_hash(password: str, cost: int = 10) -> str:
    """A ``$2y$`` bcrypt hash of ``password``, the only scheme the registry's htpasswd takes.

    libxcrypt (the C library's ``crypt``) implements bcrypt; calling it through ctypes
    avoids a Python dependency for a test harness.
    """
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    libcrypt = ctypes.CDLL(name)
    libcrypt.crypt_gensalt.restype = ctypes.c_char_p
    libcrypt.crypt_gensalt.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = libcrypt.crypt_gensalt(b"$2y$", cost, None, 0)
    hashed = libcrypt.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2y$"):
        raise RuntimeError(f"{name} cannot make bcrypt hashes")
    return str(hashed.decode())


def htpasswd(users: Mapping[str, str]) -> str:
    """An htpasswd file (``user:bcrypt``, one a line) for the given passwords."""
    return "".join(f"{user}:{bcrypt_hash(password)}\n" for user, password in users.items())


def configuration(
    storage: Path,
    port: int,
    *,
    htpasswd_path: Path | None = None,
    tls: pki.KeyPair | None = None,
) -> str:
    """The registry's YAML configuration (distribution ``version: 0.1`` format)."""
    http: dict[str, object] = {"addr": f"{HOST}:{port}", "secret": secrets.token_hex(16)}
    if tls is not None:
        http["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": http,
    }
    if htpasswd_path is not None:
        config["auth"] = {"htpasswd": {"realm": REALM, "path": str(htpasswd_path)}}
    return yaml.safe_dump(config, sort_keys=False)


@dataclasses.dataclass(frozen=True)
class RegistryOptions:
    """How the registry is protected."""

    users: Mapping[str, str] | None = None
    """Basic-auth users and passwords; None serves without authentication."""
    tls: bool = False
    """Serve HTTPS with a certificate of a CA made for this registry (``ca_file``)."""


class LocalRegistry:
    """One distribution registry on a free loopback port, its state under ``state_dir``."""

    def __init__(self, state_dir: Path, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.state_dir = state_dir
        self.port = ports.free_port(HOST)
        state_dir.mkdir(parents=True, exist_ok=True)
        htpasswd_path = None
        if self.options.users is not None:
            htpasswd_path = state_dir / "htpasswd"
            htpasswd_path.write_text(htpasswd(self.options.users))
        self.ca_file: Path | None = None
        serving = None
        if self.options.tls:
            authority = pki.CertificateAuthority(state_dir / "pki", "fleet-registry-ca")
            serving = authority.issue_serving("registry", [HOST, "localhost"])
            self.ca_file = authority.pair.cert
        self.config_path = state_dir / "config.yml"
        self.config_path.write_text(
            configuration(state_dir / "data", self.port, htpasswd_path=htpasswd_path, tls=serving)
        )
        self.process = ManagedProcess(
            "registry",
            [str(toolchain.binary("registry")), "serve", str(self.config_path)],
            state_dir,
        )

    @property
    def host(self) -> str:
        """``host:port``, as it appears in an ``oci://`` URL and a docker config."""
        return f"{HOST}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.options.tls else "http"

    def oci_url(self, repository: str) -> str:
        return f"oci://{self.host}/{repository}"

    def start(self, timeout: float = 60.0) -> None:
        self.process.start()
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        deadline = time.monotonic() + timeout
        while True:
            self.process.check_running()
            if self._answers(context):
                return
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"registry was not ready within {timeout:.0f}s:\n{self.process.log_tail()}"
                )
            time.sleep(0.1)

    def _answers(self, context: ssl.SSLContext | None) -> bool:
        url = f"{self.scheme}://{self.host}/v2/"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as error:
            return error.code == 401  # up, and asking for the credentials it was given
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def running_registry(
    state_dir: Path, options: RegistryOptions | None = None
) -> Iterator[LocalRegistry]:
    """A started registry, stopped by PID on the way out (also on errors and Ctrl-C)."""
    registry = LocalRegistry(state_dir, options)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()
