"""Expectations on `audit.batch_log` for the batch dates of the candidate month (ingestion quality)."""

from __future__ import annotations

from datetime import timedelta

import great_expectations.expectations as gxe

from expectations import BLOCKING, Check, GateParams, check, lit

TABLE = "batch_log"
SCHEMA = "audit"
MONTH_COLUMN = "batch_date"


def reference_queries(params: GateParams) -> dict[str, str]:
    """The month's quarantine figures, for the report (the check itself recomputes them in GX)."""
    month = f"batch_date BETWEEN DATE '{params.month_start}' AND DATE '{params.as_of}'"
    return {
        "records": f"SELECT coalesce(sum(records), 0) FROM audit.batch_log WHERE {month}",
        "quarantined": f"SELECT coalesce(sum(quarantined), 0) FROM audit.batch_log WHERE {month}",
    }


def _quarantine_sql(params: GateParams) -> str:
    """One row when Σ quarantined / Σ records of the month's batches exceeds the bound (or none logged)."""
    bound = params.rules.max_quarantine_rate
    return f"""
        SELECT CAST(coalesce(sum(quarantined), 0) AS STRING) AS quarantined,
               CAST(coalesce(sum(records), 0) AS STRING) AS records,
               CAST(round(sum(quarantined) / nullif(sum(records), 0), 6) AS STRING) AS quarantine_rate,
               {lit(str(bound))} AS max_quarantine_rate
        FROM {{batch}}
        HAVING coalesce(sum(records), 0) = 0 OR coalesce(sum(quarantined), 0) > {lit(bound)} * sum(records)
    """


def _balance_days_sql(params: GateParams) -> str:
    """Calendar days of the month without a LOADED CBS_BALANCE batch."""
    # The month's days as VALUES: DuckDB's generate_series and Spark's sequence have no common spelling.
    days = ", ".join(f"({lit(params.month_start + timedelta(days=n))})" for n in range(params.days))
    return f"""
        SELECT CAST(CAST(d.day AS DATE) AS STRING) AS missing_balance_date
        FROM (VALUES {days}) AS d(day)
        WHERE CAST(d.day AS DATE) NOT IN (
            SELECT batch_date FROM {{batch}} WHERE table_name = 'CBS_BALANCE' AND status = 'LOADED')
    """


def checks(params: GateParams) -> list[Check]:
    """Every expectation on the month's batch log."""
    return [
        check(TABLE, "quarantine_rate_within_bound", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_quarantine_sql(params)),
              f"Σ quarantined / Σ records of the month's batches ≤ {params.rules.max_quarantine_rate}"),
        check(TABLE, "balance_batches_complete", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_balance_days_sql(params)),
              f"every day of {params.month_label} has a LOADED CBS_BALANCE batch"),
    ]
