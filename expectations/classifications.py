"""Checks on the classification columns of `customer_segment` (run inside its suite).

The gate checks invariants, not a second implementation of the rules: each classification's rule lives in
its own dbt model (dbt_project/models/intermediate/classifications/), which also publishes its reason; the
independent re-implementation is the test suite's reference model (tests/integration/classification_reference.py).
Each check runs only when the columns it reads exist in the candidate. Code lists come from the rules file.

| check | severity |
|---|---|
| classification_columns_complete (some contract columns present, others missing) | warning |
| rfm_class_known, rfm_class_name_known, activity_level_known, value_activity_quadrant_known, | blocking |
| need_level_known, credit_grade_known, customer_class_known, rfm_<r/f/m>_score_1_to_5 | blocking |
| retail_classifications_not_null, every_customer_classified (credit grade, its reason, strategy) | blocking |
| retail_only_columns_null_for_corporate, rfm_m_equals_avg_daily_aum | blocking |
| quadrant_agrees_with_activity, reasons_agree_with_flags | blocking |
| customer_class_reason_agrees_with_class, credit_grade_reason_agrees_with_grade | blocking |
"""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations import BLOCKING, WARNING, Check, GateParams, check, dialect

TABLE = "customer_segment"

ACTIVITY_LEVELS = ("HIGH", "LOW")
CREDIT_GRADES = ("NONE", "LOW", "MEDIUM", "HIGH")
CUSTOMER_CLASSES = ("A", "B", "C")
# Retail-only columns: NULL for C/I/F rows (need_level, credit grade and strategy are for all types).
RETAIL_ONLY = ("rfm_r", "rfm_f", "rfm_m", "rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_class",
               "rfm_class_name", "activity_level", "value_activity_quadrant", "quadrant_action",
               "potential_flag", "potential_reasons", "customer_class", "churn_warning", "churn_reason",
               "customer_class_reason")
ALL_TYPES = ("need_level", "credit_grade", "service_strategy", "credit_grade_reason")
CONTRACT_COLUMNS = RETAIL_ONLY + ALL_TYPES
# Retail columns that always have a value (reasons may be NULL when the flag is false).
RETAIL_NOT_NULL = ("rfm_r", "rfm_f", "rfm_m", "rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_class",
                   "activity_level", "value_activity_quadrant", "need_level", "potential_flag",
                   "customer_class", "churn_warning", "customer_class_reason")
EVERY_TYPE_NOT_NULL = ("credit_grade", "credit_grade_reason", "service_strategy")


def reference_queries(params: GateParams) -> dict[str, str]:
    """The candidate's columns of the classification tables (which checks can run)."""
    return {
        "candidate_columns": f"""
            SELECT coalesce(string_agg(table_name || '.' || column_name, ','), '')
            FROM {dialect.catalog_columns(params.engine)}
            WHERE table_schema = 'main_marts'
              AND table_name IN ('customer_segment', 'customer_event', 'aml_customer_risk',
                                 'aml_trigger_transactions')
        """,
    }


def has(params: GateParams, table: str, *columns: str) -> bool:
    """True when the candidate has every column (or when the columns are unknown: catalogue, error)."""
    listed = params.reference.get("candidate_columns")
    if listed is None:
        return True
    present = set(str(listed).split(","))
    return all(f"{table}.{c}" in present for c in columns)


def _rows(name: str, severity: str, sql: str, description: str) -> Check:
    return check(TABLE, name, severity, gxe.UnexpectedRowsExpectation(unexpected_rows_query=sql), description)


