"""A local OCI registry (the CNCF distribution registry) for the source tests.

The binary is the one ``fleet.localkube.toolchain`` builds from source. The harness writes
the registry's configuration itself: filesystem storage under the state folder, a free
loopback port, and optionally htpasswd basic auth (bcrypt entries made with the system's
libcrypt, so no Python package is needed), TLS with a certificate from a CA of its own,
or token auth: the registry's ``auth.token`` pointed at a small token service run here
(``TokenService``) that checks the same users with Basic auth and issues ES256 JWTs whose
``x5c`` certificate chains to a root the registry trusts, as Docker's token protocol has it.
The registry process is stopped by PID on the way out; the token service is a thread.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import dataclasses
import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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


SERVICE = "fleet-registry"
ISSUER = "fleet-token-service"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Docker's token protocol: ``GET /token?service=&scope=`` with Basic auth -> a JWT.

    Grants every action a scope asks for to a user whose password matches; anonymous or
    wrong credentials get 401. ``issued`` counts the tokens handed out.
    """

    def __init__(self, state_dir: Path, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        self.issued = 0
        authority = pki.CertificateAuthority(state_dir / "token-pki", "fleet-token-root")
        signer = authority.issue_serving("token-signer", [HOST])
        self.root_bundle = authority.pair.cert
        key = serialization.load_pem_private_key(signer.key_pem(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        certificate = x509.load_pem_x509_certificate(signer.cert_pem())
        self._x5c = [
            base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
        ]
        self._server = http.server.ThreadingHTTPServer(
            (HOST, ports.free_port(HOST)), self._handler()
        )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://{HOST}:{self.port}/token"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self._x5c}
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        self.issued += 1
        return f"{signing_input}.{_b64url(signature)}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                user = service._user(self.headers.get("Authorization", ""))
                if url.path != "/token" or user is None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", f'Basic realm="{ISSUER}"')
                    self.end_headers()
                    return
                scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
                body = json.dumps({"token": service.token(user, scopes), "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def _user(self, authorization: str) -> str | None:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        return user if expected is not None and secrets.compare_digest(expected, password) else None


def configuration(
    storage: Path,
    port: int,
    *,
    htpasswd_path: Path | None = None,
    tls: pki.KeyPair | None = None,
    token: TokenService | None = None,
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
    if token is not None:
        config["auth"] = {
            "token": {
                "realm": token.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(token.root_bundle),
            }
        }
    return yaml.safe_dump(config, sort_keys=False)


@dataclasses.dataclass(frozen=True)
class RegistryOptions:
    """How the registry is protected."""

    users: Mapping[str, str] | None = None
    """Basic-auth users and passwords; None serves without authentication."""
    tls: bool = False
    """Serve HTTPS with a certificate of a CA made for this registry (``ca_file``)."""
    token_auth: bool = False
    """With ``users``: Bearer tokens from a ``TokenService`` instead of htpasswd."""


class LocalRegistry:
    """One distribution registry on a free loopback port, its state under ``state_dir``."""

    def __init__(self, state_dir: Path, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.state_dir = state_dir
        self.port = ports.free_port(HOST)
        state_dir.mkdir(parents=True, exist_ok=True)
        htpasswd_path = None
        self.token_service: TokenService | None = None
        if self.options.users is not None and self.options.token_auth:
            self.token_service = TokenService(state_dir, self.options.users)
        elif self.options.users is not None:
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
            configuration(
                state_dir / "data",
                self.port,
                htpasswd_path=htpasswd_path,
                tls=serving,
                token=self.token_service,
            )
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
        if self.token_service is not None:
            self.token_service.start()
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
        if self.token_service is not None:
            self.token_service.stop()


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
