"""The Spark engine (TIERING_ENGINE=spark): the Spark session, and the Spark build's tables shown to DuckDB.

`spark_session` starts the process's SparkSession for a warehouse: its catalog (warehouse location, metastore)
and SQL semantics equal to DuckDB's (`catalog_conf`, shared with a local Thrift server). dbt-spark builds in
it (target `spark` in profiles.yml, `method: session`: `local[N]` here, or a cluster's master,
`TIERING_SPARK_MASTER`), or on a Thrift server sharing that metastore (`method: thrift`; README, "Running on
Spark"). What the build reads is registered by the stage module `flows/stages/spark_inputs.py`.

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
from flows.sql_literals import sql_text


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
        # ANSI: overflow and bad casts raise instead of returning NULL, as in DuckDB. dbt-spark turns it off
        # for the statements it sends (its credentials force it), so in the build an overflow is a NULL,
        # which the models' not_null tests and the gate refuse.
        "spark.sql.ansi.enabled": "true",
        # Exact decimals: a product or sum keeps its scale and overflows (an error, or NULL as above) rather
        # than being rounded to 6 places when its type would pass 38 digits. profiles.yml sets it for
        # dbt's statements too, also on a Thrift server.
        "spark.sql.decimalOperations.allowPrecisionLoss": "false",
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
        # Stage progress bars would fill the run's log (a worker's stderr) with carriage-return noise.
        "spark.ui.showConsoleProgress": "false",
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
                source = (f"read_parquet({sql_text(str(pattern))}, hive_partitioning = {bool(partitions)}"
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
