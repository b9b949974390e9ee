"""Why a customer has its published result (PIPL art. 24): plain functions, rendering kept separate.

`explain_customer` reads the published database read-only for the results and the working database
read-only for the evidence (daily balances, FX, loans). It cites two releases: the one published now (the
latest `release_log` row, as `tiering status` shows it) and the one that wrote the shown month's row
(`release_months` of customer_segment; a newer release carries the months it did not rebuild unchanged),
and says so when they differ. Personal data comes only from the published,
masked columns; raw names, certificate numbers and mobiles are never selected. AML levels and triggers
are confidential (restricted database) and never read here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import duckdb

from flows.months import SHANGHAI, bank_time, month_end
from flows.settings import Settings

CENT = Decimal("0.01")
SHOWN_PLACES = Decimal("0.0000000001")

# issue-3 columns of customer_segment, shown when present (checked at run time).
CLASSIFICATION_COLUMNS = (
    "rfm_r", "rfm_f", "rfm_m", "rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_class", "rfm_class_name",
    "activity_level", "value_activity_quadrant", "quadrant_action", "need_level", "credit_grade",
    "potential_flag", "potential_reasons", "customer_class", "churn_warning", "churn_reason",
    "service_strategy", "credit_grade_reason", "customer_class_reason",
)
# Wording of the reason codes the classification models publish (dbt docs blocks credit_grade_reason and
# customer_class_reason). The bounds travel in the codes, so a rules change shows without a change here.
# {tier} and {grade} are the customer's; {value} is the code's bound (lists joined by ", ").
REASON_WORDING = {
    "TIER_AT_LEAST": "tier {tier} ≥ {value}",
    "TIER_BELOW": "tier {tier} < {value}",
    "CREDIT_GRADE_IN": "credit grade {grade} in {value}",
    "CREDIT_GRADE_NOT_IN": "credit grade {grade} not in {value}",
    "POTENTIAL": "potential customer (B类)",
    "NOT_POTENTIAL": "not potential",
    "NO_LOAN": "no loan",
    "DPD_AT_LEAST": "a loan ≥ {value} days past due",
    "FIVE_CLASS_AT_LEAST": "a loan of five-class ≥ {value}",
    "DPD_BELOW": "no loan ≥ {value} days past due",
    "FIVE_CLASS_BELOW": "no loan of five-class ≥ {value}",
}
SEGMENT_COLUMNS = (
    "as_of_month", "cust_id", "cust_type", "branch_id", "cust_name_masked", "cert_no_masked", "mobile_masked",
    "avg_daily_aum_cny", "aum_3m_avg_cny", "aum_days", "aum_3m_days", "avg_daily_deposit_cny",
    "loan_outstanding_cny", "value_tier", "value_tier_name", "implied_tier", "tier_floor_cny", "months_below",
    "grace_months", "on_watch", "previous_tier", "tier_change", "effective_from", "rule_set",
    "rule_set_version", "rules_version",
)
OVERRIDE_COLUMNS = ("override_id", "override_tier_reason", "override_until")
# A release published before the models wrote their reasons (issue 10) has none to show.
NO_RECORDED_REASON = "not recorded by the release that wrote this row (published before reasons were)"
NO_GRACE_CORPORATE = ("corporate tiers have no grace period: the tier follows deposits or loans each month "
                      "(months below is always 0)")
RETAIL_ONLY_CLASSES = "RFM, customer class, potential, churn warning, activity and quadrant apply to retail customers only"
EVIDENCE_UNAVAILABLE = "evidence unavailable until the running pipeline ends (working database locked)"
ROLLBACK = "rollback"  # release_log.action of a row that made an earlier release current again


class ExplainError(ValueError):
    """Unknown customer, unpublished month or no published database; the message is one line."""


@dataclass
class Explanation:
    """Everything shown for one customer and month; `to_dict` gives the JSON document."""

    cust_id: str
    as_of_month: dt.date
    customer: dict
    rules: dict  # rules.release_id: the release that wrote this month's row (= release.row.release_id)
    result: dict
    measures: dict
    ladder: dict | None
    hysteresis: dict | None
    corporate: dict | None
    rule_sets: list[dict]
    history: list[dict]
    classifications: dict | None
    evidence: dict | None
    notes: list[str] = field(default_factory=list)
    aml: dict | None = None  # only with include_aml, from the restricted database
    # {"current": {...}, "row": {...} | None, "same": bool | None, "time_zone", "statement"}: see _release
    release: dict | None = None
    # The approved tier override (特批) that set the published tier, with its audit trail; None without.
    override: dict | None = None

    def to_dict(self) -> dict:
        return _plain(asdict(self))


# ---------------------------------------------------------------------------------------------- reading


def explain_customer(settings: Settings, cust_id: str, as_of: dt.date | None = None,
                     include_aml: bool = False) -> Explanation:
    """Explain `cust_id`'s result of month `as_of` (default: the latest published month).

    AML risk is confidential: it is read (from restricted/aml.duckdb) only with `include_aml`, and only
    by a user the file's permissions let in.
    """
    published_db, working_db = settings.published_db, settings.working_db
    if not published_db.exists():
        raise ExplainError(f"no published database at {published_db}")
    with duckdb.connect(str(published_db), read_only=True) as pub:
        month = _published_month(pub, as_of)
        seg_columns = _columns(pub, "customer_segment")
        row = _one(pub, f"select {', '.join(SEGMENT_COLUMNS)} from customer_segment "
                        "where cust_id = ? and as_of_month = ?", [cust_id, month])
        if row is None:
            known = pub.execute("select count(*) from customer_segment where cust_id = ?", [cust_id]).fetchone()[0]
            raise ExplainError(f"customer {cust_id} has no published result for {month:%Y-%m}" if known
                               else f"unknown customer {cust_id}")
        if all(c in seg_columns for c in OVERRIDE_COLUMNS):
            row.update(_one(pub, f"select {', '.join(OVERRIDE_COLUMNS)} from customer_segment "
                                 "where cust_id = ? and as_of_month = ?", [cust_id, month]))
        release = _release(pub, month)
        rule_sets = _all(pub, "select rule_set, rule_set_version, measure, measure_value_cny, implied_tier, "
                              "tier_floor_cny, months_below, grace_months, on_watch, tier, tier_name, "
                              "previous_tier, tier_change from customer_tier "
                              "where cust_id = ? and as_of_month = ? order by rule_set", [cust_id, month])
        history = _all(pub, "select as_of_month, avg_daily_aum_cny, aum_3m_avg_cny, implied_tier, value_tier, "
                            "months_below, on_watch, tier_change from customer_segment "
                            "where cust_id = ? and as_of_month <= ? order by as_of_month", [cust_id, month])
        present = [c for c in CLASSIFICATION_COLUMNS if c in seg_columns]
        classes = None
        if present:
            classes = _one(pub, f"select {', '.join(present)} from customer_segment "
                                "where cust_id = ? and as_of_month = ?", [cust_id, month])
            if "rfm_r" in present and "rfm_f" in present and "rfm_m" in present:
                classes["_population"] = _one(
                    pub, "select count(*) as n, sum(rfm_r) as sum_r, sum(rfm_f) as sum_f, sum(rfm_m) as sum_m "
                         "from customer_segment where as_of_month = ? and cust_type = 'P' "
                         "and value_tier is not null", [month])

    notes: list[str] = []
    evidence, ladder_rows, corporate_rows = None, None, None
    try:
        evidence, ladder_rows, corporate_rows = _read_working(working_db, row, month)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        notes.append(EVIDENCE_UNAVAILABLE)
    except _NoEvidence as exc:
        notes.append(str(exc))
    if ladder_rows is None or corporate_rows is None:
        rule_ladder, rule_corporate = _ladders_from_rules_file(settings.rules_path)
        ladder_rows = ladder_rows if ladder_rows is not None else rule_ladder
        corporate_rows = corporate_rows if corporate_rows is not None else rule_corporate
    if row.get("override_id"):
        row["computed_tier"] = next((r["tier"] for r in rule_sets if r["rule_set"] == row["rule_set"]), None)
    explanation = _assemble(row, month, release, rule_sets, history, classes, evidence, ladder_rows,
                            corporate_rows, notes)
    if row.get("override_id"):
        explanation.override = _override(settings, row, rule_sets)
        if explanation.hysteresis:  # what the hysteresis gave, underneath the override
            explanation.hysteresis["published_tier"] = explanation.override["computed_tier"]
    if include_aml:
        explanation.aml = _read_aml(settings.restricted_db, cust_id, month)
    return explanation


def _override(settings: Settings, row: dict, rule_sets: list[dict]) -> dict:
    """The override on the row, its computed tier, and who asked, approved (and revoked) it from the log."""
    from flows.overrides import load_overrides

    computed = next((r for r in rule_sets if r["rule_set"] == row["rule_set"]), {})
    found = load_overrides(settings).get(row["override_id"])
    trail = found.as_dict() if found else None
    return {"override_id": row["override_id"], "tier": row["value_tier"], "tier_name": row["value_tier_name"],
            "computed_tier": computed.get("tier"), "computed_tier_name": computed.get("tier_name"),
            "reason": row["override_tier_reason"], "until": row["override_until"], "log": trail}


def _read_aml(aml_db: Path, cust_id: str, month: dt.date) -> dict:
    """The customer's AML level, triggers and trigger transactions from the restricted release."""
    try:
        con = duckdb.connect(str(aml_db), read_only=True)
    except (duckdb.IOException, PermissionError) as exc:
        reason = "not found" if not aml_db.exists() else "not readable by this user (AML staff only)"
        raise ExplainError(f"restricted AML database {aml_db} {reason}") from exc
    with con:
        risk = _one(con, "select aml_level, aml_triggers from aml_customer_risk "
                         "where cust_id = ? and as_of_month = ?", [cust_id, month])
        transactions = _all(con, "select trigger, txn_id, txn_time, txn_type, amount, currency, amount_cny, "
                                 "counterparty_country from aml_trigger_transactions "
                                 "where cust_id = ? and as_of_month = ? order by trigger, txn_time, txn_id",
                            [cust_id, month])
    if risk is None:
        raise ExplainError(f"customer {cust_id} has no AML result for {month:%Y-%m} in {aml_db}")
    return {**risk, "trigger_transactions": transactions}


