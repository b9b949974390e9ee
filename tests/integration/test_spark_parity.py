"""One pipeline, two engines: the monthly flow with TIERING_ENGINE=spark publishes what the DuckDB build does.

`spark_built_warehouse` (tests/conftest.py) runs the published warehouse's landing (300 customers, seed 11,
2026-01 … 2026-03) through the same `tiering-run` flow on a local Spark session: ingestion into the raw zone,
dbt-spark over the same models, the gate on GX's Spark datasource, publication. Every published table must
equal the DuckDB build's row for row: same columns, same types, same values to the cent.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.integration]

# The release bookkeeping names its run (ids, times, file paths): only their row counts must agree.
BOOKKEEPING = frozenset({"release_log", "release_months"})


def _tables(con: duckdb.DuckDBPyConnection, database: str, schemas: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(schema, table) → [(column, type)] in column order, for the schemas the SQL predicate `schemas` keeps."""
    rows = con.execute("SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
                       f"WHERE database_name = ? AND ({schemas}) AND NOT internal "
                       "ORDER BY schema_name, table_name, column_index", [database]).fetchall()
    tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault((schema, table), []).append((column, data_type))
    return tables


def _unmatched(con: duckdb.DuckDBPyConnection, compared: str, left: str, right: str) -> tuple[int, int]:
    """Rows (of the columns `compared`) only in `left`, and only in `right`, counting duplicates."""
    return tuple(con.execute(f"SELECT count(*) FROM (SELECT {compared} FROM {a} EXCEPT ALL "
                             f"SELECT {compared} FROM {b})").fetchone()[0] for a, b in ((left, right), (right, left)))


def _differences(con: duckdb.DuckDBPyConnection, database_pair: tuple[str, str]) -> tuple[dict, dict]:
    duck, spark = database_pair
    duck_tables, spark_tables = (_tables(con, db, "schema_name = 'main'") for db in database_pair)
    assert sorted(spark_tables) == sorted(duck_tables)
    counts, differences = {}, {}
    for (_, table), columns in duck_tables.items():
        assert spark_tables[("main", table)] == columns, f"{table}: columns or types differ"
        compared = "count(*)" if table in BOOKKEEPING else ", ".join(f'"{name}"' for name, _ in columns)
        (counts[table],) = con.execute(f"SELECT count(*) FROM {duck}.main.{table}").fetchone()
        if any(only := _unmatched(con, compared, f"{duck}.main.{table}", f"{spark}.main.{table}")):
            differences[table] = only
    return counts, differences


def _attach(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> None:
    con.execute(f"ATTACH '{path}' AS {name} (READ_ONLY)")


def test_every_published_table_equals_the_duckdb_build(published_warehouse, spark_built_warehouse) -> None:
    _, duck_warehouse, _ = published_warehouse
    spark_warehouse = spark_built_warehouse.warehouse
    # Really a Spark build: the marts the release came from are Spark's Parquet, not DuckDB tables.
    assert any((Path(spark_built_warehouse.spark_warehouse_dir) / "main_marts.db" / "customer_segment").rglob(
        "*.parquet"))
    with duckdb.connect() as con:
        for folder, name in ((duck_warehouse, "duck"), (spark_warehouse, "spark")):
            _attach(con, folder / "published.duckdb", f"{name}_published")
            _attach(con, folder / "restricted" / "aml.duckdb", f"{name}_restricted")
        counts, differences = _differences(con, ("duck_published", "spark_published"))
        restricted_counts, restricted_differences = _differences(con, ("duck_restricted", "spark_restricted"))
        (months,) = con.execute("SELECT count(DISTINCT as_of_month) FROM spark_published.main.customer_segment"
                                ).fetchone()
    assert differences == {} and restricted_differences == {}
    # Not two empty releases: three months of the 300 customers and their AML rows.
    assert months == 3
    assert counts["customer_segment"] > 800 and counts["customer_tier"] >= counts["customer_segment"]
    assert restricted_counts["aml_customer_risk"] > 0 and restricted_counts["aml_trigger_transactions"] > 0


def test_every_table_dbt_built_on_spark_equals_the_duckdb_build(published_warehouse, spark_built_warehouse) -> None:
    """Not only the published tables: every table of the Spark build (intermediate ones too, at their full
    8 decimal places, where a rounding would not reach a published cent) equals the DuckDB build's."""
    _, duck_warehouse, _ = published_warehouse
    with duckdb.connect() as con:
        _attach(con, duck_warehouse / "tiering.duckdb", "duck")
        _attach(con, spark_built_warehouse.working_db, "spark")
        # Order aside: a Spark table puts its partition column last unless a contract orders it.
        duck_tables, spark_tables = ({key: dict(columns) for key, columns in _tables(
            con, db, "starts_with(schema_name, 'main_')").items()} for db in ("duck", "spark"))
        differences = {}
        for (schema, table), columns in spark_tables.items():
            expected = duck_tables[(schema, table)]
            # List rules are text on Spark (DECISIONLOG S4); every other column has the same type.
            lists = {name for name, data_type in expected.items() if data_type.endswith("[]")}
            assert {name: columns[name] for name in lists} == dict.fromkeys(lists, "VARCHAR")
            assert {n: t for n, t in columns.items() if n not in lists} == {
                n: t for n, t in expected.items() if n not in lists}, f"{schema}.{table}: columns or types differ"
            compared = ", ".join(f'"{name}"' for name in sorted(set(columns) - lists))
            if any(only := _unmatched(con, compared, f"duck.{schema}.{table}", f"spark.{schema}.{table}")):
                differences[f"{schema}.{table}"] = only
    assert differences == {}
    assert {("main_intermediate", "int_customer_monthly_balance_sums"),
            ("main_intermediate", "int_aml_trigger_transactions"), ("main_marts", "customer_segment"),
            ("main_rules", "rule_value_tiers")} <= set(spark_tables)


def test_the_dbt_unit_tests_pass_on_spark(spark_built_warehouse, tmp_path, monkeypatch) -> None:
    """The models' unit tests (run on DuckDB by tests/dbt) pass on Spark with the same fixtures and expected
    rows: e.g. 10.01 HKD × 0.912345 = 9.13257345 CNY, exact to 8 places where Spark's default decimal
    arithmetic rounds a wide product to 6."""
    from flows.adapters.dbt_runner import run_dbt

    monkeypatch.setenv("TIERING_DBT_THREADS", "2")
    result = run_dbt(["test", "--select", "test_type:unit", "--target-path", str(tmp_path / "target"),
                      "--log-path", str(tmp_path / "logs")], spark_built_warehouse)
    assert result.success, result.error_message()
    assert result.nodes_run >= 50  # every unit test ran, not an empty selection
