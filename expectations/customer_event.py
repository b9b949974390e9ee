"""Expectations on `main_marts.customer_event` (the CRM change feed) for the candidate month."""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations import BLOCKING, Check, GateParams, check, lit, no_pii_columns
from expectations.classifications import has

TABLE = "customer_event"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"
EVENT_TYPES = ("NEW", "TIER_UP", "TIER_DOWN", "WATCH_START", "CHURN_WARNING", "CLASS_CHANGE", "OVERRIDE_START",
               "OVERRIDE_END", "OVERRIDE_ENDING_NEXT_MONTH")


def _tier_changes_sql(params: GateParams) -> str:
    """Customers new this month or whose published tier changed since the previous evaluated month, against
    the feed's NEW / TIER_UP / TIER_DOWN rows: each change exactly once, with its from and to tier."""
    month = lit(params.as_of)
    return f"""
        WITH cur AS (
            SELECT cust_id, value_tier FROM main_marts.customer_segment WHERE as_of_month = {month}
        ), prev AS (
            SELECT cust_id, value_tier FROM main_marts.customer_segment
            WHERE as_of_month = (SELECT max(as_of_month) FROM main_marts.customer_segment
                                 WHERE as_of_month < {month})
        ), expected AS (
            SELECT cur.cust_id, prev.value_tier AS from_value, cur.value_tier AS to_value
            FROM cur LEFT JOIN prev ON prev.cust_id = cur.cust_id
            WHERE prev.cust_id IS NULL OR prev.value_tier <> cur.value_tier
        ), feed AS (
            SELECT cust_id, from_value, to_value, count(*) OVER (PARTITION BY cust_id) AS events
            FROM {{batch}} WHERE event_type IN ('NEW', 'TIER_UP', 'TIER_DOWN')
        )
        SELECT coalesce(e.cust_id, f.cust_id) AS cust_id, e.from_value AS published_from,
               e.to_value AS published_to, f.from_value AS feed_from, f.to_value AS feed_to, f.events
        FROM expected AS e FULL OUTER JOIN feed AS f ON f.cust_id = e.cust_id
        WHERE e.cust_id IS NULL OR f.cust_id IS NULL OR f.events > 1
           OR e.from_value IS DISTINCT FROM f.from_value OR e.to_value IS DISTINCT FROM f.to_value
    """


def checks(params: GateParams) -> list[Check]:
    if not has(params, TABLE, "as_of_month", "cust_id", "event_type"):
        return []
    return [
        check(TABLE, "one_row_per_customer_event", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["as_of_month", "cust_id", "event_type"]),
              "one row per (as_of_month, cust_id, event_type)"),
        check(TABLE, "event_type_known", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
              f"event_type is one of {', '.join(EVENT_TYPES)}"),
        check(TABLE, "tier_changes_match_customer_segment", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_tier_changes_sql(params)),
              "every customer new this month or whose published tier changed has exactly one NEW / TIER_UP / "
              "TIER_DOWN row with its tiers, and no other customer has one", name_columns=("cust_id",)),
        no_pii_columns(params, TABLE, SCHEMA),
    ]