class _NoEvidence(Exception):
    pass


def _published_month(pub, as_of: dt.date | None) -> dt.date:
    months = [m for (m,) in pub.execute("select distinct as_of_month from customer_segment order by 1").fetchall()]
    if not months:
        raise ExplainError("nothing is published yet")
    if as_of is None:
        latest = pub.execute("select max(as_of_month) from release_log").fetchone()[0]
        return latest if latest in months else months[-1]
    if as_of not in months:
        raise ExplainError(f"month {as_of:%Y-%m} is not published "
                           f"(published: {months[0]:%Y-%m} … {months[-1]:%Y-%m})")
    return as_of


def _release(pub, month: dt.date) -> dict:
    """The release published now and the release that wrote `month`'s customer_segment rows.

    The JSON shape (keys always present):
    `current`: the latest `release_log` row by published_at, as `tiering status` reads it, whatever it
    records: {release_id, as_of_month (the month the release was run for), published_at, action ('publish',
    or 'rollback' when that row made an earlier release current again: published_at is then the rollback's
    time), rolled_back_from (the release a rollback replaced, else null)};
    `row`: the `release_months` writer of customer_segment for `month` with its publication's release_log
    row: {release_id, as_of_month, published_at, gate_run_id, restated (the writer rewrote a month published
    before)}, null when not recorded; `same`: current and row are one release (null when either is
    unknown); `time_zone`: 'Asia/Shanghai' (the catalog stores published_at as naive Asia/Shanghai wall
    time, flows.months.SHANGHAI; here it carries +08:00); `statement`: one sentence.
    """
    log_columns = _columns(pub, "release_log")
    action = "action" if "action" in log_columns else "'publish'"
    rolled_back_from = "rolled_back_from" if "rolled_back_from" in log_columns else "null"
    current = _one(pub, f"select release_id, as_of_month, published_at, coalesce({action}, 'publish') as action, "
                        f"{rolled_back_from} as rolled_back_from from release_log "
                        "order by published_at desc limit 1", [])
    row = None
    if _columns(pub, "release_months"):
        # The writer's publication row: same release and time (a rollback row of that release is later).
        row = _one(pub, "select m.release_id, l.as_of_month, m.published_at, m.gate_run_id, "
                        "l.restated_months from release_months m "
                        "left join release_log l on l.release_id = m.release_id and l.published_at = m.published_at "
                        "where m.table_name = 'customer_segment' and m.as_of_month = ? limit 1", [month])
    if row is not None:
        restated = (row.pop("restated_months") or "").split(",")
        row["restated"] = month.isoformat() in restated
    for found in (current, row):
        if found is not None and found["published_at"] is not None:
            found["published_at"] = found["published_at"].replace(tzinfo=SHANGHAI)
    same = None if current is None or row is None else current["release_id"] == row["release_id"]
    release = {"current": current, "row": row, "same": same, "time_zone": SHANGHAI.key}
    release["statement"] = _release_statement(release, month)
    return release


