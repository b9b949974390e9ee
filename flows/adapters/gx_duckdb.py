"""Great Expectations 1.24 on a DuckDB file, in SQL: the small adapter the gate runs through.

The trap (GX issues #10738 and #11579): `SqlAlchemyExecutionEngine.execute_query` runs the query inside
`with self.get_connection() as connection:` and returns the live `CursorResult` *after* that block has
closed the connection; every caller then calls `.fetchall()` / `.fetchone()` / `.scalar()` on it. With
duckdb_engine the cursor dies with its connection, so the metric comes back empty (`IndexError: list index
out of range` with a pooled engine, `Invalid Input Error: No open result set` with `NullPool`) and every
expectation fails with no observed value. `execute_query_in_transaction` has the same shape.

The fix (`install()`): replace both methods with copies that buffer the rows (`result.freeze()`) while the
connection is still open, and return an equivalent in-memory result. Rows are fetched as DuckDB returns
them, so DECIMAL columns stay `Decimal` in SQL — no pandas copy, no float. Idempotent; `uninstall()`
restores GX's originals (the tests use it to show the trap).

The engine uses `NullPool`, so SQLAlchemy pools nothing; one "anchor" connection is held for the session
only so that DuckDB reuses the open database for each query's connect instead of re-opening the file
(~30 ms a query). `dispose()` closes it: once validation is over the file is released and the gate can open
it read-write to store its results. The working database is opened with `read_only=True`, so the gate
never takes the writer lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.execution_engine.sqlalchemy_execution_engine import SqlAlchemyExecutionEngine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.pool import NullPool

_ORIGINALS: dict[str, Any] = {}
# Every ephemeral context logs its throw-away docs-site directory at INFO: noise in flow logs.
logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


def _buffered(result: Any) -> Any:
    """Rows of a row-returning result fetched now, as an in-memory result with the same API."""
    if getattr(result, "returns_rows", False):
        return result.freeze()()
    return result


def _execute_query(self: SqlAlchemyExecutionEngine, query: Any) -> Any:
    """GX's `execute_query`, reading the rows before the connection closes."""
    with self.get_connection() as connection:
        return _buffered(self._execute_query_with_recovery(connection, query))


def _execute_query_in_transaction(self: SqlAlchemyExecutionEngine, query: Any) -> Any:
    """GX's `execute_query_in_transaction`, reading the rows before the connection closes."""
    with self.get_connection() as connection:
        if not connection.closed:
            rows = _buffered(self._execute_query_with_recovery(connection, query))
            if self._connection_has_transaction(connection):
                try:
                    connection.commit()
                except DatabaseError as exc:
                    # Same tolerance as GX: auto-commit databases may have nothing to commit.
                    if "no active transaction" not in str(exc).lower():
                        raise
            return rows
        with connection.begin():
            return _buffered(self._execute_query_with_recovery(connection, query))


def install() -> None:
    """Patch GX's SQL execution engine to buffer results inside the connection (idempotent)."""
    if _ORIGINALS:
        return
    _ORIGINALS["execute_query"] = SqlAlchemyExecutionEngine.execute_query
    _ORIGINALS["execute_query_in_transaction"] = SqlAlchemyExecutionEngine.execute_query_in_transaction
    SqlAlchemyExecutionEngine.execute_query = _execute_query
    SqlAlchemyExecutionEngine.execute_query_in_transaction = _execute_query_in_transaction


def uninstall() -> None:
    """Restore GX's original methods (for tests that demonstrate the trap)."""
    for name, original in _ORIGINALS.items():
        setattr(SqlAlchemyExecutionEngine, name, original)
    _ORIGINALS.clear()


def is_installed() -> bool:
    return SqlAlchemyExecutionEngine.execute_query is _execute_query


def duckdb_url(path: str | Path) -> str:
    return f"duckdb:///{Path(path).resolve()}"


@dataclass
class DuckDBGX:
    """An ephemeral GX context with one SQL datasource on one DuckDB file."""

    context: Any
    datasource: Any
    path: Path
    # Held open for the session: DuckDB reuses the open database for each NullPool connect (no re-open).
    anchor: Any = None

    def month_batch(self, table: str, schema: str, column: str, first: date, last: date) -> Any:
        """The rows of `<schema>.<table>` whose `column` lies in [first, last], as one batch.

        A range on the column itself (not GX's year()/month() partitioner) lets DuckDB skip the blocks of
        other months: tables grow by a month at a time, so a gate's cost follows the month, not the history.
        """
        # A query asset is only run at validation: read the table now, so a missing one fails here.
        with self.engine().connect() as conn:
            conn.exec_driver_sql(f"SELECT 1 FROM {schema}.{table} LIMIT 0").fetchall()
        name = f"{schema}.{table}@{first.isoformat()}"
        for asset in self.datasource.assets:
            if asset.name == name:
                break
        else:
            asset = self.datasource.add_query_asset(
                name=name, query=f"SELECT * FROM {schema}.{table} WHERE {column} BETWEEN DATE '{first.isoformat()}' "
                                 f"AND DATE '{last.isoformat()}'")
        existing = [bd for bd in asset.batch_definitions if bd.name == "whole"]
        definition = existing[0] if existing else asset.add_batch_definition_whole_table("whole")
        return definition.get_batch()

    def engine(self) -> Any:
        """The SQLAlchemy engine GX validates through (NullPool, same connect arguments)."""
        return self.datasource.get_execution_engine().engine

    def scalar(self, sql: str) -> Any:
        """The first column of the first row of a query on the file (None without rows)."""
        with self.engine().connect() as conn:
            return conn.exec_driver_sql(sql).scalar()

    def dispose(self) -> None:
        """Release every engine GX built on the file, so another connection may open it read-write."""
        if self.anchor is not None:
            self.anchor.close()
            self.anchor = None
        engine = self.datasource._execution_engine
        if engine is not None:
            engine.close()
        if self.datasource._engine is not None:
            self.datasource._engine.dispose()


def open_gx(path: str | Path, read_only: bool = True, name: str = "warehouse",
            config: dict[str, str] | None = None) -> DuckDBGX:
    """Ephemeral GX context plus a SQL datasource on `duckdb:///<path>` (NullPool, read-only by default);
    `config` sets DuckDB's memory limit, threads and spill folder (Settings.duckdb_config())."""
    install()
    context = gx.get_context(mode="ephemeral")
    # Progress bars write to stderr on every metric: noise in flow logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_sql(
        name=name,
        connection_string=duckdb_url(path),
        kwargs={"poolclass": NullPool,
                "connect_args": {"read_only": read_only, **({"config": dict(config)} if config else {})}},
    )
    session = DuckDBGX(context=context, datasource=datasource, path=Path(path))
    session.anchor = session.engine().connect()
    return session


@contextmanager
def duckdb_gx(path: str | Path, read_only: bool = True,
              config: dict[str, str] | None = None) -> Iterator[DuckDBGX]:
    """`open_gx` as a context manager that releases the file on exit."""
    session = open_gx(path, read_only=read_only, config=config)
    try:
        yield session
    finally:
        session.dispose()
