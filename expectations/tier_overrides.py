"""Tier-override (特批) checks on `main_marts.customer_segment`, against the override log the build used.

The build applies an override it finds approved in `overrides.tier_override_log` (the run's copy of
`<warehouse>/overrides/override_log.jsonl`); these checks read that copy on their own and block a release
whose rows carry an override that the log does not show approved, by someone other than its requester, for
this month and this tier. The CLI refuses all of these when the log is written through it; the gate is
what stands when the log was edited by hand or a model changed. A warning bounds how many of a tier's
customers hold their tier by override (`overrides.warn_overridden_share_of_tier`).
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations import BLOCKING, WARNING, Check, GateParams, check, lit
from expectations.classifications import has

TABLE = "customer_segment"
LOG = "overrides.tier_override_log"


def _overrides_cte(params: GateParams) -> str:
    """CTE `applied`: the month's overridden rows with what the log says of their override."""
    return f"""
        applied AS (
            SELECT s.cust_id, s.value_tier, s.override_id, s.override_until,
                   r.cust_id AS requested_cust_id, r.tier AS requested_tier, r.acted_by AS requested_by,
                   r.until_month,
                   d.action AS decision, d.acted_by AS decided_by, d.from_month AS first_month,
                   v.from_month AS revoked_from
            FROM {{batch}} AS s
            LEFT JOIN (SELECT * FROM {LOG} WHERE action = 'REQUEST') AS r ON r.override_id = s.override_id
            LEFT JOIN (SELECT * FROM (
                           SELECT *, row_number() OVER (PARTITION BY override_id ORDER BY seq DESC) AS newest
                           FROM {LOG} WHERE action IN ('APPROVE', 'REJECT')) AS decisions
                       WHERE newest = 1) AS d
                   ON d.override_id = s.override_id
            LEFT JOIN (SELECT override_id, min(from_month) AS from_month FROM {LOG} WHERE action = 'REVOKE'
                       GROUP BY override_id) AS v ON v.override_id = s.override_id
            WHERE s.override_id IS NOT NULL
        )"""


def _approved_sql(params: GateParams) -> str:
    return f"""
        WITH {_overrides_cte(params)}
        SELECT cust_id, override_id, value_tier, requested_tier, decision
        FROM applied
        WHERE requested_cust_id IS NULL OR decision IS DISTINCT FROM 'APPROVE'
           OR requested_cust_id <> cust_id OR requested_tier IS DISTINCT FROM value_tier
           OR override_until IS DISTINCT FROM until_month
    """


def _four_eyes_sql(params: GateParams) -> str:
    return f"""
        WITH {_overrides_cte(params)}
        SELECT cust_id, override_id, requested_by, decided_by
        FROM applied
        WHERE decision = 'APPROVE' AND decided_by = requested_by
    """


def _within_months_sql(params: GateParams) -> str:
    month = lit(params.as_of)
    return f"""
        WITH {_overrides_cte(params)}
        SELECT cust_id, override_id, first_month, until_month, revoked_from
        FROM applied
        WHERE NOT ({month} BETWEEN first_month AND until_month)
           OR first_month IS NULL OR until_month IS NULL
           OR (revoked_from IS NOT NULL AND {month} >= revoked_from)
    """


def _share_sql(params: GateParams) -> str:
    bound = params.rules.overrides.warn_overridden_share_of_tier
    return f"""
        SELECT value_tier, count(*) AS customers, count(override_id) AS overridden
        FROM {{batch}}
        GROUP BY value_tier
        HAVING count(override_id) > count(*) * {lit(bound)}
    """


def checks(params: GateParams) -> list[Check]:
    """The override checks (when the candidate has the override columns)."""
    if not has(params, TABLE, "override_id", "override_until"):
        return []
    bound = params.rules.overrides.warn_overridden_share_of_tier
    return [
        check(TABLE, "override_approved", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_approved_sql(params)),
              "every applied override was requested for this customer and tier and its decision is an "
              "approval (override log)", name_columns=("cust_id", "override_id")),
        check(TABLE, "override_four_eyes", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_four_eyes_sql(params)),
              "no applied override was approved by its requester", name_columns=("cust_id", "override_id")),
        check(TABLE, "override_not_expired", BLOCKING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_within_months_sql(params)),
              f"{params.month_label} is within each applied override's months and before any revocation",
              name_columns=("cust_id", "override_id")),
        check(TABLE, "overridden_share_of_tier", WARNING,
              gxe.UnexpectedRowsExpectation(unexpected_rows_query=_share_sql(params)),
              f"at most {bound:.0%} of a tier's customers hold it by override", name_columns=("value_tier",)),
    ]
