"""Expectations on `main_marts.tier_migration` for the candidate month (from-tier → to-tier counts)."""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations import BLOCKING, WARNING, Check, GateParams, check, lit, no_pii_columns

TABLE = "tier_migration"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"


def _duplicates_sql(params: GateParams) -> str:
    """(rule set, from, to) listed twice; GROUP BY treats the NULL from-tier of new customers as one value."""
    return """
        SELECT rule_set, from_tier, to_tier, count(*) AS rows_
        FROM {batch} GROUP BY rule_set, from_tier, to_tier HAVING count(*) > 1
    """


def _totals_sql(params: GateParams) -> str:
    """(rule set, to-tier) whose migration total differs from customer_tier's rows of the month."""
    return f"""
        WITH t AS (
            SELECT rule_set, tier, count(*) AS customers FROM main_marts.customer_tier
            WHERE as_of_month = {lit(params.as_of)} GROUP BY rule_set, tier
        ), m AS (
            SELECT rule_set, to_tier AS tier, sum(customers) AS customers FROM {{batch}}
            WHERE to_tier IS NOT NULL GROUP BY rule_set, to_tier
        )
        SELECT coalesce(m.rule_set, t.rule_set) AS rule_set, coalesce(m.tier, t.tier) AS to_tier,
               m.customers AS migration_customers, t.customers AS customer_tier_rows
        FROM m FULL OUTER JOIN t ON t.rule_set = m.rule_set AND t.tier = m.tier
        WHERE coalesce(m.customers, 0) <> coalesce(t.customers, 0)
    """


def checks(params: GateParams) -> list[Check]:
    """Every expectation on tier_migration for the month `params.as_of`."""
    return [
        check(TABLE, "one_row_per_month_rule_set_from_to", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_duplicates_sql(params)),
              "one row per (as_of_month, rule_set, from_tier, to_tier)"),
        check(TABLE, "customers_positive", BLOCKING,
              gxe.ExpectColumnValuesToBeBetween(column="customers", min_value=1),
              "only moves with customers > 0 are listed"),
        no_pii_columns(params, TABLE, SCHEMA),
        check(TABLE, "totals_match_customer_tier", WARNING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_totals_sql(params)),
              "Σ customers per rule set and to-tier = customer_tier rows of the month"),
    ]
