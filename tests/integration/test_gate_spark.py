"""The gate on Spark (TIERING_ENGINE=spark): the same suites give the same verdicts as on DuckDB, and a
tampered Spark table fails its blocking check.

The Spark tables are those the monthly flow built on Spark from the published warehouse's landing
(`spark_built_warehouse`); the DuckDB ones a copy of the published warehouse. test_spark_parity shows the
two builds publish the same rows, so both gates validate the same data.
"""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from expectations import dialect, lit, lit_list
from expectations.aml_customer_risk import _trigger_list
from flows.adapters import spark_engine
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES, Settings
from flows.stages.gate_checks import CheckResult, run_checks

pytestmark = [pytest.mark.spark, pytest.mark.integration]

RULES = load_rules(DEFAULT_RULES)
AS_OF = date(2026, 3, 31)
SEGMENT = "main_marts.customer_segment"


@pytest.fixture(scope="module")
def engines(published_warehouse, spark_built_warehouse, tmp_path_factory) -> tuple[Settings, Settings]:
    """(DuckDB, Spark) settings of two builds of one landing: a copy of the published warehouse (the tests
    tamper with it) and the Spark-built warehouse (the process's one Spark warehouse: spark_session
    refuses a second)."""
    _, source, as_of = published_warehouse
    assert as_of == AS_OF
    warehouse = tmp_path_factory.mktemp("gate_spark") / "warehouse"
    shutil.copytree(source, warehouse, symlinks=True)
    spark = spark_engine.spark_session(spark_built_warehouse)
    assert spark.table(SEGMENT).columns[-1] == "as_of_month"  # a dbt-spark build: partitioned by month
    return Settings(warehouse=warehouse), spark_built_warehouse


def _outcome(result: CheckResult) -> tuple:
    return result.full_name, result.severity, result.success, result.observed_value, result.details


def test_spark_gate_gives_the_duckdb_verdicts(engines: tuple[Settings, Settings]) -> None:
    duck_settings, spark_settings = engines
    duck_results, duck_reference = run_checks(duck_settings, AS_OF, RULES)
    spark_results, spark_reference = run_checks(spark_settings, AS_OF, RULES)

    # Not a comparison of two empty or broken runs: every suite ran, no check errored, the month passes.
    assert {r.table for r in duck_results} >= {"customer_segment", "customer_tier", "tier_summary",
                                               "tier_migration", "customer_event", "batch_log",
                                               "aml_customer_risk", "aml_trigger_transactions"}
    assert [r.full_name for r in duck_results if r.observed_value == "error"] == []
    assert [r.full_name for r in duck_results if r.severity == "blocking" and not r.success] == []
    assert [_outcome(r) for r in spark_results] == [_outcome(r) for r in duck_results]

    columns = {name: set(str(reference.pop("candidate_columns")).split(","))
               for name, reference in (("duckdb", duck_reference), ("spark", spark_reference))}
    assert columns["spark"] == columns["duckdb"] and "customer_segment.override_id" in columns["duckdb"]
    assert spark_reference == duck_reference
    assert spark_reference["eligible_customers"] == 297 and spark_reference["records"] > 0


