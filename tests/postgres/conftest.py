"""A real PostgreSQL for the postgres-marked tests: one throwaway cluster per session, a database per test."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.support.postgres_server import PostgresServer, PostgresUnavailable, running_postgres_server
from tests.support.system_packages import require

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server():
    """Start our own cluster (Debian binaries); in CI missing binaries fail the run instead of skipping it."""
    try:
        with running_postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        require(str(exc), False)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test, as the superuser `tiering_admin` (password in the URL)."""
    import psycopg

    name = f"test_{next(_databases)}"
    with psycopg.connect(postgres_server.url(database="postgres"), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(database=name)


@pytest.fixture(scope="session")
def release_db(published_warehouse) -> Path:
    """The real `published.duckdb` of the session's published warehouse (open it read-only)."""
    _landing, warehouse, _as_of = published_warehouse
    return warehouse / "published.duckdb"
