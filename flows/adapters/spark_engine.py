"""The Spark engine (TIERING_ENGINE=spark): the Spark session, and the build's inputs as Spark views.

Ingestion stays one path: it validates, quarantines and commits batches into the raw zone's Parquet with the
audit row as the commit point (flows/stages/raw_zone.py), in the working DuckDB file. Before a Spark build,
`register_inputs` shows Spark exactly what is committed:

- `raw.cbs_<table>` (facts) and `raw.cbs_<table>_changes` (snapshots): external Parquet tables partitioned by
  batch_date whose partitions are exactly the loads `audit.batch_log` committed (added, moved or dropped
  here by difference, never found by listing folders, so a batch being written or a file a replacement
  superseded is invisible to Spark as it is to DuckDB); `raw.cbs_<table>_versions` views over the changes;
- `audit.batch_log` and `overrides.tier_override_log`: small copies written as Parquet under
  `<warehouse>/spark/inputs/` (atomically, file by file) and read through views.

dbt-spark then builds the same models as on DuckDB (target `spark` in profiles.yml). With `method: session`
(the default) dbt runs inside this process on the session `spark_session()` starts: `local[N]` here, or a
cluster's master (`TIERING_SPARK_MASTER`), its metastore and warehouse location from the settings below. With
`method: thrift`, dbt talks to a Spark Thrift server that shares that metastore (README, "Running on Spark").

After the build, `mount_built_tables` shows every table dbt built to the working DuckDB file as a view over
its Parquet files, so publication, `explain` and the reports read a Spark build as they read a DuckDB one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import duckdb

from flows.settings import Settings
from flows.stages import raw_zone

# Inputs the models read that live in the working DuckDB file (ingestion's and the override log's).
DUCKDB_INPUTS = (("audit", "batch_log"), ("overrides", "tier_override_log"))


def catalog_conf(spark_dir: Path, warehouse_dir: str) -> dict[str, str]:
    """What every Spark process of one warehouse shares, the flow's session and a local Thrift server
    (flows/adapters/spark_thrift.py): where tables and the metastore live, and SQL semantics equal to DuckDB's."""
    metastore = Path(spark_dir) / "metastore"
    return {
        "spark.sql.warehouse.dir": str(warehouse_dir),
        # Embedded Derby metastore beside the tables (a cluster sets its Hive metastore in hive-site.xml).
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={spark_dir}",
        # Dates and naive timestamps mean Asia/Shanghai everywhere (flows.months).
        "spark.sql.session.timeZone": "Asia/Shanghai",
        # ANSI: overflow and bad casts raise instead of returning NULL, as in DuckDB.
        "spark.sql.ansi.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # Dynamic partition pruning fails on some of the models' joins of month-partitioned tables ("Task not
        # serializable: InMemoryFileIndex"); each model already filters the months it reads.
        "spark.sql.optimizer.dynamicPartitionPruning.enabled": "false",
        # Parquet timestamps without a zone (DuckDB's) stay without a zone.
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    }


def spark_conf(settings: Settings) -> dict[str, str]:
    """The session's configuration: the warehouse's catalog and SQL semantics, and this process's knobs."""
    return {
        **catalog_conf(settings.spark_dir, settings.spark_warehouse_dir),
        "spark.master": settings.spark_master,
        "spark.app.name": "customer-tiering",
        # A month of a mid-size bank is small for Spark: few shuffle partitions, no UI port to collide on.
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.driver.memory": settings.spark_driver_memory,
    }


