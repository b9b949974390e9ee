"""The gate's Great Expectations suites, as code: one module per validated table, listed in `suites.py`.

Every check carries a severity: `blocking` (a failure stops publication) or `warning` (reported only).
Allowed codes, floors and bounds come from the rules file through `flows.rules`, never from literals here.
The custom SQL runs on DuckDB or Spark SQL (`GateParams.engine`): written in what both read alike, with the
few differences in `expectations/dialect.py`.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from expectations import dialect
from flows.months import month_end
from flows.rules import CORPORATE_RULE_SET, Rules

Severity = Literal["blocking", "warning"]
BLOCKING: Severity = "blocking"
WARNING: Severity = "warning"

# Where the marts hold each rule set's measure (customer_segment columns).
MEASURE_COLUMNS = {"avg_daily_aum_1m": "avg_daily_aum_cny", "avg_daily_aum_3m": "aum_3m_avg_cny"}
# Published averages are rounded to cents (half up): a measure may sit this far from its exact value.
ROUNDING_CNY = Decimal("0.005")
TIER_CHANGES = ("NEW", "UP", "SAME", "DOWN")
PII_COLUMNS = ("cust_name", "cert_no", "mobile")
NULL_CNY = "CAST(NULL AS DECIMAL(38, 6))"


@dataclass(frozen=True)
class GateParams:
    """What a gate run checks: the month (as its last day), the rules, and figures computed from raw."""

    as_of: date
    rules: Rules
    reference: Mapping[str, Any] = field(default_factory=dict)
    reference_errors: Mapping[str, str] = field(default_factory=dict)
    # as_of_month of the last published release (from published.duckdb's release_log), if any.
    last_release_month: date | None = None
    # The engine the checks' SQL runs on (Settings.engine): picks the spellings of expectations/dialect.py.
    engine: str = dialect.DUCKDB

    @property
    def month_start(self) -> date:
        return self.as_of.replace(day=1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.as_of.year, self.as_of.month)[1]

    @property
    def next_month_start(self) -> date:
        return self.as_of + timedelta(days=1)

    @property
    def month_label(self) -> str:
        return f"{self.as_of:%Y-%m}"

    @property
    def previous_month(self) -> date:
        """The last day of the month before the candidate's."""
        return self.month_start - timedelta(days=1)

    @property
    def drift_baseline_month(self) -> date:
        """The month the drift check compares with: the previous one, or the last release's if earlier."""
        if self.last_release_month is not None:
            released = month_end(self.last_release_month)
            if released < self.previous_month:
                return released
        return self.previous_month


@dataclass
class Check:
    """One expectation of the gate: the table it validates, a stable name, its severity and the GX object."""

    table: str
    name: str
    severity: Severity
    expectation: Expectation
    description: str
    # Set when the check cannot run (e.g. its reference figure failed): it is reported failed as is.
    skip_reason: str | None = None
    # Columns of the offending rows that name what failed (e.g. rule_set, tier) in the observed value.
    name_columns: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def wants_rows(self) -> bool:
        """Custom-SQL checks return their offending rows (COMPLETE); column checks a summary."""
        return self.expectation.expectation_type == "unexpected_rows_expectation"


def check(table: str, name: str, severity: Severity, expectation: Expectation, description: str,
          skip_reason: str | None = None, name_columns: tuple[str, ...] = ()) -> Check:
    """Label a GX expectation with the gate's name and severity (also set as GX `severity` and `meta`)."""
    expectation.severity = FailureSeverity.CRITICAL if severity == BLOCKING else FailureSeverity.WARNING
    expectation.meta = {"gate_check": f"{table}.{name}", "gate_severity": severity}
    expectation.description = description
    return Check(table, name, severity, expectation, description, skip_reason, name_columns)


# --- SQL literals for UnexpectedRowsExpectation queries (GX runs str.format on them: braces doubled) ---

