"""Checks on the issue-3 classification columns of `customer_segment` (run inside its suite).

Written against the column contract in docs/ARCHITECTURE.md ("Classifications (issue 3)"). Each check is
included only when the columns it reads exist in the candidate (so the gate keeps working on builds from
before issue 3); as soon as the columns are there, the checks run. Codes, labels, tier bounds and
strategies come from the rules file when it has the classification sections, else from the contract.

| check | severity |
|---|---|
| classification_columns_complete (some contract columns present, others missing) | warning |
| rfm_class_known, activity_level_known, value_activity_quadrant_known, need_level_known, | blocking |
| credit_grade_known, customer_class_known, rfm_<r/f/m>_score_1_to_5 | blocking |
| retail_classifications_not_null, credit_grade_not_null | blocking |
| retail_only_columns_null_for_corporate, corporate_need_level_professional | blocking |
| rfm_m_equals_avg_daily_aum, rfm_class_name_matches_rules | blocking |
| rfm_class_matches_means, rfm_scores_match_ranks | blocking |
| activity_and_quadrant_follow_rules (bound, high-value tier, action text) | blocking |
| retail_professional_need_iff_min_tier | blocking |
| customer_class_follows_rules (A ⇒ tier ≥ PLATINUM and grade LOW/NONE; B; C) | blocking |
| potential_only_up_to_max_tier, churn_warning_only_from_min_tier | blocking |
| service_strategy_matches_rules | blocking |
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations import BLOCKING, WARNING, Check, GateParams, check, lit, lit_list

TABLE = "customer_segment"

# The contract's code lists (used when the rules file does not name them).
RFM_CLASSES = ("HHH", "LHH", "HLH", "LLH", "HHL", "LHL", "HLL", "LLL")
ACTIVITY_LEVELS = ("HIGH", "LOW")
QUADRANTS = ("HIGH_VALUE_HIGH_ACTIVITY", "HIGH_VALUE_LOW_ACTIVITY", "LOW_VALUE_HIGH_ACTIVITY",
             "LOW_VALUE_LOW_ACTIVITY")
NEED_LEVELS = ("BASIC", "ADVANCED", "PROFESSIONAL")
CREDIT_GRADES = ("NONE", "LOW", "MEDIUM", "HIGH")
CUSTOMER_CLASSES = ("A", "B", "C")
# Retail-only columns: NULL for C/I/F rows (need_level, credit_grade, service_strategy are for all types).
RETAIL_ONLY = ("rfm_r", "rfm_f", "rfm_m", "rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_class",
               "rfm_class_name", "activity_level", "value_activity_quadrant", "quadrant_action",
               "potential_flag", "potential_reasons", "customer_class", "churn_warning", "churn_reason")
ALL_TYPES = ("need_level", "credit_grade", "service_strategy")
CONTRACT_COLUMNS = RETAIL_ONLY + ALL_TYPES
# Retail columns that always have a value (reasons may be NULL / empty when the flag is false).
RETAIL_NOT_NULL = ("rfm_r", "rfm_f", "rfm_m", "rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_class",
                   "activity_level", "value_activity_quadrant", "need_level", "potential_flag",
                   "customer_class", "churn_warning")


def reference_queries(params: GateParams) -> dict[str, str]:
    """The candidate's columns of the classification tables (which checks can run)."""
    return {
        "candidate_columns": """
            SELECT coalesce(string_agg(table_name || '.' || column_name, ','), '')
            FROM information_schema.columns
            WHERE table_schema = 'main_marts'
              AND table_name IN ('customer_segment', 'aml_customer_risk', 'aml_trigger_transactions')
        """,
    }


def has(params: GateParams, table: str, *columns: str) -> bool:
    """True when the candidate has every column (or when the columns are unknown: catalogue, error)."""
    listed = params.reference.get("candidate_columns")
    if listed is None:
        return True
    present = set(str(listed).split(","))
    return all(f"{table}.{c}" in present for c in columns)


# --- What the rules file says (with the contract's defaults while the sections are not there) ---

def _rank(params: GateParams, code: str) -> int:
    return params.rules.active.tier(code).rank


def _opt(rules: Any, path: str, default: Any) -> Any:
    value = rules
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return default
    return value


def _rfm_names(rules: Any) -> dict[str, str] | None:
    return _opt(rules, "rfm.class_names", None)


