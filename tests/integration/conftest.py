"""Fixtures of the integration tier: the hub's databases.

``database`` is parametrized over SQLite (a real file) and PostgreSQL (a real server
started once per session from the machine's binaries, a fresh schema per test), so a
hub test written once runs against both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgserver import PostgresServer, postgres_server, postgres_unavailable_reason


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A hub database URL: an SQLite file in tmp_path, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_schema()
