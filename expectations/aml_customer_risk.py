"""Expectations on the confidential `main_marts.aml_customer_risk` (one row per customer and month).

Included only when the table exists in the candidate (builds before issue 3 have none); the AML marts are
gated with the rest and released to `restricted/aml.duckdb` (never to published.duckdb).
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations import BLOCKING, Check, GateParams, check, dialect, lit, lit_list, no_pii_columns
from expectations.classifications import has

TABLE = "aml_customer_risk"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"

AML_LEVELS = ("LOW", "MEDIUM", "HIGH")
# Triggers that make a customer HIGH by themselves; KYC_MEDIUM makes it MEDIUM.
HIGH_TRIGGERS = ("KYC_HIGH", "CASH_LARGE", "CROSS_BORDER_TOTAL", "HIGH_RISK_COUNTRY")
MEDIUM_TRIGGERS = ("KYC_MEDIUM",)
TRIGGERS = ("KYC_HIGH", "KYC_MEDIUM", "CASH_LARGE", "CROSS_BORDER_TOTAL", "HIGH_RISK_COUNTRY")


def _trigger_list(column: str) -> str:
    """SQL: the comma-separated triggers as a list without blanks (split: a plain comma is the same
    separator to DuckDB's split and Spark's regular expression)."""
    return f"filter(split(coalesce({column}, ''), ','), x -> trim(x) <> '')"


def checks(params: GateParams) -> list[Check]:
    if not has(params, TABLE, "as_of_month", "cust_id", "aml_level", "aml_triggers"):
        return []
    triggers = _trigger_list("a.aml_triggers")
    engine = params.engine
    unknown = f"filter({triggers}, x -> trim(x) NOT IN ({lit_list(TRIGGERS)}))"
    distinct = f"array_distinct({triggers})"
    high = dialect.arrays_overlap(engine, triggers, dialect.array_of(engine, lit_list(HIGH_TRIGGERS)))
    medium = dialect.arrays_overlap(engine, triggers, dialect.array_of(engine, lit_list(MEDIUM_TRIGGERS)))
    return [
        check(TABLE, "one_row_per_customer_month", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["cust_id", "as_of_month"]),
              "one row per (cust_id, as_of_month)"),
        check(TABLE, "aml_level_known", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="aml_level", value_set=list(AML_LEVELS)),
              f"aml_level is one of {', '.join(AML_LEVELS)}"),
        check(TABLE, "aml_level_not_null", BLOCKING, gxe.ExpectColumnValuesToNotBeNull(column="aml_level"),
              "aml_level is never NULL"),
        check(TABLE, "triggers_known", BLOCKING, gxe.UnexpectedRowsExpectation(unexpected_rows_query=f"""
            SELECT a.cust_id, a.aml_triggers FROM (SELECT * FROM {{batch}}) AS a
            WHERE {dialect.array_size(engine, unknown)} > 0
               OR {dialect.array_size(engine, triggers)} <> {dialect.array_size(engine, distinct)}
        """), f"aml_triggers lists distinct codes of {', '.join(TRIGGERS)}"),
        check(TABLE, "level_follows_triggers", BLOCKING, gxe.UnexpectedRowsExpectation(unexpected_rows_query=f"""
            SELECT a.cust_id, a.aml_level, a.aml_triggers FROM (SELECT * FROM {{batch}}) AS a
            WHERE a.aml_level IS DISTINCT FROM CASE
                WHEN {high} THEN 'HIGH'
                WHEN {medium} THEN 'MEDIUM'
                ELSE 'LOW' END
        """), f"HIGH iff a trigger of {', '.join(HIGH_TRIGGERS)} fired; else MEDIUM iff KYC_MEDIUM; else LOW"),
        check(TABLE, "customers_match_customer_segment", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=f"""
            WITH s AS (SELECT cust_id FROM main_marts.customer_segment WHERE as_of_month = {lit(params.as_of)}),
            a AS (SELECT DISTINCT cust_id FROM {{batch}})
            SELECT coalesce(s.cust_id, a.cust_id) AS cust_id, s.cust_id IS NOT NULL AS in_customer_segment,
                   a.cust_id IS NOT NULL AS in_aml_customer_risk
            FROM s FULL OUTER JOIN a ON a.cust_id = s.cust_id
            WHERE s.cust_id IS NULL OR a.cust_id IS NULL
        """), "one AML row for every customer of the month's customer_segment, and no other"),
        no_pii_columns(params, TABLE, SCHEMA),
    ]
