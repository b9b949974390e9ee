"""Expectations on `main_marts.tier_summary` for the candidate month (one row per rule set and tier)."""

from __future__ import annotations

from decimal import Decimal

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
        SELECT rule_set, CAST(sum(share_of_customers) AS STRING) AS total_share, count(*) AS tiers
        FROM {{batch}} GROUP BY rule_set
        HAVING sum(customers) > 0
           AND abs(sum(share_of_customers) - 1) > count(*) * CAST('{SHARE_ROUNDING}' AS DECIMAL(9, 6))
    """


def reference_queries(params: GateParams) -> dict[str, str]:
    """Customers in the drift baseline month's summary (0: no previous month to compare with)."""
    return {
        "drift_baseline_customers": f"""
            SELECT coalesce(sum(customers), 0) FROM main_marts.tier_summary
            WHERE as_of_month = DATE '{params.drift_baseline_month.isoformat()}'
        """,
    }


def _drift_sql(params: GateParams, bound: Decimal) -> str:
    """(rule set, tier) whose share of the rule set's customers moved by more than `bound` since the
    baseline month; only rule sets with customers in both months (exact integer arithmetic)."""
    baseline = params.drift_baseline_month
    return f"""
        WITH cur AS (SELECT rule_set, tier, customers FROM {{batch}}),
        base AS (
            SELECT rule_set, tier, customers FROM main_marts.tier_summary WHERE as_of_month = {lit(baseline)}
        ), cur_total AS (
            SELECT rule_set, sum(customers) AS n FROM cur GROUP BY rule_set HAVING sum(customers) > 0
        ), base_total AS (
            SELECT rule_set, sum(customers) AS n FROM base GROUP BY rule_set HAVING sum(customers) > 0
        ), pairs AS (
            SELECT coalesce(c.rule_set, b.rule_set) AS rule_set, coalesce(c.tier, b.tier) AS tier,
                   coalesce(c.customers, 0) AS customers, coalesce(b.customers, 0) AS baseline_customers
            FROM cur AS c FULL OUTER JOIN base AS b ON b.rule_set = c.rule_set AND b.tier = c.tier
        )
        SELECT p.rule_set, p.tier, {lit(baseline)} AS baseline_month,
               CAST(CAST(round(p.baseline_customers / bt.n, 4) AS DECIMAL(9, 4)) AS STRING) AS baseline_share,
               CAST(CAST(round(p.customers / ct.n, 4) AS DECIMAL(9, 4)) AS STRING) AS share,
               CAST(CAST(round(p.customers / ct.n - p.baseline_customers / bt.n, 4) AS DECIMAL(9, 4)) AS STRING) AS change
        FROM pairs AS p
        JOIN cur_total AS ct ON ct.rule_set = p.rule_set
        JOIN base_total AS bt ON bt.rule_set = p.rule_set
        -- DECIMAL(38, 0): exact integers on DuckDB and Spark alike (HUGEINT is DuckDB's only).
        WHERE abs(CAST(p.customers AS DECIMAL(38, 0)) * bt.n
                  - CAST(p.baseline_customers AS DECIMAL(38, 0)) * ct.n)
              > {lit(bound)} * ct.n * bt.n
        ORDER BY abs(p.customers / ct.n - p.baseline_customers / bt.n) DESC, p.rule_set, p.tier
    """


def _drift_checks(params: GateParams) -> list[Check]:
    """Share drift per rule set and tier vs the baseline month: a warning above the warn bound, blocking
    above the block bound. No baseline month in the summary: both pass, with a note."""
    rules, baseline = params.rules, params.drift_baseline_month
    customers = params.reference.get("drift_baseline_customers")
    note = (f" — no customers in {baseline:%Y-%m}: nothing to compare, passes"
            if customers is not None and int(customers) == 0 else "")
    found = []
    for name, severity, bound in (("tier_share_drift_warn", WARNING, rules.drift_warn_share),
                                  ("tier_share_drift_block", BLOCKING, rules.drift_block_share)):
        found.append(check(TABLE, name, severity,
                           gxe.UnexpectedRowsExpectation(unexpected_rows_query=_drift_sql(params, bound)),
                           f"no tier's share of its rule set's customers moves by more than {bound} "
                           f"(absolute) vs {baseline:%Y-%m}{note}",
                           name_columns=("rule_set", "tier", "change")))
    return found


def checks(params: GateParams) -> list[Check]:
    """Every expectation on tier_summary for the month `params.as_of`."""
    return [
        check(TABLE, "one_row_per_month_rule_set_tier", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["as_of_month", "rule_set", "tier"]),
              "one row per (as_of_month, rule_set, tier)"),
        check(TABLE, "counts_match_customer_tier", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_counts_sql(params)),
              "customers and on_watch_customers per rule set and tier = customer_tier rows of the month"),
        no_pii_columns(params, TABLE, SCHEMA),
        check(TABLE, "every_ladder_tier_listed", WARNING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_ladder_listed_sql(params)),
              "every tier of every ladder in the rules has a row (count 0 when empty)"),
        check(TABLE, "shares_add_up_to_one", WARNING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_shares_sql(params)),
              "share_of_customers adds up to 1 per rule set (± rounding)"),
        *_drift_checks(params),
    ]
