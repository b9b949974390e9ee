"""Expectations on the confidential `main_marts.aml_trigger_transactions` (one row per trigger and txn).

Included only when the table exists in the candidate.
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations import BLOCKING, Check, GateParams, check, dialect, lit, lit_list, no_pii_columns
from expectations.aml_customer_risk import _trigger_list
from expectations.classifications import has

TABLE = "aml_trigger_transactions"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"

TXN_TRIGGERS = ("CASH_LARGE", "CROSS_BORDER_TOTAL", "HIGH_RISK_COUNTRY")


def checks(params: GateParams) -> list[Check]:
    if not has(params, TABLE, "as_of_month", "cust_id", "trigger", "txn_id"):
        return []
    found = [
        check(TABLE, "one_row_per_trigger_txn", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["as_of_month", "trigger", "txn_id"]),
              "one row per (as_of_month, trigger, txn_id)"),
        check(TABLE, "trigger_known", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="trigger", value_set=list(TXN_TRIGGERS)),
              f"trigger is one of {', '.join(TXN_TRIGGERS)}"),
        no_pii_columns(params, TABLE, SCHEMA),
    ]
    if has(params, "aml_customer_risk", "aml_triggers"):
        found.append(check(TABLE, "agrees_with_aml_customer_risk", BLOCKING,
                           gxe.UnexpectedRowsExpectation(unexpected_rows_query=f"""
            WITH t AS (SELECT DISTINCT cust_id, trigger FROM {{batch}}),
            r AS (
                SELECT a.cust_id, {dialect.unnest(params.engine, _trigger_list('a.aml_triggers'))} AS trigger
                FROM main_marts.aml_customer_risk AS a WHERE a.as_of_month = {lit(params.as_of)}
            ), rt AS (SELECT cust_id, trim(trigger) AS trigger FROM r
                      WHERE trim(trigger) IN ({lit_list(TXN_TRIGGERS)}))
            SELECT coalesce(t.cust_id, rt.cust_id) AS cust_id, coalesce(t.trigger, rt.trigger) AS trigger,
                   t.cust_id IS NOT NULL AS has_transactions, rt.cust_id IS NOT NULL AS in_aml_triggers
            FROM t FULL OUTER JOIN rt ON rt.cust_id = t.cust_id AND rt.trigger = t.trigger
            WHERE t.cust_id IS NULL OR rt.cust_id IS NULL
        """), "a transaction trigger is in the customer's aml_triggers exactly when it has transaction rows"))
    aml = getattr(params.rules, "aml", None)
    if aml is not None and has(params, TABLE, "amount_cny", "counterparty_country"):
        found.append(check(TABLE, "transactions_meet_their_trigger", BLOCKING,
                           gxe.UnexpectedRowsExpectation(unexpected_rows_query=f"""
            SELECT cust_id, trigger, txn_id, CAST(amount_cny AS STRING) AS amount_cny, counterparty_country
            FROM {{batch}}
            WHERE (trigger = 'CASH_LARGE' AND NOT coalesce(amount_cny >= {lit(aml.cash_single_min_cny)}, FALSE))
               OR (trigger = 'HIGH_RISK_COUNTRY'
                   AND NOT coalesce(counterparty_country IN ({lit_list(aml.high_risk_countries)}), FALSE))
               OR (trigger = 'CROSS_BORDER_TOTAL' AND txn_type NOT IN ({lit_list(aml.cross_border_txn_types)}))
        """), f"CASH_LARGE rows ≥ {aml.cash_single_min_cny} CNY; HIGH_RISK_COUNTRY rows to a listed country; "
                   "CROSS_BORDER_TOTAL rows are cross-border types"))
    return found
