"""What a Spark build reads, registered in Spark's catalog from what the working DuckDB file has committed.

Ingestion stays one path: it validates, quarantines and commits batches into the raw zone's Parquet with the
audit row as the commit point (flows/stages/raw_zone.py). Before a Spark build (and a Spark gate),
`register_inputs` shows Spark exactly that:

- `raw.cbs_<table>` (facts) and `raw.cbs_<table>_changes` (snapshots): external Parquet tables partitioned by
  batch_date whose partitions are exactly the loads `audit.batch_log` committed (added, moved or dropped
  here by difference, never found by listing folders, so a batch being written or a file a replacement
  superseded is invisible to Spark as it is to DuckDB); `raw.cbs_<table>_versions` views over the changes;
- `audit.batch_log` and `overrides.tier_override_log`: small copies written as Parquet under
  `<warehouse>/spark/inputs/` (atomically, file by file) and read through views.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb

from flows.adapters.spark_engine import spark_session
from flows.settings import Settings
from flows.sql_literals import sql_text
from flows.stages import raw_zone

# Inputs the models read that live in the working DuckDB file (ingestion's and the override log's).
DUCKDB_INPUTS = (("audit", "batch_log"), ("overrides", "tier_override_log"))


def _file_uri(path: Path) -> str:
    # Not Path.as_uri(): Spark would read its %3D as a literal (`batch_date%3D…` does not exist).
    return "file:" + str(Path(path).resolve())


def spark_type(duckdb_type: str) -> str:
    """A raw column's Spark type (the raw zone's files are written by DuckDB)."""
    return {"VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP_NTZ"}.get(duckdb_type, duckdb_type)


def _committed(con: duckdb.DuckDBPyConnection, warehouse: Path, table: str) -> dict[str, str]:
    """batch date → folder of the committed file (what audit.batch_log names), for one table."""
    folders = {}
    for day, raw_file in raw_zone.committed_batches(con, table):
        folder = (Path(warehouse) / raw_file).parent
        if not folder.name.startswith("load-"):
            raise raw_zone.RawZoneError(
                f"{raw_file} is in the raw layout of issues 10–12 (files side by side in one date folder), which "
                "Spark cannot register batch by batch: ingest the landing folder into a new warehouse folder")
        folders[day.isoformat()] = _file_uri(folder)
    return folders


def _registered(session: Any, table: str) -> dict[str, str]:
    """batch date → location of each partition Spark's catalog holds for `raw.<table>` (SQL has no
    statement listing partition locations in one go: this asks the session's catalog)."""
    jvm = session._jvm
    identifier = jvm.org.apache.spark.sql.catalyst.TableIdentifier(table, jvm.scala.Option.apply("raw"))
    parts = session._jsparkSession.sessionState().catalog().listPartitions(identifier, jvm.scala.Option.apply(None))
    found = {}
    for index in range(parts.size()):
        part = parts.apply(index)
        found[part.spec().apply("batch_date")] = part.storage().locationUri().get().toString()
    return found


def raw_table_statements(session: Any, con: duckdb.DuckDBPyConnection, settings: Settings) -> list[str]:
    """Statements that make Spark's `raw.*` equal to what audit.batch_log has committed.

    Each raw table is an external Parquet table partitioned by batch_date whose partitions Spark knows only
    from the catalog: a partition is added (or moved to a replacement's folder, or dropped) here, after the
    batch's audit row committed. Only the differences are sent, so the cost follows the batches loaded since
    the last build, not the months held.
    """
    statements = []
    session.sql("CREATE DATABASE IF NOT EXISTS raw")
    for table, shape in raw_zone.shapes().items():
        name = raw_zone.table_name(table)
        stored = f"{name}_changes" if table in raw_zone.SNAPSHOT_TABLES else name
        deleted = "is_deleted BOOLEAN, " if table in raw_zone.SNAPSHOT_TABLES else ""
        columns = ", ".join(f"{column} {spark_type(sql_type)}" for column, sql_type in shape.columns)
        # An empty folder of its own: the catalog, not a folder listing, says which batches exist.
        location = settings.spark_dir / "raw-tables" / stored
        location.mkdir(parents=True, exist_ok=True)
        session.sql(f"CREATE TABLE IF NOT EXISTS raw.{stored} ({deleted}{columns}, batch_date DATE) "
                    f"USING parquet PARTITIONED BY (batch_date) LOCATION '{_file_uri(location)}'")
        wanted = _committed(con, settings.warehouse, table)
        have = _registered(session, stored)
        for day in sorted(set(have) - set(wanted)):
            statements.append(f"ALTER TABLE raw.{stored} DROP IF EXISTS PARTITION (batch_date = '{day}')")
        for day in sorted(set(have) & set(wanted)):
            if have[day].rstrip("/") != wanted[day].rstrip("/"):
                statements.append(f"ALTER TABLE raw.{stored} PARTITION (batch_date = '{day}') "
                                  f"SET LOCATION '{wanted[day]}'")
        new = sorted(set(wanted) - set(have))
        if new:
            statements.append(f"ALTER TABLE raw.{stored} ADD IF NOT EXISTS " + " ".join(
                f"PARTITION (batch_date = '{day}') LOCATION '{wanted[day]}'" for day in new))
        if table in raw_zone.SNAPSHOT_TABLES:
            statements.append(raw_zone.versions_view_sql(name, shape))
    return statements


def _export_inputs(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[str]:
    """Copy the DuckDB-held inputs to Parquet (write then rename: a reader never sees half a file) and
    return the statements that put views over them."""
    folder = settings.spark_dir / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    statements = []
    for schema, table in DUCKDB_INPUTS:
        target = folder / f"{schema}.{table}.parquet"
        partial = target.with_suffix(".parquet.partial")
        con.execute(f"COPY (SELECT * FROM {schema}.{table}) TO {sql_text(str(partial))} "
                    f"(FORMAT parquet, COMPRESSION zstd)")
        os.replace(partial, target)
        statements += [f"CREATE DATABASE IF NOT EXISTS {schema}",
                       f"CREATE OR REPLACE VIEW {schema}.{table} AS SELECT * FROM parquet.`{_file_uri(target)}`"]
    return statements


def register_inputs(settings: Settings) -> int:
    """Show this warehouse's committed raw batches, batch log and override log to Spark; return the
    statements run (the raw tables' catalog changes and the input views)."""
    session = spark_session(settings)
    con = duckdb.connect(str(settings.working_db), read_only=True, config=settings.duckdb_config())
    try:
        statements = raw_table_statements(session, con, settings) + _export_inputs(con, settings)
    finally:
        con.close()
    for statement in statements:
        session.sql(statement)
    return len(statements)
