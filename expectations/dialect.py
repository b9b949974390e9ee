"""What the gate's SQL must spell differently on DuckDB and on Spark SQL: one function per difference.

The suites write their SQL in what both engines read alike (CAST … AS STRING, max_by, SEMI JOIN,
filter(split(…), x -> …), array_distinct, CTE column lists, VALUES lists, a subquery instead of QUALIFY).
Where no common spelling exists, a suite calls a function here with its run's engine (`GateParams.engine`),
so each difference is written once and both spellings mean the same.
"""

from __future__ import annotations

DUCKDB = "duckdb"
SPARK = "spark"
# Spark SQL has no information_schema: the Spark gate session (flows/adapters/gx_spark.py) materialises the
# catalog's columns of the validated schemas as a temporary view of this name, with DuckDB's column names.
SPARK_COLUMNS_VIEW = "gate_catalog_columns"


def _known(engine: str) -> str:
    if engine not in (DUCKDB, SPARK):
        raise ValueError(f"no SQL dialect for engine {engine!r}")
    return engine


def catalog_columns(engine: str) -> str:
    """A relation with one row per (table_schema, table_name, column_name) of the validated schemas."""
    return "information_schema.columns" if _known(engine) == DUCKDB else SPARK_COLUMNS_VIEW


def array_of(engine: str, items_sql: str) -> str:
    """An array literal of the comma-separated SQL expressions `items_sql`."""
    return f"[{items_sql}]" if _known(engine) == DUCKDB else f"array({items_sql})"


def array_size(engine: str, array_sql: str) -> str:
    """Number of elements of an array (DuckDB's len() is Spark's string length)."""
    return f"len({array_sql})" if _known(engine) == DUCKDB else f"size({array_sql})"


def arrays_overlap(engine: str, left_sql: str, right_sql: str) -> str:
    """TRUE when two arrays (without NULL elements) share an element."""
    if _known(engine) == DUCKDB:
        return f"list_has_any({left_sql}, {right_sql})"
    return f"arrays_overlap({left_sql}, {right_sql})"


def unnest(engine: str, array_sql: str) -> str:
    """A select-list expression giving one row per element of the array."""
    return f"unnest({array_sql})" if _known(engine) == DUCKDB else f"explode({array_sql})"


def starts_with(engine: str, text_sql: str, prefix_sql: str) -> str:
    return f"starts_with({text_sql}, {prefix_sql})" if _known(engine) == DUCKDB else \
        f"startswith({text_sql}, {prefix_sql})"


def ends_with(engine: str, text_sql: str, suffix_sql: str) -> str:
    return f"ends_with({text_sql}, {suffix_sql})" if _known(engine) == DUCKDB else \
        f"endswith({text_sql}, {suffix_sql})"