def _tier_rank_sql(params: GateParams, alias: str = "s") -> str:
    """SQL: the rank of a retail row's value tier in the active ladder."""
    cases = " ".join(f"WHEN {lit(t.code)} THEN {t.rank}" for t in params.rules.active.tiers)
    return f"CASE {alias}.value_tier {cases} END"


def _rows(name: str, severity: str, sql: str, description: str) -> Check:
    return check(TABLE, name, severity, gxe.UnexpectedRowsExpectation(unexpected_rows_query=sql), description)


def checks(params: GateParams) -> list[Check]:
    """The classification checks whose columns exist in the candidate."""
    rules = params.rules
    retail = Column("cust_type") == "P"
    found: list[Check] = []
    present = [c for c in CONTRACT_COLUMNS if has(params, TABLE, c)]
    if present and len(present) < len(CONTRACT_COLUMNS):
        missing = [c for c in CONTRACT_COLUMNS if c not in present]
        found.append(check(TABLE, "classification_columns_complete", WARNING,
                           gxe.ExpectColumnToExist(column=missing[0]),
                           f"every contract column is there; missing: {', '.join(missing)}"))

    rfm_codes = list(_rfm_names(rules) or RFM_CLASSES)
    quadrant_actions: dict[str, str] = _opt(rules, "quadrant.actions", {}) or {}
    sets = [
        ("rfm_class", rfm_codes, retail),
        ("activity_level", list(ACTIVITY_LEVELS), retail),
        ("value_activity_quadrant", list(quadrant_actions or QUADRANTS), retail),
        ("need_level", [lv.code for lv in _opt(rules, "need_levels", ())] or list(NEED_LEVELS), None),
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
    if has(params, TABLE, "credit_grade"):
        found.append(check(TABLE, "credit_grade_not_null", BLOCKING,
                           gxe.ExpectColumnValuesToNotBeNull(column="credit_grade"),
                           "every customer has a credit grade (NONE without loans)"))
    retail_only = [c for c in RETAIL_ONLY if has(params, TABLE, c)]
    if retail_only:
        # A false flag is as good as NULL for the corporate rows' booleans? No: the contract says NULL.
        cond = " OR ".join(f"{c} IS NOT NULL" for c in retail_only)
        found.append(_rows("retail_only_columns_null_for_corporate", BLOCKING, f"""
            SELECT cust_id, cust_type FROM {{batch}} WHERE cust_type <> 'P' AND ({cond})
        """, f"C/I/F rows have NULL {', '.join(retail_only)}"))
    if has(params, TABLE, "need_level"):
        top = NEED_LEVELS[-1]
        found.append(_rows("corporate_need_level_professional", BLOCKING, f"""
            SELECT cust_id, cust_type, need_level FROM {{batch}}
            WHERE cust_type <> 'P' AND need_level IS DISTINCT FROM {lit(top)}
        """, f"every C/I/F customer is {top}"))
        need_min = next((lv.min_tier for lv in _opt(rules, "need_levels", ()) if lv.code == top), None) or "BLACK"
        found.append(_rows("retail_professional_need_iff_min_tier", BLOCKING, f"""
            SELECT cust_id, value_tier, need_level FROM (SELECT * FROM {{batch}}) AS s
            WHERE cust_type = 'P'
              AND (need_level = {lit(top)}) IS DISTINCT FROM ({_tier_rank_sql(params)} >= {_rank(params, need_min)})
        """, f"retail need_level is {top} exactly when the tier is ≥ {need_min}"))
    if has(params, TABLE, "rfm_m"):
        found.append(_rows("rfm_m_equals_avg_daily_aum", BLOCKING, """
            SELECT cust_id, CAST(rfm_m AS VARCHAR) AS rfm_m, CAST(avg_daily_aum_cny AS VARCHAR) AS avg_aum
            FROM {batch} WHERE cust_type = 'P' AND rfm_m IS DISTINCT FROM avg_daily_aum_cny
        """, "rfm_m = avg_daily_aum_cny"))
    names = _rfm_names(rules)
    if names and has(params, TABLE, "rfm_class", "rfm_class_name"):
        values = ", ".join(f"({lit(k)}, {lit(v)})" for k, v in names.items())
        found.append(_rows("rfm_class_name_matches_rules", BLOCKING, f"""
            WITH n(code, name) AS (VALUES {values})
            SELECT s.cust_id, s.rfm_class, s.rfm_class_name FROM (SELECT * FROM {{batch}}) AS s
            LEFT JOIN n ON n.code = s.rfm_class
            WHERE s.cust_type = 'P' AND s.rfm_class_name IS DISTINCT FROM n.name
        """, "rfm_class_name is the rules file's label of rfm_class"))
    if has(params, TABLE, "rfm_r", "rfm_f", "rfm_m", "rfm_class"):
        found.append(_rows("rfm_class_matches_means", BLOCKING, """
            WITH p AS (SELECT * FROM {batch} WHERE cust_type = 'P'),
            m AS (SELECT avg(rfm_r) AS r, avg(rfm_f) AS f, avg(rfm_m) AS mm FROM p)
            SELECT p.cust_id, p.rfm_class, p.rfm_r, p.rfm_f, CAST(p.rfm_m AS VARCHAR) AS rfm_m,
                   round(m.r, 4) AS mean_r, round(m.f, 4) AS mean_f, CAST(round(m.mm, 4) AS VARCHAR) AS mean_m
            FROM p CROSS JOIN m
            WHERE p.rfm_class IS DISTINCT FROM
                  (CASE WHEN p.rfm_r < m.r THEN 'H' ELSE 'L' END || CASE WHEN p.rfm_f > m.f THEN 'H' ELSE 'L' END
                   || CASE WHEN p.rfm_m > m.mm THEN 'H' ELSE 'L' END)
        """, "rfm_class letters: R < mean, F > mean, M > mean over the month's retail customers (H), else L"))
    if has(params, TABLE, "rfm_r", "rfm_f", "rfm_m", "rfm_r_score", "rfm_f_score", "rfm_m_score"):
        found.append(_rows("rfm_scores_match_ranks", BLOCKING, """
            WITH p AS (SELECT * FROM {batch} WHERE cust_type = 'P'),
            s AS (
                SELECT cust_id, rfm_r_score, rfm_f_score, rfm_m_score, count(*) OVER () AS n,
                       rank() OVER (ORDER BY rfm_r DESC) AS rr, rank() OVER (ORDER BY rfm_f) AS fr,
                       rank() OVER (ORDER BY rfm_m) AS mr
                FROM p)
            SELECT cust_id, rfm_r_score, rfm_f_score, rfm_m_score,
                   1 + (5 * (rr - 1)) // n AS want_r, 1 + (5 * (fr - 1)) // n AS want_f,
                   1 + (5 * (mr - 1)) // n AS want_m
            FROM s
            WHERE rfm_r_score IS DISTINCT FROM 1 + (5 * (rr - 1)) // n
               OR rfm_f_score IS DISTINCT FROM 1 + (5 * (fr - 1)) // n
               OR rfm_m_score IS DISTINCT FROM 1 + (5 * (mr - 1)) // n
        """, "score = 1 + floor(5 × (rank − 1) / n), rank() from worst to best over retail customers"))
    if has(params, TABLE, "rfm_f", "activity_level", "value_activity_quadrant"):
        bound = _opt(rules, "quadrant.high_activity_min_frequency", 12)
        high_value = _opt(rules, "quadrant.high_value_min_tier", "GOLD")
        action_sql = "TRUE"
        if quadrant_actions and has(params, TABLE, "quadrant_action"):
            cases = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in quadrant_actions.items())
            action_sql = f"s.quadrant_action IS NOT DISTINCT FROM (CASE s.value_activity_quadrant {cases} END)"
        found.append(_rows("activity_and_quadrant_follow_rules", BLOCKING, f"""
            SELECT s.cust_id, s.value_tier, s.rfm_f, s.activity_level, s.value_activity_quadrant
            FROM (SELECT * FROM {{batch}}) AS s
            WHERE s.cust_type = 'P' AND NOT coalesce(
                s.activity_level = CASE WHEN s.rfm_f >= {int(bound)} THEN 'HIGH' ELSE 'LOW' END
                AND s.value_activity_quadrant =
                    CASE WHEN {_tier_rank_sql(params)} >= {_rank(params, high_value)} THEN 'HIGH_VALUE'
                         ELSE 'LOW_VALUE' END || '_' || s.activity_level || '_ACTIVITY'
                AND {action_sql}, FALSE)
        """, f"activity HIGH iff rfm_f ≥ {bound}; quadrant = (tier ≥ {high_value}) × activity; action text"))
    if has(params, TABLE, "customer_class", "credit_grade", "potential_flag"):
        a_min = _opt(rules, "customer_class.a_min_tier", "PLATINUM")
        a_grades = _opt(rules, "customer_class.a_credit_grades", ("LOW", "NONE"))
        b_min = _opt(rules, "customer_class.b_min_tier", "GOLD")
        b_excluded = _opt(rules, "customer_class.b_excluded_credit_grades", ("HIGH",))
        rank = _tier_rank_sql(params)
        found.append(_rows("customer_class_follows_rules", BLOCKING, f"""
            SELECT s.cust_id, s.value_tier, s.credit_grade, s.potential_flag, s.customer_class
            FROM (SELECT * FROM {{batch}}) AS s
            WHERE s.cust_type = 'P' AND s.customer_class IS DISTINCT FROM CASE
                WHEN {rank} >= {_rank(params, a_min)} AND s.credit_grade IN ({lit_list(a_grades)}) THEN 'A'
                WHEN s.potential_flag OR ({rank} >= {_rank(params, b_min)}
                                          AND s.credit_grade NOT IN ({lit_list(b_excluded)})) THEN 'B'
                ELSE 'C' END
        """, f"class A iff tier ≥ {a_min} and credit grade in {'/'.join(a_grades)}; B: not A and (potential or "
             f"tier ≥ {b_min} and grade not {'/'.join(b_excluded)}); C otherwise"))
    if has(params, TABLE, "potential_flag"):
        max_tier = _opt(rules, "potential.max_tier", "CORE")
        reasons = ("AND (s.potential_flag IS DISTINCT FROM (coalesce(s.potential_reasons, '') <> ''))"
                   if has(params, TABLE, "potential_reasons") else "AND FALSE")
        found.append(_rows("potential_only_up_to_max_tier", BLOCKING, f"""
            SELECT s.cust_id, s.value_tier, s.potential_flag FROM (SELECT * FROM {{batch}}) AS s
            WHERE s.cust_type = 'P' AND ((s.potential_flag AND {_tier_rank_sql(params)} > {_rank(params, max_tier)})
                                         OR (TRUE {reasons}))
        """, f"potential only when tier ≤ {max_tier}, and with a reason exactly when flagged"))
    if has(params, TABLE, "churn_warning"):
        min_tier = _opt(rules, "churn.min_tier", "GOLD")
        inactive = _opt(rules, "churn.inactive_after_days", 90)
        extra = ""
        if has(params, TABLE, "churn_reason", "rfm_r"):
            extra = f"""
               OR s.churn_warning IS DISTINCT FROM (coalesce(s.churn_reason, '') <> '')
               OR (s.churn_warning AND {_tier_rank_sql(params)} >= {_rank(params, min_tier)}
                   AND (contains(coalesce(s.churn_reason, ''), 'INACTIVE') IS DISTINCT FROM (s.rfm_r > {int(inactive)})))"""
        found.append(_rows("churn_warning_only_from_min_tier", BLOCKING, f"""
            SELECT s.cust_id, s.value_tier, s.churn_warning FROM (SELECT * FROM {{batch}}) AS s
            WHERE s.cust_type = 'P' AND ((s.churn_warning AND {_tier_rank_sql(params)} < {_rank(params, min_tier)})
            {extra})
        """, f"churn_warning only for tier ≥ {min_tier}; a reason exactly when warned; "
             f"INACTIVE exactly when rfm_r > {inactive}"))
    retail_strategies = _opt(rules, "retail_strategies", None)
    corporate_strategies = _opt(rules, "corporate_strategies", None)
    if retail_strategies and corporate_strategies and has(params, TABLE, "service_strategy"):
        values = ", ".join([f"('P', {lit(k)}, {lit(v)})" for k, v in retail_strategies.items()]
                           + [f"('X', {lit(k)}, {lit(v)})" for k, v in corporate_strategies.items()])
        found.append(_rows("service_strategy_matches_rules", BLOCKING, f"""
            WITH st(kind, tier, strategy) AS (VALUES {values})
            SELECT s.cust_id, s.cust_type, s.value_tier, s.service_strategy FROM (SELECT * FROM {{batch}}) AS s
            LEFT JOIN st ON st.kind = CASE WHEN s.cust_type = 'P' THEN 'P' ELSE 'X' END AND st.tier = s.value_tier
            WHERE s.service_strategy IS DISTINCT FROM st.strategy
        """, "service_strategy is the rules file's text for the customer's tier (retail or corporate)"))
    return found