def _when(moment: dt.datetime | None) -> str:
    return "at an unrecorded time" if moment is None else bank_time(moment)


def _made_current(current: dict) -> str:
    """`published <time>`, or for a rollback row `made current again by a rollback on <time> (…)`."""
    if current["action"] != ROLLBACK:
        return f"published {_when(current['published_at'])}"
    replaced = f", replacing {current['rolled_back_from']}" if current["rolled_back_from"] else ""
    return f"made current again by a rollback on {_when(current['published_at'])}{replaced}"


def _release_statement(release: dict, month: dt.date) -> str:
    """One plain sentence: which release wrote this month's row and whether the current one carries it."""
    current, row = release["current"], release["row"]
    if current is None:
        return "no release is logged in release_log"
    if row is None:
        return (f"the release that wrote {month:%Y-%m} is not recorded (no release_months row); the current "
                f"release is {current['release_id']}, {_made_current(current)}")
    verb = "restated" if row["restated"] else "published"
    of = "" if row["as_of_month"] in (None, month) else f" (the release of {row['as_of_month']:%Y-%m})"
    if release["same"]:
        return f"this month was {verb} by the current release {row['release_id']}{of} on {_when(row['published_at'])}"
    return (f"this month was {verb} by release {row['release_id']}{of} on {_when(row['published_at'])}; "
            f"the current release {current['release_id']} ({_made_current(current)}) carries it unchanged")


def _columns(con, table: str, schema: str = "main") -> set[str]:
    return {c for (c,) in con.execute("select column_name from information_schema.columns "
                                      "where table_schema = ? and table_name = ?", [schema, table]).fetchall()}


def _one(con, sql: str, params: list) -> dict | None:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    found = cur.fetchone()
    return dict(zip(names, found, strict=True)) if found else None


