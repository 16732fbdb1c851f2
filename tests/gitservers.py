"""Real Git servers on 127.0.0.1 for tests, and a working clone to author commits with.

- ``git_daemon(root)``: ``git daemon`` serving every repository under ``root`` (git://),
  push enabled.
- ``smart_http(root, user, password)``: ``git http-backend`` behind a small threaded HTTP
  server that demands HTTP basic auth (or a bearer token); wrong credentials get 401.
- ``ssh_server(root, authorized_keys)``: ``sshd`` with a host key made for the test,
  logging in as the current user with the given public keys.
- ``silent_server()``: a port that accepts and never answers, to test timeouts.
- ``served_repo(root, name)``: a bare repository under ``root`` plus a ``WorkingClone``
  that commits, tags and (force-)pushes into it with the git CLI.

Each server is a context manager that stops its process by PID (or shuts its thread down)
on exit, also when the test fails. Processes die with the test run if it is killed.
"""

from __future__ import annotations

import base64
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fleet.localkube.gitserver import GitDaemon as GitDaemon
from fleet.localkube.gitserver import free_port
from fleet.localkube.gitserver import git_daemon as git_daemon
from fleet.localkube.gitserver import port_open as _port_open
from fleet.localkube.process import ManagedProcess, wait_until

HOST = "127.0.0.1"
GIT_HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
SSHD = Path("/usr/sbin/sshd")
_SSHD_PRIVSEP_DIR = Path("/run/sshd")
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Fleet Test",
    "GIT_AUTHOR_EMAIL": "test@fleet.invalid",
    "GIT_COMMITTER_NAME": "Fleet Test",
    "GIT_COMMITTER_EMAIL": "test@fleet.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def git_env() -> dict[str, str]:
    """The environment for git CLI calls: no user or system config leaks into tests."""
    return {**os.environ, **_GIT_ENV}


def _state_dir(root: Path, name: str) -> Path:
    """A fresh folder beside ``root`` for one server's config, keys, logs and PID file."""
    return Path(tempfile.mkdtemp(prefix=f"{root.name}-{name}-", dir=root.parent))


@dataclass
class SmartHTTP:
    root: Path
    port: int
    user: str | None
    password: str | None
    bearer_token: str | None = None
    requests: list[str] = field(default_factory=list)
    """``"METHOD path?query -> status"`` per request, to see what a client asked."""

    def url(self, name: str, *, with_credentials: bool = False) -> str:
        userinfo = f"{self.user}:{self.password}@" if with_credentials and self.user else ""
        return f"http://{userinfo}{HOST}:{self.port}/{name}"


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _git_http_handler(server: SmartHTTP) -> type[BaseHTTPRequestHandler]:
    class GitHTTPHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _authorized_user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if server.user is None and server.bearer_token is None:
                return "anonymous"
            if server.bearer_token and header == f"Bearer {server.bearer_token}":
                return "bearer"
            if server.user and header.startswith("Basic "):
                expected = f"{server.user}:{server.password}".encode()
                if base64.b64decode(header[6:]) == expected:
                    return server.user
            return None

        def _serve(self) -> None:
            body = _read_body(self)
            path, _, query = self.path.partition("?")
            user = self._authorized_user()
            if user is None:
                server.requests.append(f"{self.command} {self.path} -> 401")
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="fleet-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
            }
            for header, variable in (
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                ("Git-Protocol", "GIT_PROTOCOL"),
            ):
                if self.headers.get(header):
                    env[variable] = self.headers[header]
            result = subprocess.run(
                [str(GIT_HTTP_BACKEND)], input=body, capture_output=True, env=env, check=False
            )
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = result.stdout.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            server.requests.append(f"{self.command} {self.path} -> {status}")
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return GitHTTPHandler


@contextmanager
def smart_http(
    root: Path,
    user: str | None,
    password: str | None,
    *,
    bearer_token: str | None = None,
) -> Iterator[SmartHTTP]:
    """Serve ``root`` over smart HTTP; with a user, every request needs basic auth."""
    served = SmartHTTP(root, 0, user, password, bearer_token)
    httpd = ThreadingHTTPServer((HOST, 0), _git_http_handler(served))
    httpd.daemon_threads = True
    served.port = int(httpd.server_address[1])
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="smart-http", daemon=True
    )
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a hung Git server."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(8)
    listener.settimeout(0.05)  # closing a socket does not wake a blocked accept()
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept_forever() -> None:
        while not stopping.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept_forever, name="silent-server", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()
        for connection in accepted:
            connection.close()


