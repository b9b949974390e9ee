"""Expectations on `main_marts.customer_tier` for the candidate month (one row per customer and rule set)."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations import (
    BLOCKING,
    CORPORATE_RULE_SET,
    ROUNDING_CNY,
    Check,
    GateParams,
    check,
    lit,
    no_pii_columns,
    rank_ladder_cte,
    retail_ladder_cte,
)
from expectations.classifications import has

TABLE = "customer_tier"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"


def _floor_sql(params: GateParams) -> str:
    """Retail rows whose implied tier's floor/next floor do not bracket the rule set's measure value."""
    return f"""
        WITH {retail_ladder_cte(params.rules)}
        SELECT t.cust_id, t.rule_set, t.implied_tier, CAST(t.measure_value_cny AS STRING) AS measure_cny,
               CAST(l.floor_cny AS STRING) AS floor_cny, CAST(l.next_floor_cny AS STRING) AS next_floor_cny
        FROM {{batch}} AS t
        JOIN retail_ladder AS l ON l.rule_set = t.rule_set AND l.tier = t.implied_tier
        WHERE t.measure_value_cny IS NULL
           OR t.measure_value_cny + {lit(ROUNDING_CNY)} < l.floor_cny
           OR t.measure_value_cny - {lit(ROUNDING_CNY)} >= l.next_floor_cny
    """


def _watch_sql(params: GateParams) -> str:
    """Rows whose watch flag disagrees with held vs implied tier, or whose tier_rank is not the ladder's."""
    return f"""
        WITH {rank_ladder_cte(params.rules)}
        SELECT t.cust_id, t.rule_set, t.tier, t.tier_rank, t.implied_tier, t.on_watch, t.months_below
        FROM {{batch}} AS t
        JOIN rank_ladder AS v ON v.rule_set = t.rule_set AND v.tier = t.tier
        JOIN rank_ladder AS i ON i.rule_set = t.rule_set AND i.tier = t.implied_tier
        WHERE t.on_watch IS NULL
           OR t.tier_rank IS DISTINCT FROM v.tier_rank
           OR (t.on_watch AND NOT (v.tier_rank > i.tier_rank
                                   AND t.months_below BETWEEN 1 AND coalesce(v.grace_months, 1) - 1))
           OR (NOT t.on_watch AND (v.tier_rank <> i.tier_rank OR coalesce(t.months_below, 0) <> 0))
    """


def _segment_agreement_sql(params: GateParams) -> str:
    """Missing rule-set rows, rows of customers not in the segment, or a primary tier that differs."""
    rules = params.rules
    expected = [f"({lit(name)}, 'P', {lit(name == rules.active_rule_set)})" for name in rules.rule_sets]
    expected += [f"({lit(CORPORATE_RULE_SET)}, {lit(t)}, TRUE)" for t in rules.corporate_cust_types]
    # An overridden value tier differs from the computed one by design (the override checks cover it).
    override = "override_id" if has(params, "customer_segment", "override_id") else "CAST(NULL AS STRING)"
    return f"""
        WITH seg AS (
            SELECT cust_id, cust_type, value_tier, implied_tier, {override} AS override_id
            FROM main_marts.customer_segment
            WHERE as_of_month = {lit(params.as_of)}
        ), rule_sets(rule_set, cust_type, is_primary) AS (VALUES {', '.join(expected)}),
        expected AS (
            SELECT seg.*, rs.rule_set, rs.is_primary
            FROM seg JOIN rule_sets AS rs ON rs.cust_type = seg.cust_type
        ), t AS (SELECT cust_id, rule_set, tier, implied_tier FROM {{batch}})
        SELECT coalesce(e.cust_id, t.cust_id) AS cust_id, coalesce(e.rule_set, t.rule_set) AS rule_set,
               CASE WHEN t.cust_id IS NULL THEN 'missing in customer_tier'
                    WHEN e.cust_id IS NULL THEN 'not expected from customer_segment'
                    ELSE 'tier differs from customer_segment' END AS problem
        FROM expected AS e FULL OUTER JOIN t ON t.cust_id = e.cust_id AND t.rule_set = e.rule_set
        WHERE t.cust_id IS NULL OR e.cust_id IS NULL
           OR (e.is_primary AND ((e.override_id IS NULL AND e.value_tier IS DISTINCT FROM t.tier)
                                 OR e.implied_tier IS DISTINCT FROM t.implied_tier))
    """


def checks(params: GateParams) -> list[Check]:
    """Every expectation on customer_tier for the month `params.as_of`."""
    rules = params.rules
    found: list[Check] = [
        check(TABLE, "one_row_per_customer_month_rule_set", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["cust_id", "as_of_month", "rule_set"]),
              "one row per (cust_id, as_of_month, rule_set)"),
    ]
    for column in ("cust_id", "rule_set", "tier", "implied_tier", "measure_value_cny", "on_watch"):
        found.append(check(TABLE, f"{column}_not_null", BLOCKING,
                           gxe.ExpectColumnValuesToNotBeNull(column=column), f"{column} is never NULL"))
    names = [*rules.rule_sets, CORPORATE_RULE_SET]
    found.append(check(TABLE, "rule_set_known", BLOCKING,
                       gxe.ExpectColumnValuesToBeInSet(column="rule_set", value_set=names),
                       f"rule_set is one of {', '.join(names)}"))
    ladders = {name: [t.code for t in rs.tiers] for name, rs in rules.rule_sets.items()}
    ladders[CORPORATE_RULE_SET] = [t.code for t in rules.corporate_tiers]
    for name, codes in ladders.items():
        for column in ("tier", "implied_tier"):
            found.append(check(
                TABLE, f"{name}_{column}_in_ladder", BLOCKING,
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=codes,
                                                row_condition=Column("rule_set") == name),
                f"{name} rows: {column} is one of {', '.join(codes)}"))
    found += [
        check(TABLE, "measure_not_negative", BLOCKING,
              gxe.ExpectColumnValuesToBeBetween(column="measure_value_cny", min_value=0),
              "measure_value_cny ≥ 0"),
        check(TABLE, "retail_implied_tier_matches_measure", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_floor_sql(params)),
              f"retail rule sets ({', '.join(rules.rule_sets)}): floor(implied) ≤ measure < next floor "
              f"(± {ROUNDING_CNY})"),
        check(TABLE, "watch_flag_consistent", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_watch_sql(params)),
              "tier_rank is the ladder's; on watch: tier above implied and 1 ≤ months_below < grace; "
              "otherwise equal and 0"),
        check(TABLE, "agrees_with_customer_segment", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_segment_agreement_sql(params)),
              "one row per applicable rule set for every customer_segment row; the active/corporate row "
              "has the segment's value and implied tier"),
        no_pii_columns(params, TABLE, SCHEMA),
    ]
    return found