def test_a_tampered_row_fails_the_same_blocking_checks_on_both_engines(engines: tuple[Settings, Settings],
                                                                      tmp_path: Path) -> None:
    """One customer's row again, carrying an override the log never saw: duplicate key, one row too many,
    an unapproved override (a custom-SQL check with offending rows) — on Spark as on DuckDB."""
    duck_settings, spark_settings = engines
    spark = spark_engine.spark_session(spark_settings)
    table = spark.table(SEGMENT)
    month = f"as_of_month = DATE '{AS_OF.isoformat()}'"
    saved = f"file:{tmp_path / 'customer_segment_month'}"
    table.where(month).write.parquet(saved)
    first = table.where(month).orderBy("cust_id").limit(1).collect()[0].asDict()
    cust_id = first["cust_id"]
    spark.createDataFrame([{**first, "override_id": "OVR-9999"}], table.schema).write.insertInto(SEGMENT)
    with duckdb.connect(str(duck_settings.working_db)) as con:
        con.execute(f"INSERT INTO {SEGMENT} SELECT * REPLACE ('OVR-9999' AS override_id) FROM {SEGMENT} "
                    f"WHERE {month} AND cust_id = ?", [cust_id])
    try:
        assert spark.table(SEGMENT).where(month).count() == 298
        on_spark = run_checks(spark_settings, AS_OF, RULES, tables=("customer_segment",))[0]
        on_duckdb = run_checks(duck_settings, AS_OF, RULES, tables=("customer_segment",))[0]
    finally:
        # Back to the exported rows: dynamic partition overwrite replaces only this month.
        spark.read.parquet(saved).select(*table.columns).write.insertInto(SEGMENT, overwrite=True)
        with duckdb.connect(str(duck_settings.working_db)) as con:
            con.execute(f"DELETE FROM {SEGMENT} WHERE override_id = 'OVR-9999'")
    assert spark.table(SEGMENT).where(month).count() == 297

    assert [_outcome(r) for r in on_spark] == [_outcome(r) for r in on_duckdb]
    results = {r.name: r for r in on_spark}
    failed = {name for name, r in results.items() if r.severity == "blocking" and not r.success}
    assert failed >= {"one_row_per_customer_month", "row_count_equals_eligible_customers",
                      "override_approved"}
    assert results["one_row_per_customer_month"].observed_value.startswith("2 of 298 unexpected")
    assert cust_id in results["one_row_per_customer_month"].details
    assert results["override_approved"].observed_value == f"1 unexpected row(s): {cust_id} OVR-9999"
    assert results["cust_id_not_null"].success and results["pii_masked"].success


def test_dialect_spellings_give_the_same_values(engines: tuple[Settings, Settings]) -> None:
    """Each engine-specific spelling of expectations/dialect.py, and lit()'s quoting, evaluated on both."""
    spark = spark_engine.spark_session(engines[1])
    triggers = _trigger_list("t")  # the AML suites' common spelling, fed to the engine-specific ones
    high = ("KYC_HIGH", "CASH_LARGE")

    def expressions(engine: str) -> list[str]:
        return [
            dialect.array_size(engine, triggers),
            dialect.arrays_overlap(engine, triggers, dialect.array_of(engine, lit_list(high))),
            dialect.starts_with(engine, "t", lit("KYC_")),
            dialect.ends_with(engine, "t", lit("_LARGE")),
            lit("it's"), lit("C:\\tiers\\"), lit(Decimal("0.005")), lit(AS_OF),
        ]

    rows = "(VALUES ('KYC_HIGH, ,CASH_LARGE'), ('KYC_MEDIUM'), (''), (NULL)) AS v(t)"

    def values(engine: str) -> str:
        return f"SELECT {', '.join(expressions(engine))} FROM {rows} ORDER BY t NULLS LAST"

    def unnested(engine: str) -> str:
        return f"SELECT {dialect.unnest(engine, triggers)} AS x FROM {rows}"

    with duckdb.connect() as con:
        on_duckdb = con.execute(values("duckdb")).fetchall()
        unnested_duckdb = sorted(con.execute(unnested("duckdb")).fetchall())
    on_spark = [tuple(r) for r in spark.sql(values("spark")).collect()]
    unnested_spark = sorted(tuple(r) for r in spark.sql(unnested("spark")).collect())

    assert on_spark == on_duckdb
    assert on_duckdb[1][:2] == (2, True) and on_duckdb[1][4:6] == ("it's", "C:\\tiers\\")
    assert unnested_spark == unnested_duckdb == [("CASH_LARGE",), ("KYC_HIGH",), ("KYC_MEDIUM",)]
