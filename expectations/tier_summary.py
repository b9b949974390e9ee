"""Expectations on `main_marts.tier_summary` for the candidate month (one row per rule set and tier)."""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations import BLOCKING, WARNING, Check, GateParams, check, lit, no_pii_columns, rank_ladder_cte

TABLE = "tier_summary"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"

# share_of_customers is DECIMAL(9,6): per-tier rounding may leave the total this far from 1 per tier.
SHARE_ROUNDING = "0.000001"


def _counts_sql(params: GateParams) -> str:
    """(rule set, tier) whose customer / on-watch counts differ from customer_tier's rows of the month."""
    return f"""
        WITH t AS (
            SELECT rule_set, tier, count(*) AS customers,
                   count(*) FILTER (WHERE on_watch) AS on_watch_customers
            FROM main_marts.customer_tier WHERE as_of_month = {lit(params.as_of)} GROUP BY rule_set, tier
        ), s AS (SELECT rule_set, tier, customers, on_watch_customers FROM {{batch}})
        SELECT coalesce(s.rule_set, t.rule_set) AS rule_set, coalesce(s.tier, t.tier) AS tier,
               s.customers AS summary_customers, t.customers AS customer_tier_rows,
               s.on_watch_customers AS summary_on_watch, t.on_watch_customers AS customer_tier_on_watch
        FROM s FULL OUTER JOIN t ON t.rule_set = s.rule_set AND t.tier = s.tier
        WHERE coalesce(s.customers, 0) <> coalesce(t.customers, 0)
           OR coalesce(s.on_watch_customers, 0) <> coalesce(t.on_watch_customers, 0)
    """


def _ladder_listed_sql(params: GateParams) -> str:
    """Ladder tiers of the rules missing from the month's summary (tiers with no customer must show 0)."""
    return f"""
        WITH {rank_ladder_cte(params.rules)}
        SELECT l.rule_set, l.tier FROM rank_ladder AS l
        LEFT JOIN {{batch}} AS s ON s.rule_set = l.rule_set AND s.tier = l.tier
        WHERE s.tier IS NULL
    """


def _shares_sql(params: GateParams) -> str:
    """Rule sets whose shares of customers do not add up to 1."""
    return f"""
        SELECT rule_set, CAST(sum(share_of_customers) AS VARCHAR) AS total_share, count(*) AS tiers
        FROM {{batch}} GROUP BY rule_set
        HAVING sum(customers) > 0
           AND abs(sum(share_of_customers) - 1) > count(*) * CAST('{SHARE_ROUNDING}' AS DECIMAL(9, 6))
    """


def checks(params: GateParams) -> list[Check]:
    """Every expectation on tier_summary for the month `params.as_of`."""
    return [
        check(TABLE, "one_row_per_month_rule_set_tier", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["as_of_month", "rule_set", "tier"]),
              "one row per (as_of_month, rule_set, tier)"),
        check(TABLE, "counts_match_customer_tier", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_counts_sql(params)),
              "customers and on_watch_customers per rule set and tier = customer_tier rows of the month"),
        no_pii_columns(TABLE, SCHEMA),
        check(TABLE, "every_ladder_tier_listed", WARNING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_ladder_listed_sql(params)),
              "every tier of every ladder in the rules has a row (count 0 when empty)"),
        check(TABLE, "shares_add_up_to_one", WARNING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_shares_sql(params)),
              "share_of_customers adds up to 1 per rule set (± rounding)"),
    ]