def lit(value: object) -> str:
    """A SQL literal for a string, number, Decimal or date, safe inside a GX query template."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, Decimal):
        return f"CAST('{value}' AS DECIMAL(38, 6))"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("'", "''").replace("{", "{{").replace("}", "}}")
    if "\\" in text:
        # Spark SQL reads a backslash in a string literal as an escape, DuckDB as itself: chr(92) is both.
        return "(" + " || chr(92) || ".join(f"'{part}'" for part in text.split("\\")) + ")"
    return f"'{text}'"


def lit_list(values: Any) -> str:
    return ", ".join(lit(v) for v in values)


def retail_ladder_cte(rules: Rules) -> str:
    """CTE `retail_ladder(rule_set, tier, tier_rank, floor_cny, next_floor_cny, grace_months)` (rules)."""
    rows = []
    for rs in rules.rule_sets.values():
        for i, tier in enumerate(rs.tiers):
            nxt = lit(rs.tiers[i + 1].floor_cny) if i + 1 < len(rs.tiers) else NULL_CNY
            rows.append(f"({lit(rs.name)}, {lit(tier.code)}, {tier.rank}, {lit(tier.floor_cny)}, {nxt}, "
                        f"{tier.grace_months})")
    return ("retail_ladder(rule_set, tier, tier_rank, floor_cny, next_floor_cny, grace_months) AS (VALUES "
            + ", ".join(rows) + ")")


def corporate_ladder_cte(rules: Rules) -> str:
    """CTE `corporate_ladder(tier, tier_rank, deposit_floor_cny, loan_floor_cny, next_deposit_floor_cny,
    next_loan_floor_cny)` from the rules."""
    rows = []
    tiers = rules.corporate_tiers
    for i, tier in enumerate(tiers):
        nxt = tiers[i + 1] if i + 1 < len(tiers) else None
        next_deposit = lit(nxt.deposit_floor_cny) if nxt else NULL_CNY
        next_loan = lit(nxt.loan_floor_cny) if nxt else NULL_CNY
        rows.append(f"({lit(tier.code)}, {tier.rank}, {lit(tier.deposit_floor_cny)}, "
                    f"{lit(tier.loan_floor_cny)}, {next_deposit}, {next_loan})")
    return ("corporate_ladder(tier, tier_rank, deposit_floor_cny, loan_floor_cny, next_deposit_floor_cny, "
            "next_loan_floor_cny) AS (VALUES " + ", ".join(rows) + ")")


def rank_ladder_cte(rules: Rules) -> str:
    """CTE `rank_ladder(rule_set, tier, tier_rank, grace_months)`: every ladder, corporate included."""
    rows = [f"({lit(rs.name)}, {lit(t.code)}, {t.rank}, {t.grace_months})"
            for rs in rules.rule_sets.values() for t in rs.tiers]
    rows += [f"({lit(CORPORATE_RULE_SET)}, {lit(t.code)}, {t.rank}, NULL)" for t in rules.corporate_tiers]
    return "rank_ladder(rule_set, tier, tier_rank, grace_months) AS (VALUES " + ", ".join(rows) + ")"


def segment_rule_set_sql(rules: Rules, alias: str = "s") -> str:
    """SQL naming the ladder a customer_segment row is tiered on: the active rule set (P) or corporate."""
    return (f"CASE WHEN {alias}.cust_type = 'P' THEN {lit(rules.active_rule_set)} "
            f"ELSE {lit(CORPORATE_RULE_SET)} END")


def no_pii_columns(params: GateParams, table: str, schema: str = "main_marts") -> Check:
    """Blocking: the table has none of the unmasked personal-data columns."""
    from great_expectations.expectations import UnexpectedRowsExpectation

    query = f"""
        SELECT c.column_name, b.batch_rows
        FROM {dialect.catalog_columns(params.engine)} AS c
        CROSS JOIN (SELECT count(*) AS batch_rows FROM {{batch}}) AS b
        WHERE c.table_schema = {lit(schema)} AND c.table_name = {lit(table)}
          AND lower(c.column_name) IN ({lit_list(PII_COLUMNS)})
    """
    return check(table, "no_unmasked_pii_columns", BLOCKING,
                 UnexpectedRowsExpectation(unexpected_rows_query=query),
                 f"{table} has no column {', '.join(PII_COLUMNS)} (personal data is published masked only)")
