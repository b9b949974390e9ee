"""Expectations on `main_marts.customer_segment` for the candidate month (one row per customer)."""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations import (
    BLOCKING,
    CORPORATE_RULE_SET,
    MEASURE_COLUMNS,
    PII_COLUMNS,
    ROUNDING_CNY,
    TIER_CHANGES,
    WARNING,
    Check,
    GateParams,
    check,
    classifications,
    corporate_ladder_cte,
    lit,
    lit_list,
    no_pii_columns,
    rank_ladder_cte,
    retail_ladder_cte,
    segment_rule_set_sql,
    tier_overrides,
)
from flows.rules import CUST_TYPES

TABLE = "customer_segment"
SCHEMA = "main_marts"
MONTH_COLUMN = "as_of_month"


def reference_queries(params: GateParams) -> dict[str, str]:
    """Figures computed straight from raw (independently of dbt) that the checks compare against."""
    return {
        **classifications.reference_queries(params),
        # A customer is tiered in M when its month-end snapshot has status A or D.
        "eligible_customers": f"""
            SELECT count(DISTINCT cust_id) FROM ({customers_at(params.as_of)})
            WHERE status IN ('A', 'D')
        """,
    }


def customers_at(day: date) -> str:
    """SQL of the customer master as delivered for `day`, straight from the raw zone's change history."""
    return f"""
        SELECT * FROM raw.cbs_customer_versions
        WHERE valid_from <= {lit(day)} AND (valid_to IS NULL OR valid_to > {lit(day)})"""


def _aum_reconciliation_sql(params: GateParams) -> str:
    """Rows when Σ avg_daily_aum_cny of the month differs from raw balances × FX ÷ days by > n × 0.005."""
    rules, days = params.rules, params.days
    return f"""
        WITH eligible AS (
            SELECT DISTINCT cust_id FROM ({customers_at(params.as_of)}) WHERE status IN ('A', 'D')
        ), accounts AS (
            -- The month's latest version of each account: accounts closed during the month still count.
            SELECT acct_id, max_by(cust_id, valid_from) AS cust_id,
                   max_by(product_type, valid_from) AS product_type
            FROM raw.cbs_account_versions
            WHERE valid_from <= {lit(params.as_of)} AND (valid_to IS NULL OR valid_to > {lit(params.month_start)})
            GROUP BY acct_id
        ), balances AS (
            -- The month's batches: ingestion keeps one balance per account and batch, dated the batch date.
            SELECT acct_id, bal_date, balance, currency
            FROM raw.cbs_balance WHERE batch_date BETWEEN {lit(params.month_start)} AND {lit(params.as_of)}
        ), rates AS (
            SELECT currency, rate_date, max_by(cny_per_unit, batch_date) AS cny_per_unit FROM raw.cbs_fx_rate
            WHERE batch_date BETWEEN {lit(params.month_start)} AND {lit(params.as_of)}
              AND rate_date BETWEEN {lit(params.month_start)} AND {lit(params.as_of)}
            GROUP BY currency, rate_date
        ), aum_accounts AS (
            SELECT a.acct_id FROM accounts AS a JOIN eligible AS e ON e.cust_id = a.cust_id
            WHERE a.product_type IN ({lit_list(rules.aum_product_types)})
        ), day_sums AS (
            -- Σ balance per day and currency first (exact: Σ balance × rate = rate × Σ balance), so the
            -- month's tens of millions of balances are summed, not multiplied one by one.
            SELECT b.bal_date, b.currency, sum(b.balance) AS balance_sum
            FROM balances AS b SEMI JOIN aum_accounts AS a ON a.acct_id = b.acct_id
            GROUP BY b.bal_date, b.currency
        ), raw_total AS (
            -- DECIMAL(19, 2) × the rate's DECIMAL(18, 6) fits DECIMAL(38, 8), so the product is exact on both
            -- engines (Spark rounds a product wider than 38 digits to 6 places; 10^17 CNY a day is ample).
            SELECT
                coalesce(sum(CAST(d.balance_sum AS DECIMAL(19, 2))
                             * CASE WHEN d.currency = 'CNY' THEN 1 ELSE r.cny_per_unit END), 0)
                    AS aum_days_cny,
                count(*) FILTER (WHERE d.currency <> 'CNY' AND r.cny_per_unit IS NULL)
                    AS balances_without_rate
            FROM day_sums AS d
            LEFT JOIN rates AS r ON r.currency = d.currency AND r.rate_date = d.bal_date
        ), marts AS (
            SELECT count(*) AS customers,
                   coalesce(sum(CAST(avg_daily_aum_cny AS DECIMAL(38, 2))), 0) AS aum_cny
            FROM {{batch}}
        )
        SELECT CAST(m.aum_cny AS STRING) AS marts_total_cny,
               CAST(round(r.aum_days_cny / {days}, 4) AS STRING) AS raw_total_cny,
               CAST(m.customers * {lit(ROUNDING_CNY)} AS STRING) AS tolerance_cny,
               r.balances_without_rate AS day_currencies_without_rate
        FROM marts AS m CROSS JOIN raw_total AS r
        WHERE abs(m.aum_cny * {days} - r.aum_days_cny) > m.customers * {lit(ROUNDING_CNY)} * {days}
           OR r.balances_without_rate > 0
    """


