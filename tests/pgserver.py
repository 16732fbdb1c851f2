"""A real PostgreSQL server for tests, from the machine's own binaries.

``postgres_server(root)`` runs ``initdb`` into a fresh data folder, starts ``postgres`` on
a free loopback port with its unix socket in a temporary folder, and stops it by PID on
exit (fast shutdown, then SIGKILL), also when the test fails. PostgreSQL refuses to run
as root, so as root the server runs as the ``postgres`` system user, in folders that user
owns. ``PostgresServer.create_database()`` gives each test its own database.

The binaries come from Debian's ``postgresql`` package (``make system-deps``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from fleet.localkube.gitserver import HOST, free_port
from fleet.localkube.process import ProcessError, wait_until

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SUPERUSER = "fleet"
_SHARED_DATABASE = "fleet_tests"
_SERVICE_USER = "postgres"
_PR_SET_PDEATHSIG = 1


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL bin folder that has initdb and postgres."""
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    return None


def postgres_unavailable_reason() -> str | None:
    """Why ``postgres_server`` cannot run here (with how to fix it), or None."""
    if pg_bin() is None:
        return "PostgreSQL binaries are missing; run `make system-deps` (installs postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SERVICE_USER)
        except KeyError:
            return (
                f"running as root and there is no {_SERVICE_USER!r} user to run PostgreSQL as;"
                " run `make system-deps` (creates it)"
            )
    return None


@dataclass
class PostgresServer:
    port: int
    socket_dir: Path
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, prefix: str = "hub") -> str:
        """A fresh empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, prefix: str = "hub") -> str:
        """A fresh empty schema in a shared database, as a URL whose connections use it.

        Much cheaper than a database per test (no template copy), and as isolated for
        code that names no schema in its SQL.
        """
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (_SHARED_DATABASE,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    connection.execute(f'CREATE DATABASE "{_SHARED_DATABASE}"')
        with psycopg.connect(self.url(_SHARED_DATABASE), autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url(_SHARED_DATABASE)}?options=-csearch_path%3D{name}"

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass(frozen=True)
class _Identity:
    """Who PostgreSQL runs as: the postgres user when we are root, else ourselves."""

    user: int | None = None
    group: int | None = None
    extra_groups: tuple[int, ...] | None = None


def _service_identity() -> _Identity:
    if os.geteuid() != 0:
        return _Identity()
    entry = pwd.getpwnam(_SERVICE_USER)
    return _Identity(entry.pw_uid, entry.pw_gid, ())


def _die_with_test_run() -> None:
    """If the test run is killed, the kernel sends PostgreSQL SIGQUIT (immediate shutdown,
    which also ends its backends), so no server outlives its tests."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)


def _owned_tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(_SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _accepting(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + postgres on a free port; torn down by PID, data removed afterwards."""
    reason = postgres_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    binaries = pg_bin()
    assert binaries is not None
    # Outside pytest's tmp_path: as root that folder is 0700 root, closed to postgres.
    data_dir = _owned_tempdir("fleet-pg-data-")
    socket_dir = _owned_tempdir("fleet-pg-sock-")
    log_path = socket_dir / "postgres.log"
    who = _service_identity()
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                str(binaries / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )
        port = free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    str(binaries / "postgres"),
                    "-D",
                    str(data_dir),
                    "-p",
                    str(port),
                    "-k",
                    str(socket_dir),
                    "-c",
                    f"listen_addresses={HOST}",
                    # A test database: durability is not the point, speed is.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_test_run,
                user=who.user,
                group=who.group,
                extra_groups=who.extra_groups,
            )
        server = PostgresServer(port, socket_dir, data_dir, process, log_path)

        def ready() -> bool:
            if process is not None and process.poll() is not None:
                raise ProcessError(f"postgres exited early:\n{server.log_tail()}")
            return _accepting(server.url())

        wait_until(ready, timeout=30, what="PostgreSQL")
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGINT is PostgreSQL's fast shutdown: it ends sessions, waits for its backends
    and exits. Only if that hangs is its process group (the postmaster and its backends,
    started in their own session) killed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
