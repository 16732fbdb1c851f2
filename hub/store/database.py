"""The two databases behind the store: SQLite (one hub) and PostgreSQL (several replicas).

Both are driven through their synchronous DB-API drivers in worker threads, so the store's
SQL is written once and each operation runs as one function inside one transaction
(``Database.run``). SQLite gets a single connection and a limiter of one, since its
writers serialise anyway; PostgreSQL gets a connection pool as wide as its limiter.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import psycopg
import psycopg.rows
import psycopg_pool

from fleet.redact import redact_url
from hub.store.schema import POSTGRES, SQLITE, Dialect

T = TypeVar("T")
Row = Mapping[str, Any]


class StoreError(Exception):
    """The hub's database is unreachable, misconfigured or at an unknown schema version."""


class Connection(Protocol):
    """What the store's SQL needs from a connection, in ``?`` placeholder style."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; rows if it returns any (SELECT, RETURNING), else []."""
        ...

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement and say how many rows it changed."""
        ...


class Database(Protocol):
    dialect: Dialect
    url: str

    async def run(self, operation: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``operation`` in a worker thread inside one transaction; ``write=False``
        promises it only reads, so it need not wait for writers."""
        ...

    async def run_statement(self, sql: str, params: Sequence[Any]) -> int:
        """One write statement on its own, without BEGIN/COMMIT around it (a statement is
        atomic by itself); returns the rows it changed. For the hottest path, heartbeats."""
        ...

    def run_sync(self, operation: Callable[[Connection], T]) -> T:
        """The same in the calling thread, for the CLI which has no event loop."""
        ...

    def close(self) -> None: ...


class _SQLiteConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._connection.execute(sql, tuple(params))
        rows: list[Row] = cursor.fetchall() if cursor.description else []
        return rows

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection.execute(sql, tuple(params)).rowcount


class _SQLiteSession:
    """One connection with its own thread lock and limiter: writes serialise on one,
    reads run on another, which WAL lets proceed while a write is in progress."""

    def __init__(self, path: Path, begin: str) -> None:
        self.connection = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a hub crash, only an OS crash may lose the last commits.
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.begin = begin
        self.lock = threading.Lock()
        self.limiter = anyio.CapacityLimiter(1)

    def statement(self, sql: str, params: Sequence[Any]) -> int:
        with self.lock:
            return self.connection.execute(sql, tuple(params)).rowcount

    def run(self, operation: Callable[[Connection], T]) -> T:
        with self.lock:
            self.connection.execute(self.begin)
            try:
                result = operation(_SQLiteConnection(self.connection))
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")
            return result

    def close(self) -> None:
        with self.lock:
            self.connection.close()


class SQLiteDatabase:
    """A real database file; WAL so readers (the CLI, the hub's own) never block it."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _SQLiteSession(path, "BEGIN IMMEDIATE")
        self._reader = _SQLiteSession(path, "BEGIN")

    def run_sync(self, operation: Callable[[Connection], T]) -> T:
        return self._writer.run(operation)

    async def run(self, operation: Callable[[Connection], T], *, write: bool = True) -> T:
        session = self._writer if write else self._reader
        return await anyio.to_thread.run_sync(session.run, operation, limiter=session.limiter)

    async def run_statement(self, sql: str, params: Sequence[Any]) -> int:
        writer = self._writer
        return await anyio.to_thread.run_sync(writer.statement, sql, params, limiter=writer.limiter)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class _PostgresConnection:
    def __init__(self, connection: psycopg.Connection[dict[str, Any]]) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._connection.execute(_pyformat(sql), tuple(params))
        return list(cursor.fetchall()) if cursor.description else []

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection.execute(_pyformat(sql), tuple(params)).rowcount


def _pyformat(sql: str) -> str:
    # The store's SQL has no literal '?' or '%', so a plain replacement is exact.
    return sql.replace("?", "%s")


class PostgresDatabase:
    """A connection pool; every replica of the hub opens its own against one database."""

    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[dict[str, Any]]] = (
            psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                # Autocommit: transactions are explicit (``run``), single statements are not
                # wrapped in BEGIN/COMMIT round trips (``run_statement``).
                kwargs={"row_factory": psycopg.rows.dict_row, "autocommit": True},
                open=False,
                name="fleet-hub",
            )
        )
        try:
            self._pool.open(wait=True, timeout=30)
        except psycopg_pool.PoolTimeout as error:
            raise StoreError(f"cannot connect to PostgreSQL at {redact_url(url)}") from error
        self._limiter = anyio.CapacityLimiter(pool_size)

    def run_sync(self, operation: Callable[[Connection], T]) -> T:
        with self._pool.connection() as connection, connection.transaction():
            return operation(_PostgresConnection(connection))

    async def run(self, operation: Callable[[Connection], T], *, write: bool = True) -> T:
        return await anyio.to_thread.run_sync(self.run_sync, operation, limiter=self._limiter)

    def _statement(self, sql: str, params: Sequence[Any]) -> int:
        with self._pool.connection() as connection:
            return connection.execute(_pyformat(sql), tuple(params)).rowcount

    async def run_statement(self, sql: str, params: Sequence[Any]) -> int:
        return await anyio.to_thread.run_sync(self._statement, sql, params, limiter=self._limiter)

    def close(self) -> None:
        self._pool.close()


def open_database(url: str) -> SQLiteDatabase | PostgresDatabase:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``postgresql://...``."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise StoreError(f"no database file in {url!r}; use sqlite:///path/to/hub.db")
        # sqlite:////abs -> /abs; sqlite:///rel -> rel, as SQLAlchemy reads these URLs.
        return SQLiteDatabase(Path(path))
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    raise StoreError(
        f"unsupported database URL {redact_url(url)!r}; use sqlite:/// or postgresql://"
    )


@contextlib.contextmanager
def opened(url: str) -> Iterator[SQLiteDatabase | PostgresDatabase]:
    database = open_database(url)
    try:
        yield database
    finally:
        database.close()