def _all(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _seed_schema(con, table: str) -> str | None:
    found = con.execute("select table_schema from information_schema.tables where table_name = ? "
                        "order by table_schema = 'main_rules' desc limit 1", [table]).fetchone()
    return found[0] if found else None


def _read_working(working_db: Path, row: dict, month: dt.date):
    """Evidence from the working database (read-only); raises duckdb.IOException when it is locked."""
    if not working_db.exists():
        raise _NoEvidence(f"evidence unavailable: no working database at {working_db}")
    cust_id = row["cust_id"]
    with duckdb.connect(str(working_db), read_only=True) as con:
        ladder = corporate = None
        schema = _seed_schema(con, "rule_value_tiers")
        if schema:
            ladder = _all(con, f'select rule_set, rule_set_version, measure, tier_code, tier_name, tier_rank, '
                               f'floor_cny, grace_months from "{schema}".rule_value_tiers '
                               f'order by rule_set, tier_rank', [])
        schema = _seed_schema(con, "rule_corporate_tiers")
        if schema:
            corporate = _all(con, f'select rule_set_version, tier_code, tier_name, tier_rank, deposit_floor_cny, '
                                  f'loan_floor_cny from "{schema}".rule_corporate_tiers order by tier_rank', [])
        window = _one(con, "select month_start, days_in_month, window_3m_start, days_in_window_3m "
                           "from main_intermediate.int_evaluation_months where as_of_month = ?", [month])
        sums = _one(con, "select aum_sum_cny, aum_days, aum_3m_sum_cny, aum_3m_days, deposit_sum_cny, "
                         "loan_outstanding_exact_cny from main_intermediate.int_customer_monthly_measures "
                         "where as_of_month = ? and cust_id = ?", [month, cust_id])
        if window is None or sums is None:
            raise _NoEvidence(f"evidence unavailable: the working database no longer holds {month:%Y-%m}")
        product_types = _seed_schema(con, "rule_product_types")
        # The customer's balances of the month straight from the raw zone: the account versions it owned on
        # each day (D2), that day's rate; the month's files only (batch_date prunes the rest).
        con.execute(f"""
            create or replace temp table explain_balances as
            with accounts as (
                select acct_id, product_type, valid_from, valid_to from raw.cbs_account_versions
                where cust_id = $cust and valid_from <= $end and (valid_to is null or valid_to > $start)
            ), balances as (
                select batch_date, acct_id, balance, currency from raw.cbs_balance
                where batch_date between $start and $end and acct_id in (select acct_id from accounts)
            ), rates as (
                select batch_date, currency, cny_per_unit from raw.cbs_fx_rate
                where batch_date between $start and $end
            )
            select a.product_type, b.currency, b.acct_id, b.batch_date as balance_date, b.balance as balance_amount,
                   case when b.currency = 'CNY' then cast(1 as decimal(18, 6)) else r.cny_per_unit end as cny_per_unit,
                   cast(cast(b.balance as decimal(38, 2))
                        * case when b.currency = 'CNY' then cast(1 as decimal(18, 6)) else r.cny_per_unit end
                        as decimal(38, 8)) as balance_cny,
                   p.is_aum, p.is_deposit
            from balances b
            join accounts a on a.acct_id = b.acct_id and b.batch_date >= a.valid_from
                and b.batch_date < coalesce(a.valid_to, date '9999-12-31')
            left join rates r on r.batch_date = b.batch_date and r.currency = b.currency
            left join "{product_types}".rule_product_types p on p.product_type = a.product_type""",
                    {"cust": cust_id, "start": window["month_start"], "end": month})
        split = _all(con, "select product_type, currency, is_aum, is_deposit, count(distinct acct_id) as accounts, "
                          "count(distinct balance_date) as days_with_balance, "
                          "sum(balance_amount) as balance_sum, sum(balance_cny) as balance_sum_cny, "
                          "min(cny_per_unit) as fx_min, max(cny_per_unit) as fx_max "
                          "from explain_balances group by all order by is_aum desc, product_type, currency", [])
        month_end = _all(con, "select distinct product_type from explain_balances "
                              "where balance_date = ? and balance_amount <> 0 order by 1", [month])
        by_month = _all(con, "select s.month_start, sum(s.aum_sum_cny) as aum_sum_cny "
                             "from main_intermediate.int_customer_monthly_balance_sums s "
                             "join main_intermediate.int_evaluation_months b on b.as_of_month = s.as_of_month "
                             "and s.month_start >= cast(date_trunc('month', b.coverage_start) as date) "
                             "where s.cust_id = ? and s.month_start between cast(date_trunc('month', ?) as date) "
                             "and ? group by 1 order by 1",
                        [cust_id, window["window_3m_start"], month])
        loans = _all(con, "select loan_id, loan_type, currency, outstanding_amount, days_past_due, five_class, "
                          "cny_per_unit, outstanding_cny, valid_from as snapshot_date "
                          "from main_intermediate.int_month_end_loans_converted_to_cny "
                          "where as_of_month = ? and cust_id = ? order by loan_id", [month, cust_id])
    evidence = {"window": window, "sums": sums, "split": split, "by_month": by_month, "loans": loans,
                "month_end_products": [r["product_type"] for r in month_end]}
    return evidence, ladder, corporate


def _ladders_from_rules_file(rules_path: Path | None):
    from flows.rules import load_rules, seed_rows
    from flows.settings import DEFAULT_RULES

    try:
        rows = seed_rows(load_rules(Path(rules_path or DEFAULT_RULES)))
    except Exception:  # noqa: BLE001 - the ladder is then shown as unavailable
        return None, None
    ladder = [{k: r[k] for k in ("rule_set", "rule_set_version", "measure", "tier_code", "tier_name", "tier_rank",
                                 "floor_cny", "grace_months")} for r in rows["rule_value_tiers.csv"]]
    corporate = [{k: r[k] for k in ("rule_set_version", "tier_code", "tier_name", "tier_rank",
                                    "deposit_floor_cny", "loan_floor_cny")} for r in rows["rule_corporate_tiers.csv"]]
    return ladder, corporate


# ---------------------------------------------------------------------------------------------- assembling


def _avg(total: Decimal, days: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(total) / Decimal(days)


def _round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _assemble(row, month, release, rule_sets, history, classes, evidence, ladder_rows, corporate_rows, notes):
    retail = row["cust_type"] == "P"
    customer = {k: row[k] for k in ("cust_type", "branch_id", "cust_name_masked", "cert_no_masked",
                                    "mobile_masked")}
    rules = {"rule_set": row["rule_set"], "rule_set_version": row["rule_set_version"],
             "rules_version": row["rules_version"],
             "release_id": release["row"]["release_id"] if release["row"] else None}
    result = {k: row[k] for k in ("value_tier", "value_tier_name", "implied_tier", "tier_floor_cny",
                                  "tier_change", "effective_from")}
    measures = {k: row[k] for k in ("avg_daily_aum_cny", "aum_days", "aum_3m_avg_cny", "aum_3m_days",
                                    "avg_daily_deposit_cny", "loan_outstanding_cny")}
    exact_1m = exact_3m = exact_deposit = exact_loans = None
    ev = None
    if evidence:
        sums, window = evidence["sums"], evidence["window"]
        exact_1m = _avg(sums["aum_sum_cny"], sums["aum_days"])
        exact_3m = _avg(sums["aum_3m_sum_cny"], sums["aum_3m_days"])
        exact_deposit = _avg(sums["deposit_sum_cny"], sums["aum_days"])
        exact_loans = sums["loan_outstanding_exact_cny"]
        assets = [r for r in evidence["split"] if r["is_aum"]]
        debts = [r for r in evidence["split"] if not r["is_aum"]]
        split_total = sum((r["balance_sum_cny"] for r in assets), Decimal(0))
        ev = {
            "month_start": window["month_start"], "month_end": month,
            "aum_sum_cny": sums["aum_sum_cny"], "days": sums["aum_days"],
            "avg_daily_aum_exact_cny": exact_1m.quantize(SHOWN_PLACES, rounding=ROUND_HALF_UP),
            "avg_daily_aum_rounded_cny": _round2(exact_1m),
            "matches_published": _round2(exact_1m) == row["avg_daily_aum_cny"] and split_total == sums["aum_sum_cny"],
            "aum_split": [_split_row(r, sums["aum_days"]) for r in assets],
            "aum_split_total_cny": split_total,
            "excluded_debts": [_split_row(r, sums["aum_days"]) for r in debts],
            "three_month": {
                "window_start": window["window_3m_start"], "window_end": month,
                "days": sums["aum_3m_days"], "aum_sum_cny": sums["aum_3m_sum_cny"],
                "by_month": evidence["by_month"],
                "avg_exact_cny": exact_3m.quantize(SHOWN_PLACES, rounding=ROUND_HALF_UP),
                "avg_rounded_cny": _round2(exact_3m),
            },
            "month_end_products": evidence["month_end_products"],
            "loans_at_month_end": evidence["loans"],
        }
    ladder = hysteresis = corporate = None
    tier_sets = {r["rule_set"]: r for r in rule_sets}
    if retail:
        own = [t for t in (ladder_rows or []) if t["rule_set"] == row["rule_set"]]
        if own and own[0]["rule_set_version"] != row["rule_set_version"]:
            notes.append(f"ladder of {row['rule_set_version']} unavailable (current rules: "
                         f"{own[0]['rule_set_version']})")
            own = []
        measure_name = own[0]["measure"] if own else tier_sets.get(row["rule_set"], {}).get("measure")
        exact = exact_3m if measure_name == "avg_daily_aum_3m" else exact_1m
        published_value = tier_sets.get(row["rule_set"], {}).get("measure_value_cny", row["avg_daily_aum_cny"])
        compared = exact if exact is not None else published_value
        if own:
            steps = [{"tier": t["tier_code"], "name": t["tier_name"], "rank": t["tier_rank"],
                      "floor_cny": Decimal(t["floor_cny"]), "grace_months": int(t["grace_months"]),
                      "crossed": compared >= Decimal(t["floor_cny"])} for t in own]
            implied = max((s for s in steps if s["crossed"]), key=lambda s: s["rank"])["tier"]
            ladder = {"measure": measure_name, "measure_value_cny": published_value,
                      "compared_value_cny": compared if exact is None else exact.quantize(SHOWN_PLACES),
                      "compared_exactly": exact is not None, "steps": steps, "implied_tier": implied,
                      "agrees_with_published": implied == row["implied_tier"]}
        hysteresis = {"tier_held_last_month": row["previous_tier"], "implied_tier": row["implied_tier"],
                      "months_below": row["months_below"], "grace_months": row["grace_months"],
                      "grace_left": row["grace_months"] - row["months_below"], "on_watch": row["on_watch"],
                      "tier_change": row["tier_change"], "published_tier": row["value_tier"],
                      "effective_from": row["effective_from"], "reason": _hysteresis_reason(row),
                      "downgrade_if_still_below": _pending_downgrade(row, month)}
    else:
        tiers = corporate_rows or []
        deposit = exact_deposit if exact_deposit is not None else row["avg_daily_deposit_cny"]
        loans = exact_loans if exact_loans is not None else row["loan_outstanding_cny"]
        steps = [{"tier": t["tier_code"], "name": t["tier_name"], "rank": t["tier_rank"],
                  "deposit_floor_cny": Decimal(t["deposit_floor_cny"]), "loan_floor_cny": Decimal(t["loan_floor_cny"]),
                  "deposit_crossed": deposit >= Decimal(t["deposit_floor_cny"]),
                  "loan_crossed": loans >= Decimal(t["loan_floor_cny"])} for t in tiers]
        reached = [s for s in steps if s["deposit_crossed"] or s["loan_crossed"]]
        implied = max(reached, key=lambda s: s["rank"])["tier"] if reached else None
        corporate = {"avg_daily_deposit_cny": row["avg_daily_deposit_cny"],
                     "loan_outstanding_cny": row["loan_outstanding_cny"],
                     "compared_exactly": exact_deposit is not None, "steps": steps, "implied_tier": implied,
                     "agrees_with_published": implied == row["value_tier"] if steps else None,
                     "tier_held_last_month": row["previous_tier"], "tier_change": row["tier_change"],
                     "effective_from": row["effective_from"]}
    return Explanation(cust_id=row["cust_id"], as_of_month=month, customer=customer, rules=rules, result=result,
                       measures=measures, ladder=ladder, hysteresis=hysteresis, corporate=corporate,
                       rule_sets=rule_sets, history=history,
                       classifications=_classifications(classes, row, ev), evidence=ev, notes=notes,
                       release=release)


def _split_row(r: dict, days: int) -> dict:
    """One product × currency of the month; `avg_daily_balance_cny` is Σ ÷ the month's days (a debt is shown so:
    a month's Σ of daily balances reads like an amount owed)."""
    return {"product_type": r["product_type"], "currency": r["currency"], "accounts": r["accounts"],
            "days_with_balance": r["days_with_balance"], "balance_sum": r["balance_sum"],
            "balance_sum_cny": r["balance_sum_cny"], "fx_cny_per_unit_min": r["fx_min"],
            "fx_cny_per_unit_max": r["fx_max"],
            "avg_daily_balance_cny": _round2(_avg(r["balance_sum_cny"], days))}


def _hysteresis_reason(row: dict) -> str:
    # Under an override the hysteresis explains the computed tier (customer_tier's), not the published one.
    held, implied, tier = row["previous_tier"], row["implied_tier"], row.get("computed_tier", row["value_tier"])
    if held is None:
        return f"first evaluated month: published tier = implied tier {implied}"
    if row["months_below"] == 0 and tier == implied:
        if row["tier_change"] == "DOWN":
            return f"implied {implied} below held {held} for the whole grace: downgraded to {implied}"
        return f"implied {implied} ≥ held {held}: published {implied}, counter reset"
    return (f"implied {implied} below held {held} for {row['months_below']} of {row['grace_months']} grace "
            f"month(s): {held} kept, on watch")


def _pending_downgrade(row: dict, month: dt.date) -> dict | None:
    """For a customer on watch: the month whose evaluation downgrades them if the measure stays below the held
    tier's floor (the counter reaches the grace), and the day that takes effect (M+1's first day)."""
    if not row["on_watch"]:
        return None
    evaluated = month
    for _ in range(row["grace_months"] - row["months_below"]):
        evaluated = month_end(evaluated + dt.timedelta(days=1))
    return {"evaluated_in": evaluated, "effective_from": evaluated + dt.timedelta(days=1)}


def reason_text(codes: str, facts: dict) -> str:
    """Words for a published reason such as `TIER_AT_LEAST=PLATINUM,CREDIT_GRADE_IN=LOW|NONE`.

    An unknown code is shown as it is, so a newer model's reason still reads.
    """
    parts = []
    for code in codes.split(","):
        name, _, value = code.partition("=")
        wording = REASON_WORDING.get(name)
        parts.append(wording.format(value=value.replace("|", ", "), **facts) if wording else code)
    return ", ".join(parts)


def _classifications(classes, row, ev) -> dict | None:
    if not classes:
        return None
    population = classes.pop("_population", None)
    out: dict = {k: v for k, v in classes.items() if "aml" not in k}
    if population and population["n"]:
        n = population["n"]
        means = {"r": _avg(population["sum_r"] or 0, n), "f": _avg(population["sum_f"] or 0, n),
                 "m": _avg(population["sum_m"] or 0, n)}
        rfm = {}
        for key, better in (("r", "lower"), ("f", "higher"), ("m", "higher")):
            value = classes.get(f"rfm_{key}")
            if value is None:
                continue
            high = value < means[key] if better == "lower" else value > means[key]
            rfm[key.upper()] = {"value": value, "population_mean": _round2(means[key]), "high": high,
                                "better_is": better, "score": classes.get(f"rfm_{key}_score")}
        out["rfm"] = {"population": n, "measures": rfm}
    facts = {"tier": row["value_tier"], "grade": classes.get("credit_grade")}
    if classes.get("customer_class_reason"):
        out["class_reason"] = reason_text(classes["customer_class_reason"], facts)
    elif classes.get("customer_class") and "customer_class_reason" not in classes:
        out["class_reason"] = NO_RECORDED_REASON
    if classes.get("credit_grade_reason"):
        out["credit_grade_because"] = reason_text(classes["credit_grade_reason"], facts)
    if "need_level" in classes and ev is not None:
        out["need_evidence"] = {"products_held_at_month_end": ev["month_end_products"]}
    if "credit_grade" in classes and ev is not None:
        out["credit_grade_loans"] = [{k: loan[k] for k in ("loan_id", "loan_type", "days_past_due", "five_class",
                                                           "outstanding_amount", "currency")}
                                     for loan in ev["loans_at_month_end"]]
    return out


# ---------------------------------------------------------------------------------------------- rendering


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(explanation: Explanation) -> str:
    """The explanation as one JSON document (Decimals as exact strings, dates ISO)."""
    return json.dumps(explanation.to_dict(), ensure_ascii=False, indent=2)


def _money(value) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def _exact(value) -> str:
    return "—" if value is None else f"{Decimal(value):,}"


def render_text(e: Explanation) -> str:
    """A plain-text explanation for people (a customer-service agent reads it out)."""
    c, r, m = e.customer, e.rules, e.measures
    # A field the customer has no value for (a company's mobile) is left out, not printed as "None".
    who = "  ".join(f"{label}{c[key]}" for label, key in (("", "cust_name_masked"), ("cert ", "cert_no_masked"),
                                                          ("mobile ", "mobile_masked")) if c[key] is not None)
    lines = [f"customer {e.cust_id}  {who}  type {c['cust_type']}  branch {c['branch_id']}",
             f"month {e.as_of_month:%Y-%m} (as_of {e.as_of_month})  rule set {r['rule_set_version']}  "
             f"rules {r['rules_version']}",
             *_render_release(e.release),
             f"result: {e.result['value_tier']} {e.result['value_tier_name']} (implied {e.result['implied_tier']}, "
             f"change {e.result['tier_change']}, effective from {e.result['effective_from']})",
             *_render_override(e.override),
             *[f"note: {n}" for n in e.notes], "", "measures"]
    ev = e.evidence
    if ev:
        lines.append(f"  monthly average daily AUM = Σ daily AUM ÷ days = {_exact(ev['aum_sum_cny'])} ÷ "
                     f"{ev['days']} = {_exact(ev['avg_daily_aum_exact_cny'])} → published "
                     f"{_money(m['avg_daily_aum_cny'])} CNY ({ev['month_start']} … {ev['month_end']}, "
                     f"{'matches' if ev['matches_published'] else 'DOES NOT match'} the published value)")
        lines.append("  AUM by product and currency (month sums; a day without a balance counts 0):")
        for s in ev["aum_split"]:
            fx = (f"FX {s['fx_cny_per_unit_min']}" if s["fx_cny_per_unit_min"] == s["fx_cny_per_unit_max"]
                  else f"FX {s['fx_cny_per_unit_min']}–{s['fx_cny_per_unit_max']}")
            lines.append(f"    {s['product_type']:<5} {s['currency']}  {s['accounts']} acct, "
                         f"{s['days_with_balance']} days  Σ {_money(s['balance_sum'])} {s['currency']}  {fx}  "
                         f"= Σ {_exact(s['balance_sum_cny'])} CNY")
        lines.append(f"    total Σ {_exact(ev['aum_split_total_cny'])} CNY")
        for s in ev["excluded_debts"]:
            lines.append(f"    excluded (debt, never AUM): {s['product_type']} {s['currency']}  average daily balance "
                         f"{_money(s['avg_daily_balance_cny'])} CNY (Σ {_exact(s['balance_sum_cny'])} CNY ÷ "
                         f"{ev['days']} days)")
        t = ev["three_month"]
        parts = " + ".join(f"{_exact(b['aum_sum_cny'])} ({b['month_start']:%Y-%m})" for b in t["by_month"]) or "0"
        lines.append(f"  three-month average ({t['window_start']} … {t['window_end']}) = {parts} ÷ {t['days']} days "
                     f"= {_exact(t['avg_exact_cny'])} → published {_money(m['aum_3m_avg_cny'])}")
    else:
        lines.append(f"  monthly average daily AUM {_money(m['avg_daily_aum_cny'])} CNY over {m['aum_days']} days; "
                     f"three-month average {_money(m['aum_3m_avg_cny'])} over {m['aum_3m_days']} days")
    lines.append(f"  average daily deposits (CASA+TD) {_money(m['avg_daily_deposit_cny'])}; loans outstanding at "
                 f"month end {_money(m['loan_outstanding_cny'])}")
    if ev and ev["loans_at_month_end"]:
        for loan in ev["loans_at_month_end"]:
            lines.append(f"    loan {loan['loan_id']} {loan['loan_type']} {_money(loan['outstanding_amount'])} "
                         f"{loan['currency']} × {loan['cny_per_unit']} = {_money(loan['outstanding_cny'])} CNY, "
                         f"dpd {loan['days_past_due']}, five_class {loan['five_class']}")
    if e.ladder:
        lad = e.ladder
        how = "exact value" if lad["compared_exactly"] else "published (rounded) value"
        lines += ["", f"ladder {r['rule_set']} on {lad['measure']} ({how} {_exact(lad['compared_value_cny'])})"]
        for s in reversed(lad["steps"]):
            mark = "≥" if s["crossed"] else "<"
            lines.append(f"  {'✓' if s['crossed'] else ' '} {s['tier']:<9} {s['name']:<6} floor "
                         f"{_money(s['floor_cny']):>16}  grace {s['grace_months']}  measure {mark} floor")
        lines.append(f"  implied tier {lad['implied_tier']}"
                     f"{'' if lad['agrees_with_published'] else ' (DIFFERS from the published implied tier)'}")
    if e.hysteresis:
        h = e.hysteresis
        lines += ["", "hysteresis (fast up, slow down)",
                  f"  tier held last month {h['tier_held_last_month'] or '— (first month)'}; implied "
                  f"{h['implied_tier']}; months below {h['months_below']}; grace {h['grace_months']}; "
                  f"grace left {h['grace_left']}; on watch {'yes (关注)' if h['on_watch'] else 'no'}",
                  f"  {h['reason']} → {h['published_tier']} ({h['tier_change']}), effective from "
                  f"{h['effective_from']}"]
        pending = h["downgrade_if_still_below"]
        if pending:
            lines.append(f"  if the measure stays below the {h['published_tier']} floor, the {pending['evaluated_in']:%Y-%m} "
                         f"evaluation downgrades to the tier it then qualifies for ({h['implied_tier']} now), "
                         f"effective from {pending['effective_from']}")
    if e.corporate:
        k = e.corporate
        how = "exact" if k["compared_exactly"] else "published"
        lines += ["", f"corporate ladder (deposits OR loans reach the floor; {how} values)"]
        for s in reversed(k["steps"]):
            lines.append(f"  {'✓' if s['deposit_crossed'] or s['loan_crossed'] else ' '} {s['tier']:<9} "
                         f"deposits {_money(k['avg_daily_deposit_cny'])} {'≥' if s['deposit_crossed'] else '<'} "
                         f"{_money(s['deposit_floor_cny'])}  loans {_money(k['loan_outstanding_cny'])} "
                         f"{'≥' if s['loan_crossed'] else '<'} {_money(s['loan_floor_cny'])}")
        lines.append(f"  implied {k['implied_tier']}; last month {k['tier_held_last_month'] or '—'}; "
                     f"change {k['tier_change']}; effective from {k['effective_from']}")
        lines.append(f"  {NO_GRACE_CORPORATE}" + (": this month's fall takes effect at once"
                                                   if k["tier_change"] == "DOWN" else ""))
    if e.rule_sets:
        lines += ["", "all rule sets"]
        for s in e.rule_sets:
            lines.append(f"  {s['rule_set']:<13} {s['measure']:<17} {_money(s['measure_value_cny']):>16}  implied "
                         f"{s['implied_tier']:<13} tier {s['tier']:<13} {_below(e, s['months_below'])}"
                         f"{'  on watch' if s['on_watch'] else ''}")
    if len(e.history) > 1:
        lines += ["", "history"]
        for h in e.history:
            lines.append(f"  {h['as_of_month']:%Y-%m}  avg {_money(h['avg_daily_aum_cny']):>16}  implied "
                         f"{h['implied_tier']:<9} tier {h['value_tier']:<9} {_below(e, h['months_below'])}  "
                         f"{h['tier_change']}")
    if e.classifications:
        lines += ["", "classifications"] + _render_classes(e.classifications, retail=e.corporate is None)
    if e.aml is not None:
        lines += ["", "AML risk (restricted: AML staff only)",
                  f"  level {e.aml['aml_level']}; triggers: {e.aml['aml_triggers'] or 'none'}"]
        for t in e.aml["trigger_transactions"]:
            lines.append(f"    {t['trigger']}: txn {t['txn_id']} {t['txn_time']} {t['txn_type']} "
                         f"{_money(t['amount'])} {t['currency']} (= {_money(t['amount_cny'])} CNY)"
                         + (f" counterparty {t['counterparty_country']}" if t["counterparty_country"] else ""))
    return "\n".join(lines)


def _render_override(o: dict | None) -> list[str]:
    """The override beside the computed tier: who asked, who approved, why, until when."""
    if not o:
        return []
    lines = [f"override {o['override_id']} (特批): published {o['tier']} {o['tier_name']} instead of the computed "
             f"{o['computed_tier']} {o['computed_tier_name'] or ''}; holds through {o['until']:%Y-%m}, then the "
             "computed tier returns"]
    log = o["log"]
    if log is None:
        lines.append("  (not in this warehouse's override log: see overrides/override_log.jsonl of its backup)")
        return lines
    lines.append(f"  asked by {log['requested_by']} at {log['requested_at']}: {log['reason']}")
    note = f": {log['decision_note']}" if log["decision_note"] else ""
    lines.append(f"  approved by {log['decided_by']} at {log['decided_at']}{note} (from {log['first_month']})")
    if log["revoked_by"]:
        lines.append(f"  revoked by {log['revoked_by']} at {log['revoked_at']} from {log['revoked_from']}: "
                     f"{log['revoke_reason']}")
    return lines


def _render_release(release: dict | None) -> list[str]:
    """`release: current … ; this month's row …`, then the sentence when the two differ."""
    if not release:
        return []
    current, row = release["current"], release["row"]
    now = (f"current {current['release_id']} (release of {current['as_of_month']:%Y-%m}, "
           f"{_made_current(current)})" if current else "current — (release_log is empty)")
    if release["same"]:
        wrote = "this month's row: the same release" + (" (restated this month)" if row["restated"] else "")
    elif row:
        wrote = f"this month's row: {row['release_id']} (published {_when(row['published_at'])})"
    else:
        wrote = "this month's row: release not recorded"
    lines = [f"release: {now}; {wrote}"]
    if not release["same"]:
        lines.append(f"  {release['statement']}")
    return lines


def _below(e: Explanation, months_below: int) -> str:
    return f"months below {months_below}" if e.corporate is None else "no grace period"


def _render_classes(k: dict, retail: bool) -> list[str]:
    lines = []
    rfm = k.get("rfm")
    if not retail:
        # RFM, class, potential, churn, activity and quadrant are retail rules: a company has none of them.
        lines.append(f"  {RETAIL_ONLY_CLASSES}")
    elif rfm:
        lines.append(f"  RFM class {k.get('rfm_class')} {k.get('rfm_class_name') or ''} "
                     f"(vs means over {rfm['population']} retail customers; High = strictly better)")
        for key, v in rfm["measures"].items():
            lines.append(f"    {key} {v['value']} vs mean {v['population_mean']} ({v['better_is']} is better) → "
                         f"{'High' if v['high'] else 'Low'}; score {v['score']}")
    simple = (("customer_class", "class"), ("class_reason", "  because"), ("need_level", "need level"),
              ("credit_grade", "credit grade"), ("credit_grade_because", "  because"),
              ("potential_flag", "potential (B类)"),
              ("potential_reasons", "  potential reasons"), ("churn_warning", "churn warning"),
              ("churn_reason", "  churn reason"), ("activity_level", "activity"),
              ("value_activity_quadrant", "quadrant"), ("quadrant_action", "  action"),
              ("service_strategy", "service strategy"))
    for key, label in simple:
        if key in k and (retail or k[key] is not None):
            lines.append(f"  {label}: {k[key] if k[key] is not None else '—'}")
    if "need_evidence" in k:
        lines.append(f"    products held at month end: {', '.join(k['need_evidence']['products_held_at_month_end'])}")
    for loan in k.get("credit_grade_loans", []):
        lines.append(f"    loan {loan['loan_id']} {loan['loan_type']}: dpd {loan['days_past_due']}, "
                     f"five_class {loan['five_class']}")
    return lines