@dataclass(frozen=True)
class SSHKeyPair:
    private_path: Path
    public: str
    """The public key line, ``ssh-ed25519 AAAA... comment``."""

    @property
    def private(self) -> str:
        return self.private_path.read_text()


def generate_ssh_key(path: Path, *, passphrase: str = "", key_type: str = "ed25519") -> SSHKeyPair:
    """A fresh key pair made by ssh-keygen (OpenSSH format, optionally encrypted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", "fleet-test", "-f", str(path)],
        check=True,
    )
    return SSHKeyPair(path, Path(f"{path}.pub").read_text().strip())


@dataclass
class SSHServer:
    root: Path
    port: int
    host_key: SSHKeyPair
    user: str
    process: ManagedProcess

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@{HOST}:{self.port}{self.root}/{name}"

    def scp_url(self, name: str) -> str:
        """The scp-like form; it cannot carry a port, so only usable in parsing tests."""
        return f"{self.user}@{HOST}:{self.root}/{name}"

    @property
    def known_hosts_line(self) -> str:
        key_type, key = self.host_key.public.split()[:2]
        return f"[{HOST}]:{self.port} {key_type} {key}"

    def stop(self) -> None:
        self.process.stop()


def sshd_unavailable_reason() -> str | None:
    """Why ``ssh_server`` cannot run here (with how to fix it), or None."""
    if not SSHD.exists():
        return f"{SSHD} is missing; run `make system-deps` (installs openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is missing; run `make system-deps`"
    if os.geteuid() == 0:
        # sshd needs its privilege separation directory, normally made at boot.
        _SSHD_PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    return None


@contextmanager
def ssh_server(root: Path, authorized_keys: str) -> Iterator[SSHServer]:
    """sshd on a free loopback port; the public key lines in ``authorized_keys`` may log in."""
    reason = sshd_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    state = _state_dir(root, "sshd")
    host_key = generate_ssh_key(state / "ssh_host_ed25519_key")
    authorized_keys_path = state / "authorized_keys"
    authorized_keys_path.write_text(authorized_keys.strip() + "\n")
    port = free_port()
    config = state / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {HOST}:{port}",
                f"HostKey {host_key.private_path}",
                f"AuthorizedKeysFile {authorized_keys_path}",
                f"PidFile {state / 'sshd.pid'}",
                "UsePAM no",
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    args = [str(SSHD), "-D", "-e", "-f", str(config)]
    process = ManagedProcess("sshd", args, state)
    try:
        process.start()
        wait_until(lambda: _port_open(port), timeout=10, what="sshd", processes=[process])
        yield SSHServer(root, port, host_key, getpass.getuser(), process)
    finally:
        process.stop()


class WorkingClone:
    """A non-bare clone of a served repository, driven with the git CLI."""

    def __init__(self, bare: Path, work: Path) -> None:
        self.bare = bare
        self.work = work

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=self.work, env=git_env(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout.strip()

    def commit(
        self,
        files: Mapping[str, str | None] | None = None,
        *,
        message: str = "change",
        executable: tuple[str, ...] = (),
        symlinks: Mapping[str, str] | None = None,
    ) -> str:
        """Write (or, with None, delete) files and symlinks, commit all; returns the SHA."""
        for name, content in (files or {}).items():
            path = self.work / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(0o755 if name in executable else 0o644)
        for name, target in (symlinks or {}).items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()
            path.symlink_to(target)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def push(self, *refspecs: str, force: bool = False) -> None:
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", *refspecs)

    def tag(self, name: str, *, message: str | None = None, push: bool = True) -> None:
        """A lightweight tag, or an annotated one when a message is given."""
        self.git("tag", *(["-a", "-m", message] if message else []), name)
        if push:
            self.push(f"refs/tags/{name}")

    def switch(self, branch: str, *, create: bool = False) -> None:
        self.git("switch", *(["-c"] if create else []), branch)

    def reset_hard(self, revision: str) -> None:
        self.git("reset", "--quiet", "--hard", revision)

    def delete_remote_branch(self, branch: str) -> None:
        self.push(f":refs/heads/{branch}")


def served_repo(root: Path, name: str, *, branch: str = "main") -> WorkingClone:
    """A bare repository ``root/name`` and a working clone of it beside ``root``."""
    bare = root / name
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare)],
        check=True,
        env=git_env(),
    )
    work = root.parent / f"{root.name}-work" / name
    work.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "clone", "--quiet", str(bare), str(work)],
        check=True,
        env=git_env(),
        capture_output=True,
    )
    clone = WorkingClone(bare, work)
    clone.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")
    return clone
