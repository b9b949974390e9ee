"""Great Expectations 1.24 on Spark tables: the gate's session when TIERING_ENGINE=spark.

The same interface as `flows.adapters.gx_duckdb.DuckDBGX` (`month_batch`, `scalar`, `dispose`), on GX's Spark
datasource over the process's SparkSession (`spark_engine.spark_session`). What it relies on in GX 1.24:

- `context.data_sources.add_spark` makes its execution engine from `SparkSession.builder.getOrCreate()`, i.e.
  the session already started for this warehouse (checked in `open_spark_gx`: a second session would be a
  second metastore);
- a dataframe asset's batch is the DataFrame given to `get_batch(batch_parameters={"dataframe": ...})`: here
  `spark.table("<schema>.<table>")` filtered to the month, so Spark reads only that month's partitions;
- `UnexpectedRowsExpectation` registers the batch as the temporary view `tmp_view`, puts that name in place
  of `{batch}` and runs the query with `spark.sql`: the suites' SQL runs as Spark SQL (their few DuckDB-only
  spellings are chosen in `expectations/dialect.py`), and rows come back as dicts with DECIMAL as Decimal;
- with `persist=True` (GX's default) the engine caches each batch DataFrame on its first metric, so a
  suite's many metrics read the month once; `dispose` releases those caches.

Spark SQL has no information_schema: the catalog's columns of the validated schemas are shown to the checks
as the temporary view `dialect.SPARK_COLUMNS_VIEW`, with DuckDB's column names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig

from expectations.dialect import SPARK_COLUMNS_VIEW
from flows.adapters.spark_engine import spark_session
from flows.settings import Settings

# Every ephemeral context logs its throw-away docs-site directory at INFO: noise in flow logs.
logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


@dataclass
class SparkGX:
    """An ephemeral GX context with one Spark datasource on this process's SparkSession."""

    context: Any
    datasource: Any
    spark: Any
    # The month DataFrames handed to GX (which caches them): unpersisted on dispose.
    frames: list[Any] = field(default_factory=list)

    def month_batch(self, table: str, schema: str, column: str, first: date, last: date) -> Any:
        """The rows of `<schema>.<table>` whose `column` lies in [first, last], as one batch (a missing table
        raises here, as on DuckDB)."""
        frame = self.spark.table(f"{schema}.{table}").where(
            f"{column} BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'")
        name = f"{schema}.{table}"
        for asset in self.datasource.assets:
            if asset.name == name:
                break
        else:
            asset = self.datasource.add_dataframe_asset(name=name)
        existing = [bd for bd in asset.batch_definitions if bd.name == "whole"]
        definition = existing[0] if existing else asset.add_batch_definition_whole_dataframe("whole")
        self.frames.append(frame)
        return definition.get_batch(batch_parameters={"dataframe": frame})

    def scalar(self, sql: str) -> Any:
        """The first column of the first row of a Spark SQL query (None without rows); DECIMAL as Decimal."""
        rows = self.spark.sql(sql).take(1)
        return rows[0][0] if rows else None

    def dispose(self) -> None:
        """Release the batches' caches and the catalog view; the session stays (it is the process's)."""
        for frame in self.frames:
            frame.unpersist()
        self.frames.clear()
        self.spark.catalog.dropTempView(SPARK_COLUMNS_VIEW)


def register_catalog_columns(spark: Any, schemas: Iterable[str]) -> int:
    """(Re)create the temporary view `SPARK_COLUMNS_VIEW` (table_schema, table_name, column_name) of every
    table and view in `schemas`, from the Spark catalog; return its row count."""
    rows = []
    existing = {db.name for db in spark.catalog.listDatabases()}
    for schema in sorted(set(schemas) & existing):
        for table in spark.catalog.listTables(schema):
            if table.isTemporary:
                continue
            rows += [(schema, table.name, column.name)
                     for column in spark.catalog.listColumns(f"{schema}.{table.name}")]
    spark.createDataFrame(rows, "table_schema STRING, table_name STRING, column_name STRING") \
        .createOrReplaceTempView(SPARK_COLUMNS_VIEW)
    return len(rows)


def open_spark_gx(settings: Settings, schemas: Iterable[str], name: str = "warehouse") -> SparkGX:
    """Ephemeral GX context plus a Spark datasource on the warehouse's SparkSession; `schemas` are those
    whose columns the checks may look up (`SPARK_COLUMNS_VIEW`)."""
    spark = spark_session(settings)
    context = gx.get_context(mode="ephemeral")
    # Progress bars write to stderr on every metric: noise in flow logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_spark(name=name)
    if datasource.get_execution_engine().spark is not spark:
        raise RuntimeError("GX's Spark datasource did not get this warehouse's SparkSession")
    register_catalog_columns(spark, schemas)
    return SparkGX(context=context, datasource=datasource, spark=spark)


@contextmanager
def spark_gx(settings: Settings, schemas: Iterable[str]) -> Iterator[SparkGX]:
    """`open_spark_gx` as a context manager that releases the caches on exit."""
    session = open_spark_gx(settings, schemas)
    try:
        yield session
    finally:
        session.dispose()