def checks(params: GateParams) -> list[Check]:
    """The classification checks whose columns exist in the candidate."""
    rules, engine = params.rules, params.engine
    retail = Column("cust_type") == "P"
    found: list[Check] = []
    present = [c for c in CONTRACT_COLUMNS if has(params, TABLE, c)]
    if present and len(present) < len(CONTRACT_COLUMNS):
        missing = [c for c in CONTRACT_COLUMNS if c not in present]
        found.append(check(TABLE, "classification_columns_complete", WARNING,
                           gxe.ExpectColumnToExist(column=missing[0]),
                           f"every contract column is there; missing: {', '.join(missing)}"))

    sets = [
        ("rfm_class", list(rules.rfm.class_names), retail),
        ("rfm_class_name", list(rules.rfm.class_names.values()), retail),
        ("activity_level", list(ACTIVITY_LEVELS), retail),
        ("value_activity_quadrant", list(rules.quadrant.actions), retail),
        ("need_level", [level.code for level in rules.need_levels], None),
        ("credit_grade", list(CREDIT_GRADES), None),
        ("customer_class", list(CUSTOMER_CLASSES), retail),
    ]
    for column, values, condition in sets:
        if has(params, TABLE, column):
            kwargs = {"row_condition": condition} if condition is not None else {}
            found.append(check(TABLE, f"{column}_known", BLOCKING,
                               gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values, **kwargs),
                               f"{column} is one of {', '.join(values)}"))
    for letter in "rfm":
        column = f"rfm_{letter}_score"
        if has(params, TABLE, column):
            found.append(check(TABLE, f"{column}_1_to_5", BLOCKING,
                               gxe.ExpectColumnValuesToBeBetween(column=column, min_value=1, max_value=5),
                               f"{column} is between 1 and 5"))

    not_null = [c for c in RETAIL_NOT_NULL if has(params, TABLE, c)]
    if not_null:
        cond = " OR ".join(f"{c} IS NULL" for c in not_null)
        found.append(_rows("retail_classifications_not_null", BLOCKING, f"""
            SELECT cust_id FROM {{batch}} WHERE cust_type = 'P' AND ({cond})
        """, f"retail rows have {', '.join(not_null)}"))
    every_type = [c for c in EVERY_TYPE_NOT_NULL if has(params, TABLE, c)]
    if every_type:
        cond = " OR ".join(f"{c} IS NULL" for c in every_type)
        found.append(_rows("every_customer_classified", BLOCKING, f"""
            SELECT cust_id, cust_type FROM {{batch}} WHERE {cond}
        """, f"every customer has {', '.join(every_type)} (credit grade NONE without loans)"))
    retail_only = [c for c in RETAIL_ONLY if has(params, TABLE, c)]
    if retail_only:
        cond = " OR ".join(f"{c} IS NOT NULL" for c in retail_only)
        found.append(_rows("retail_only_columns_null_for_corporate", BLOCKING, f"""
            SELECT cust_id, cust_type FROM {{batch}} WHERE cust_type <> 'P' AND ({cond})
        """, f"C/I/F rows have NULL {', '.join(retail_only)}"))
    if has(params, TABLE, "rfm_m"):
        found.append(_rows("rfm_m_equals_avg_daily_aum", BLOCKING, """
            SELECT cust_id, CAST(rfm_m AS STRING) AS rfm_m, CAST(avg_daily_aum_cny AS STRING) AS avg_aum
            FROM {batch} WHERE cust_type = 'P' AND rfm_m IS DISTINCT FROM avg_daily_aum_cny
        """, "rfm_m = avg_daily_aum_cny"))
    if has(params, TABLE, "activity_level", "value_activity_quadrant"):
        quadrant_suffix = "'_' || activity_level || '_ACTIVITY'"
        found.append(_rows("quadrant_agrees_with_activity", BLOCKING, f"""
            SELECT cust_id, activity_level, value_activity_quadrant FROM {{batch}}
            WHERE cust_type = 'P' AND NOT coalesce(
                {dialect.ends_with(engine, "value_activity_quadrant", quadrant_suffix)},
                FALSE)
        """, "the quadrant's activity half is the customer's activity_level"))
    if has(params, TABLE, "potential_flag", "potential_reasons", "churn_warning", "churn_reason"):
        found.append(_rows("reasons_agree_with_flags", BLOCKING, """
            SELECT cust_id, potential_flag, potential_reasons, churn_warning, churn_reason FROM {batch}
            WHERE cust_type = 'P'
              AND ((potential_flag AND coalesce(potential_reasons, '') = '')
                   OR (churn_warning IS DISTINCT FROM (coalesce(churn_reason, '') <> '')))
        """, "a potential customer has a reason; a churn reason exactly when warned"))
    if has(params, TABLE, "customer_class", "customer_class_reason", "potential_flag"):
        reason = "customer_class_reason"
        found.append(_rows("customer_class_reason_agrees_with_class", BLOCKING, f"""
            SELECT cust_id, customer_class, customer_class_reason, potential_flag FROM {{batch}}
            WHERE cust_type = 'P' AND NOT coalesce(CASE customer_class
                WHEN 'A' THEN {dialect.starts_with(engine, reason, "'TIER_AT_LEAST='")}
                    AND contains(customer_class_reason, ',CREDIT_GRADE_IN=')
                WHEN 'B' THEN (customer_class_reason = 'POTENTIAL' AND potential_flag)
                    OR ({dialect.starts_with(engine, reason, "'TIER_AT_LEAST='")}
                        AND contains(customer_class_reason, ',CREDIT_GRADE_NOT_IN='))
                WHEN 'C' THEN {dialect.starts_with(engine, reason, "'NOT_POTENTIAL,'")} AND NOT potential_flag
                END, FALSE)
        """, "the class reason names the rule of the class (A: tier and grades; B: potential, or tier and "
             "grades; C: not potential and a missed bound)"))
    if has(params, TABLE, "credit_grade", "credit_grade_reason"):
        found.append(_rows("credit_grade_reason_agrees_with_grade", BLOCKING, f"""
            SELECT cust_id, credit_grade, credit_grade_reason FROM {{batch}}
            WHERE NOT coalesce(CASE credit_grade
                WHEN 'NONE' THEN credit_grade_reason = 'NO_LOAN'
                WHEN 'LOW' THEN {dialect.starts_with(engine, "credit_grade_reason", "'DPD_BELOW='")}
                ELSE contains(credit_grade_reason, '_AT_LEAST=')
                END, FALSE)
        """, "the credit grade reason matches the grade (NONE: no loan; LOW: below the bounds; "
             "MEDIUM/HIGH: a bound reached)"))
    return found
