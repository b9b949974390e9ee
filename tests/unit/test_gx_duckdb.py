"""The GX-on-DuckDB adapter: the trap (GX #10738/#11579) without the patch, exact SQL results with it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe
import pytest
import sqlalchemy

import flows  # noqa: F401  (no-telemetry environment before GX loads)
from flows.adapters import gx_duckdb
from flows.adapters.gx_duckdb import duckdb_gx

BIG = Decimal("1234567890123.45")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gx") / "tiering.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA main_marts")
    # 1,000 amounts of 0.10: exactly 100.00 in DECIMAL, 99.9999999999986 when summed as floats.
    con.execute("CREATE TABLE main_marts.amounts AS SELECT i AS id, CAST(0.10 AS DECIMAL(18, 2)) AS amt, "
                "CAST(CASE WHEN i = 7 THEN 1234567890123.45 ELSE 1 END AS DECIMAL(18, 2)) AS big "
                "FROM range(1000) AS r(i)")
    con.close()
    return path


def _validate(session: gx_duckdb.DuckDBGX, *expectations, result_format: str = "BASIC") -> list:
    asset = session.datasource.add_table_asset(name="main_marts.amounts", table_name="amounts", schema_name="main_marts")
    batch = asset.add_batch_definition_whole_table("all").get_batch()
    suite = gx.ExpectationSuite(name="probe")
    for expectation in expectations:
        suite.add_expectation(expectation)
    return batch.validate(suite, result_format=result_format).results


def test_without_the_patch_duckdb_results_are_lost(db: Path) -> None:
    with duckdb_gx(db) as session:
        gx_duckdb.uninstall()
        try:
            [result] = _validate(session, gxe.ExpectTableRowCountToEqual(value=1000))
        finally:
            gx_duckdb.install()
    # GX read the cursor after closing its connection: no observed value, an exception instead.
    assert result.success is False
    assert "observed_value" not in (result.result or {})
    assert "No open result set" in str(result.exception_info) or "IndexError" in str(result.exception_info)


def test_with_the_patch_observed_values_are_exact(db: Path) -> None:
    assert sum(0.1 for _ in range(1000)) != 100  # what a float (pandas) copy would compute
    with duckdb_gx(db) as session:
        results = _validate(
            session,
            gxe.ExpectTableRowCountToEqual(value=1000),
            gxe.ExpectColumnSumToBeBetween(column="amt", min_value=100, max_value=100),
            gxe.ExpectColumnMaxToBeBetween(column="big", min_value=float(BIG), max_value=float(BIG)),
            gxe.ExpectColumnValuesToBeBetween(column="amt", min_value=0.1, max_value=0.1),
        )
    by_type = {r.expectation_config.type: r for r in results}
    assert all(r.success for r in results), [(r.expectation_config.type, r.result) for r in results]
    assert by_type["expect_table_row_count_to_equal"].result["observed_value"] == 1000
    assert by_type["expect_column_sum_to_be_between"].result["observed_value"] == 100.0
    assert Decimal(str(by_type["expect_column_max_to_be_between"].result["observed_value"])) == BIG


def test_custom_sql_returns_its_rows(db: Path) -> None:
    query = "SELECT id, CAST(big AS VARCHAR) AS big FROM {batch} WHERE big > 1"
    with duckdb_gx(db) as session:
        [result] = _validate(session, gxe.UnexpectedRowsExpectation(unexpected_rows_query=query),
                             result_format="COMPLETE")
    assert result.success is False and result.result["observed_value"] == 1
    assert result.result["details"]["unexpected_rows"] == [{"id": 7, "big": str(BIG)}]


def test_working_database_is_opened_read_only(db: Path) -> None:
    with duckdb_gx(db) as session, session.engine().connect() as conn:
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only"):
            conn.exec_driver_sql("CREATE TABLE main.nope (i INTEGER)")


def test_file_is_released_after_the_session(db: Path) -> None:
    with duckdb_gx(db) as session:
        _validate(session, gxe.ExpectTableRowCountToEqual(value=1000))
    con = duckdb.connect(str(db))  # read-write: fails if GX still held the file
    con.execute("CREATE OR REPLACE TABLE main.released AS SELECT 1 AS ok")
    con.close()


def test_install_is_idempotent_and_reversible() -> None:
    gx_duckdb.install()
    gx_duckdb.install()
    assert gx_duckdb.is_installed()
    gx_duckdb.uninstall()
    assert not gx_duckdb.is_installed()
    gx_duckdb.install()
    assert gx_duckdb.is_installed()