def _retail_floor_sql(params: GateParams) -> str:
    """Retail rows whose implied tier's floor/next floor do not bracket the active rule set's measure."""
    rules = params.rules
    measure = MEASURE_COLUMNS[rules.active.measure]
    return f"""
        WITH {retail_ladder_cte(rules)}
        SELECT s.cust_id, s.implied_tier, CAST(s.{measure} AS STRING) AS measure_cny,
               CAST(l.floor_cny AS STRING) AS floor_cny, CAST(l.next_floor_cny AS STRING) AS next_floor_cny
        FROM {{batch}} AS s
        JOIN retail_ladder AS l ON l.rule_set = {lit(rules.active_rule_set)} AND l.tier = s.implied_tier
        WHERE s.cust_type = 'P'
          AND (s.{measure} IS NULL
               OR s.{measure} + {lit(ROUNDING_CNY)} < l.floor_cny
               OR s.{measure} - {lit(ROUNDING_CNY)} >= l.next_floor_cny)
    """


def _corporate_floor_sql(params: GateParams) -> str:
    """C/I/F rows whose implied tier is not the highest reached by deposits or loans."""
    rules = params.rules
    return f"""
        WITH {corporate_ladder_cte(rules)}, rows AS (
            SELECT s.cust_id, s.implied_tier, coalesce(s.avg_daily_deposit_cny, 0) AS deposits,
                   coalesce(s.loan_outstanding_cny, 0) AS loans, l.*
            FROM {{batch}} AS s JOIN corporate_ladder AS l ON l.tier = s.implied_tier
            WHERE s.cust_type IN ({lit_list(rules.corporate_cust_types)})
        )
        SELECT cust_id, implied_tier, CAST(deposits AS STRING) AS deposits_cny,
               CAST(loans AS STRING) AS loans_cny
        FROM rows
        WHERE NOT (deposits + {lit(ROUNDING_CNY)} >= deposit_floor_cny
                   OR loans + {lit(ROUNDING_CNY)} >= loan_floor_cny)
           OR coalesce(deposits - {lit(ROUNDING_CNY)} >= next_deposit_floor_cny
                       OR loans - {lit(ROUNDING_CNY)} >= next_loan_floor_cny, FALSE)
    """


def _watch_sql(params: GateParams) -> str:
    """Rows whose watch flag disagrees with held vs implied tier (held > implied only on watch)."""
    rules = params.rules
    ladder = segment_rule_set_sql(rules)
    # An overridden value tier is not the computed one: customer_tier's watch check covers those customers.
    override_free = "s.override_id IS NULL" if classifications.has(params, TABLE, "override_id") else "TRUE"
    return f"""
        WITH {rank_ladder_cte(rules)}
        SELECT s.cust_id, s.value_tier, s.implied_tier, s.on_watch, s.months_below
        FROM {{batch}} AS s
        JOIN rank_ladder AS v ON v.rule_set = {ladder} AND v.tier = s.value_tier
        JOIN rank_ladder AS i ON i.rule_set = {ladder} AND i.tier = s.implied_tier
        WHERE ({override_free}) AND (s.on_watch IS NULL
           OR (s.on_watch AND NOT (v.tier_rank > i.tier_rank
                                   AND s.months_below BETWEEN 1 AND coalesce(v.grace_months, 1) - 1))
           OR (NOT s.on_watch AND (v.tier_rank <> i.tier_rank OR coalesce(s.months_below, 0) <> 0)))
    """


def _masking_sql(params: GateParams) -> str:
    """Customers whose masked columns equal the raw value or lack the mask char (reports field names only)."""
    rules = params.rules
    mask = lit(rules.mask_char)
    conditions = []
    for field in PII_COLUMNS:
        first, last = rules.masking[field]
        masked, raw = f"s.{field}_masked", f"c.{field}"
        conditions.append(
            f"CASE WHEN {raw} IS NOT NULL AND length({raw}) > {first + last} "
            f"AND ({masked} = {raw} OR NOT contains(coalesce({masked}, ''), {mask})) THEN {lit(field)} END")
    return f"""
        SELECT s.cust_id, concat_ws(', ', {', '.join(conditions)}) AS unmasked_fields
        FROM {{batch}} AS s
        JOIN ({customers_at(params.as_of)}) AS c ON c.cust_id = s.cust_id
        WHERE concat_ws(', ', {', '.join(conditions)}) <> ''
    """