def spark_session(settings: Settings) -> Any:
    """The process's SparkSession for this warehouse (started on first use; dbt-spark's `session` method
    then finds it with getOrCreate). One Spark warehouse per process: Spark fixes its warehouse and
    metastore when the session starts."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    wanted = str(settings.spark_warehouse_dir)
    if active is not None:
        current = active.conf.get("spark.sql.warehouse.dir")
        if current.removeprefix("file:").rstrip("/") != wanted.rstrip("/"):
            raise RuntimeError(f"this process's Spark session serves {current}; one Spark warehouse per process "
                               f"({wanted} was asked for)")
        return active
    settings.spark_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # A single machine talks to itself on loopback (no "resolves to a loopback address" warning).
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _file_uri(path: Path) -> str:
    # Not Path.as_uri(): Spark would read its %3D as a literal (`batch_date%3D…` does not exist).
    return "file:" + str(Path(path).resolve())


def spark_type(duckdb_type: str) -> str:
    """A raw column's Spark type (the raw zone's files are written by DuckDB)."""
    return {"VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP_NTZ"}.get(duckdb_type, duckdb_type)


def _committed(con: duckdb.DuckDBPyConnection, warehouse: Path, table: str) -> dict[str, str]:
    """batch date → folder of the committed file (what audit.batch_log names), for one table."""
    folders = {}
    for day, raw_file in con.execute(
            "SELECT batch_date, raw_file FROM audit.batch_log WHERE table_name = ? AND status = 'LOADED' "
            "AND raw_file IS NOT NULL ORDER BY batch_date", [f"CBS_{table}"]).fetchall():
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
            statements.append(f"""
            CREATE OR REPLACE VIEW raw.{name}_versions AS
            SELECT batch_date AS valid_from, valid_to, {', '.join(shape.names)}
            FROM (
                SELECT *, lead(batch_date) OVER (PARTITION BY {shape.key} ORDER BY batch_date) AS valid_to
                FROM raw.{name}_changes
            ) AS changes
            WHERE NOT is_deleted""")
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
        con.execute(f"COPY (SELECT * FROM {schema}.{table}) TO {_sql_text(str(partial))} "
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


# Spark's names of the types the models produce → DuckDB's (for an empty table, which has no file to read).
_DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT",
                 "tinyint": "TINYINT", "boolean": "BOOLEAN", "date": "DATE", "timestamp_ntz": "TIMESTAMP",
                 "timestamp": "TIMESTAMPTZ", "double": "DOUBLE", "float": "FLOAT", "array<string>": "VARCHAR[]"}


def duckdb_type(spark_type_name: str) -> str:
    """A Spark column type (its simpleString) as DuckDB spells it."""
    if spark_type_name.startswith("decimal"):
        return spark_type_name.upper()
    if spark_type_name not in _DUCKDB_TYPES:
        raise ValueError(f"no DuckDB type for the Spark type {spark_type_name!r}")
    return _DUCKDB_TYPES[spark_type_name]


def _contract_orders(dbt_project_dir: Path) -> dict[tuple[str, str], list[str]]:
    """(schema, table) → column order of each model with an enforced contract, from dbt's manifest: a
    partitioned Spark table puts its partition column last, the published contract does not."""
    import json

    manifest = Path(dbt_project_dir) / "target" / "manifest.json"
    if not manifest.exists():
        return {}
    orders = {}
    for node in json.loads(manifest.read_text(encoding="utf-8"))["nodes"].values():
        if node.get("resource_type") == "model" and node["config"].get("contract", {}).get("enforced"):
            orders[(node["schema"], node["alias"])] = list(node["columns"])
    return orders


def _location(session: Any, schema: str, table: str) -> str:
    for row in session.sql(f"DESCRIBE TABLE EXTENDED {schema}.{table}").collect():
        if row[0] == "Location":
            return row[1]
    raise RuntimeError(f"Spark's catalog has no location for {schema}.{table}")


def built_table_views(session: Any, settings: Settings) -> list[tuple[str, str, str]]:
    """(schema, table, DuckDB view SQL) for every table dbt built on Spark (schemas main_*): a view over the
    table's Parquet files, columns in the contract's order, partition values typed."""
    orders = _contract_orders(settings.dbt_project_dir)
    views = []
    for database in sorted(db.name for db in session.catalog.listDatabases()):
        if not database.startswith("main_"):
            continue
        for table in session.catalog.listTables(database):
            if table.isTemporary or table.tableType == "VIEW":
                continue
            columns = session.catalog.listColumns(f"{database}.{table.name}")
            types = {c.name: duckdb_type(c.dataType) for c in columns}
            partitions = [c.name for c in columns if c.isPartition]
            order = orders.get((database, table.name)) or [c.name for c in columns]
            if set(order) != set(types):
                order = [c.name for c in columns]
            folder = Path(_location(session, database, table.name).removeprefix("file:"))
            pattern = folder.joinpath(*(["*"] * len(partitions)), "*.parquet")
            if any(folder.glob(str(pattern.relative_to(folder)))):
                hive_types = ", ".join(f"'{name}': '{types[name]}'" for name in partitions)
                source = (f"read_parquet({_sql_text(str(pattern))}, hive_partitioning = {bool(partitions)}"
                          + (f", hive_types = {{{hive_types}}}" if partitions else "") + ")")
                select = ", ".join(f'"{name}"' for name in order)
                views.append((database, table.name, f"SELECT {select} FROM {source}"))
            else:
                typed = ", ".join(f'CAST(NULL AS {types[name]}) AS "{name}"' for name in order)
                views.append((database, table.name, f"SELECT {typed} WHERE false"))
    return views


def mount_built_tables(settings: Settings) -> int:
    """Show the Spark build's tables to the working DuckDB file as views over their Parquet files, under the
    same schema and table names: publication, explain and the reports then read a Spark build exactly as a
    DuckDB one. Returns the views (re)created. Needs the tables' files on a path this machine reads (a
    local warehouse, or the cluster's storage mounted)."""
    session = spark_session(settings)
    views = built_table_views(session, settings)
    con = duckdb.connect(str(settings.working_db), config=settings.duckdb_config())
    try:
        duckdb_tables = set(con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall())
        con.execute("BEGIN")
        for schema, table, sql in views:
            if (schema, table) in duckdb_tables:
                raise RuntimeError(f"{schema}.{table} in {settings.working_db} is a DuckDB-built table: this "
                                   "warehouse was built with TIERING_ENGINE=duckdb; build on Spark into a new "
                                   "warehouse folder")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.execute(f"CREATE OR REPLACE VIEW {schema}.{table} AS {sql}")
        con.execute("COMMIT")
    finally:
        con.close()
    return len(views)
