"""SQL literals written into statement text, for the few places a value cannot be a bound parameter
(DuckDB's COPY … TO, ATTACH and read_parquet paths, Spark DDL)."""

from __future__ import annotations


def sql_text(value: str) -> str:
    """`value` as a SQL string literal (quotes doubled), the same in DuckDB and Spark SQL."""
    return "'" + value.replace("'", "''") + "'"