def checks(params: GateParams) -> list[Check]:
    """Every expectation on customer_segment for the month `params.as_of`."""
    rules = params.rules
    active = [t.code for t in rules.active.tiers]
    corporate = [t.code for t in rules.corporate_tiers]
    retail = Column("cust_type") == "P"
    corp = Column("cust_type").is_in(list(rules.corporate_cust_types))
    eligible = params.reference.get("eligible_customers")
    corp_label = "/".join(rules.corporate_cust_types)
    found: list[Check] = [
        check(TABLE, "one_row_per_customer_month", BLOCKING,
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["cust_id", "as_of_month"]),
              "one row per (cust_id, as_of_month)"),
    ]
    for column in ("cust_id", "cust_type", "value_tier", "implied_tier", "avg_daily_aum_cny", "on_watch"):
        found.append(check(TABLE, f"{column}_not_null", BLOCKING,
                           gxe.ExpectColumnValuesToNotBeNull(column=column), f"{column} is never NULL"))
    found += [
        check(TABLE, "as_of_month_is_month_end", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="as_of_month", value_set=[params.as_of]),
              f"as_of_month is the month's last day ({params.as_of})"),
        check(TABLE, "cust_type_known", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="cust_type", value_set=list(CUST_TYPES)),
              f"cust_type is one of {', '.join(CUST_TYPES)}"),
        check(TABLE, "retail_value_tier_in_ladder", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="value_tier", value_set=active, row_condition=retail),
              f"retail value_tier is a tier of {rules.active_rule_set}"),
        check(TABLE, "retail_implied_tier_in_ladder", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="implied_tier", value_set=active, row_condition=retail),
              f"retail implied_tier is a tier of {rules.active_rule_set}"),
        check(TABLE, "corporate_value_tier_in_ladder", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="value_tier", value_set=corporate, row_condition=corp),
              f"{corp_label} value_tier is a tier of the {CORPORATE_RULE_SET} ladder"),
        check(TABLE, "corporate_implied_tier_in_ladder", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="implied_tier", value_set=corporate, row_condition=corp),
              f"{corp_label} implied_tier is a tier of the {CORPORATE_RULE_SET} ladder"),
        check(TABLE, "rules_version_matches_rules_file", BLOCKING,
              gxe.ExpectColumnValuesToBeInSet(column="rules_version", value_set=[rules.version]),
              f"rows were built with rules version {rules.version}"),
        check(TABLE, "avg_daily_aum_not_negative", BLOCKING,
              gxe.ExpectColumnValuesToBeBetween(column="avg_daily_aum_cny", min_value=0),
              "avg_daily_aum_cny ≥ 0"),
        check(TABLE, "retail_implied_tier_matches_measure", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_retail_floor_sql(params)),
              f"retail: floor(implied) ≤ {MEASURE_COLUMNS[rules.active.measure]} < next floor "
              f"(± {ROUNDING_CNY} for cent rounding)"),
        check(TABLE, "corporate_implied_tier_matches_deposits_or_loans", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_corporate_floor_sql(params)),
              "corporate: implied tier is the highest whose deposit or loan floor is reached"),
        check(TABLE, "watch_flag_consistent", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_watch_sql(params)),
              "on watch: value tier above implied and 1 ≤ months_below < grace; otherwise equal and 0"),
        check(TABLE, "row_count_equals_eligible_customers", BLOCKING,
              gxe.ExpectTableRowCountToEqual(value=eligible if eligible is not None else 0),
              f"rows of {params.month_label} = customers with status A/D in the raw customer master "
              f"at {params.as_of}"
              + (f" ({eligible})" if eligible is not None else ""),
              skip_reason=None if eligible is not None else
              f"eligible customers not computed from raw: "
              f"{params.reference_errors.get('eligible_customers')}"),
        check(TABLE, "total_aum_reconciles_with_raw_balances", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_aum_reconciliation_sql(params)),
              f"Σ avg_daily_aum_cny = Σ raw AUM balances × FX ÷ {params.days} days, "
              f"within n × {ROUNDING_CNY} CNY"),
        check(TABLE, "pii_masked", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_masking_sql(params)),
              f"masked columns contain '{rules.mask_char}' and never equal the raw value"),
        no_pii_columns(params, TABLE, SCHEMA),
        check(TABLE, "on_watch_share", WARNING,
              gxe.ExpectColumnValuesToBeInSet(column="on_watch", value_set=[False],
                                              mostly=1 - float(rules.warn_on_watch_share)),
              f"at most {rules.warn_on_watch_share:.0%} of customers on watch"),
        check(TABLE, "downgrade_share", WARNING,
              gxe.ExpectColumnValuesToNotBeInSet(column="tier_change", value_set=["DOWN"],
                                                 mostly=1 - float(rules.warn_downgrade_share)),
              f"at most {rules.warn_downgrade_share:.0%} of customers downgraded this month"),
        check(TABLE, "tier_change_known", WARNING,
              gxe.ExpectColumnValuesToBeInSet(column="tier_change", value_set=list(TIER_CHANGES)),
              f"tier_change is one of {', '.join(TIER_CHANGES)}"),
        check(TABLE, "effective_from_next_month", WARNING,
              gxe.ExpectColumnValuesToBeInSet(column="effective_from", value_set=[params.next_month_start]),
              f"the evaluation takes effect on {params.next_month_start}"),
    ]
    found += classifications.checks(params)  # issue-3 columns, when the candidate has them
    found += tier_overrides.checks(params)  # tier overrides (特批), against the run's copy of the override log
    return found
