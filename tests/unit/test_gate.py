"""The gate on a hand-built working database: a passing candidate, then one failure per blocking check.

Raw data is committed to the warehouse's raw zone as ingestion would (tests.support.raw_batches), one batch
per day; the marts tables are built by hand.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import flows  # noqa: F401  (no-telemetry environment before GX/Prefect load)
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES
from flows.stages import raw_zone
from flows.stages.gate import GateFailed, gate_flow
from flows.stages.gate_checks import run_checks
from tests.support.isolation import settings_for
from tests.support.raw_batches import load_rows, set_batch_status

AS_OF = date(2026, 10, 31)
PREV = date(2026, 9, 30)
RULES = load_rules(DEFAULT_RULES)
DAYS = 31
USD_RATE = Decimal("7.100000")
# Batch dates of the raw zone: the last day of September (outside the month: must be ignored), then October.
BATCH_DATES = [PREV] + [date(2026, 10, d) for d in range(1, DAYS + 1)]

# cust_id, cust_type, status, name, cert_no, mobile
CUSTOMERS = [
    ("P001", "P", "A", "张三", "110101199001011234", "13812345678"),
    ("P002", "P", "A", "李四光", "110101198502023456", "13900001111"),
    ("P003", "P", "A", "王五", "310101197003035678", "13700002222"),
    ("P004", "P", "D", "赵六", "440101196004047890", "13600003333"),
    ("P005", "P", "A", "钱七", "510101199505051357", "13500004444"),
    ("C001", "C", "A", "兴华贸易有限公司", "91350100MA2XKXXX1", "05911234567"),
    ("C002", "C", "A", "闽江建设集团", "91350100MA2YKYYY2", "05917654321"),
    ("P006", "P", "C", "孙八", "120101198806062468", "13400005555"),  # closed on 2026-10-20: no tier
]
P006_CLOSED = date(2026, 10, 20)  # status A in the snapshots before: eligible earlier in the month, not at as_of
# Delivered until 2026-10-10, then dropped from the extract (a tombstone in the change history): no tier.
GONE = ("P008", "P", "A", "周八", "350101199909099999", "13300006666")
GONE_AFTER = date(2026, 10, 10)
# acct_id, cust_id, product_type, currency, daily balance, number of days (from the 1st) with a balance row
ACCOUNTS = [
    ("A001", "P001", "CASA", "CNY", "5000.00", 31),
    ("A002", "P002", "TD", "CNY", "150000.00", 31),
    ("A003", "P003", "WM", "USD", "50000.00", 31),  # × 7.1 = 355,000 CNY
    ("A004", "P004", "CASA", "CNY", "20000.00", 10),  # 200,000 / 31 = 6451.6129 → 6451.61
    ("A005", "P005", "LOAN", "CNY", "1000000.00", 31),  # a debt, never AUM
    ("A006", "C001", "CASA", "CNY", "20000000.00", 31),
    ("A007", "C002", "CASA", "CNY", "1000.00", 31),
    ("A008", "C002", "LOAN", "CNY", "600000000.00", 31),
    ("A009", "P006", "CASA", "CNY", "1000.00", 31),  # closed customer's balance is not in the marts
]
# A004 is closed after its last balance day and gone from the account extract ten days later: its balances of
# the month still count (the account's version of the month, not of as_of).
A004_CLOSED, A004_GONE = date(2026, 10, 11), date(2026, 10, 21)

# cust_id → avg AUM, 3m avg, deposits, loans, value tier, implied tier, on_watch, months_below, previous tier
SEGMENT = {
    "P001": ("5000.00", "5000.00", "5000.00", "0.00", "NONCORE", "NONCORE", False, 0, "NONCORE"),
    "P002": ("150000.00", "150000.00", "150000.00", "0.00", "GOLD", "GOLD", False, 0, "CORE"),
    "P003": ("355000.00", "600000.00", "0.00", "0.00", "PLATINUM", "PLATINUM", False, 0, "PLATINUM"),
    "P004": ("6451.61", "6451.61", "6451.61", "0.00", "CORE", "NONCORE", True, 1, "CORE"),
    "P005": ("0.00", "0.00", "0.00", "1000000.00", "NONCORE", "NONCORE", False, 0, None),
    "C001": ("20000000.00", "20000000.00", "20000000.00", "0.00", "KEY", "KEY", False, 0, "KEY"),
    "C002": ("1000.00", "1000.00", "1000.00", "600000000.00", "STRATEGIC", "STRATEGIC", False, 0, None),
}
# abc_quarterly (three-month measure) tiers of the retail customers: tier, previous tier
ABC = {"P001": ("STANDARD", "STANDARD"), "P002": ("STANDARD", "STANDARD"), "P003": ("GOLD_CARD", "GOLD_CARD"),
       "P004": ("STANDARD", "STANDARD"), "P005": ("STANDARD", None)}

MARTS_DDL = """
CREATE SCHEMA main_marts;
CREATE TABLE main_marts.customer_segment (as_of_month DATE, cust_id VARCHAR, cust_type VARCHAR,
    branch_id VARCHAR, cust_name_masked VARCHAR, cert_no_masked VARCHAR, mobile_masked VARCHAR,
    avg_daily_aum_cny DECIMAL(18,2), aum_3m_avg_cny DECIMAL(18,2), aum_days INTEGER, aum_3m_days INTEGER,
    avg_daily_deposit_cny DECIMAL(18,2), loan_outstanding_cny DECIMAL(18,2), value_tier VARCHAR,
    value_tier_name VARCHAR, implied_tier VARCHAR, tier_floor_cny DECIMAL(18,2), months_below INTEGER,
    grace_months INTEGER, on_watch BOOLEAN, previous_tier VARCHAR, tier_change VARCHAR, effective_from DATE,
    rule_set VARCHAR, rule_set_version VARCHAR, rules_version VARCHAR);
CREATE TABLE main_marts.customer_tier (as_of_month DATE, cust_id VARCHAR, cust_type VARCHAR, rule_set VARCHAR,
    rule_set_version VARCHAR, measure VARCHAR, measure_value_cny DECIMAL(18,2), implied_tier VARCHAR,
    tier_floor_cny DECIMAL(18,2), months_below INTEGER, grace_months INTEGER, on_watch BOOLEAN, tier VARCHAR,
    tier_name VARCHAR, tier_rank INTEGER, previous_tier VARCHAR, tier_change VARCHAR, effective_from DATE);
CREATE TABLE main_marts.tier_summary (as_of_month DATE, rule_set VARCHAR, tier VARCHAR, tier_name VARCHAR,
    tier_rank INTEGER, customers BIGINT, on_watch_customers BIGINT, total_avg_daily_aum_cny DECIMAL(38,2),
    share_of_customers DECIMAL(9,6));
CREATE TABLE main_marts.tier_migration (as_of_month DATE, rule_set VARCHAR, from_tier VARCHAR,
    to_tier VARCHAR, customers BIGINT);
"""


def customer_row(cust_id: str, cust_type: str, status: str, name: str, cert: str, mobile: str) -> dict:
    return {"cust_id": cust_id, "cust_type": cust_type, "cust_name": name,
            "cert_type": "01" if cust_type == "P" else "20", "cert_no": cert, "mobile": mobile,
            "branch_id": "B001", "open_date": date(2015, 1, 1), "kyc_risk_level": "L", "status": status}


def raw_day(day: date, extra_customers: tuple[tuple[str, ...], ...] = (),
            balance_delta: dict[str, int] | None = None) -> dict[str, list[dict]]:
    """Every table of the batch of `day` as the extracts deliver it (the snapshot tables in full)."""
    customers = [customer_row(c, t, "A" if c == "P006" and day < P006_CLOSED else s, n, cert, m)
                 for c, t, s, n, cert, m in CUSTOMERS]
    customers += [customer_row(*GONE)] if day <= GONE_AFTER else []
    customers += [customer_row(*c) for c in extra_customers]
    accounts = []
    for acct, cust, product, currency, _, _ in ACCOUNTS:
        if acct == "A004" and day >= A004_GONE:
            continue
        closed = acct == "A004" and day >= A004_CLOSED
        accounts.append({"acct_id": acct, "cust_id": cust, "product_type": product, "currency": currency,
                         "open_date": date(2020, 1, 1), "close_date": A004_CLOSED if closed else None,
                         "status": "C" if closed else "A"})
    delta = balance_delta or {}
    balances = [{"acct_id": acct, "bal_date": day, "balance": Decimal(balance) + delta.get(acct, 0),
                 "currency": currency}
                for acct, _, _, currency, balance, days in ACCOUNTS if day == PREV or day.day <= days]
    rates = [{"currency": cur, "rate_date": day, "cny_per_unit": rate}
             for cur, rate in (("USD", USD_RATE), ("CNY", Decimal("1.000000")))]
    return {"CUSTOMER": customers, "ACCOUNT": accounts, "BALANCE": balances, "FX_RATE": rates}


def reload(day: date, **changes) -> Callable[[Path], None]:
    """A step re-delivering the whole batch of `day` with `changes` (see raw_day) to a working database."""
    return lambda db: load_rows(db, day, raw_day(day, **changes))


def reject_balances(day: date) -> Callable[[Path], None]:
    """A step marking the CBS_BALANCE batch of `day` REJECTED (its balances leave the raw views)."""
    return lambda db: set_batch_status(db, day, "CBS_BALANCE", "REJECTED")


def mask(value: str, field: str) -> str:
    first, last = RULES.masking[field]
    if len(value) <= first + last:
        return value
    return value[:first] + RULES.mask_char * (len(value) - first - last) + value[len(value) - last:]


def _change(previous: str | None, tier: str, ranks: dict[str, int]) -> str:
    if previous is None:
        return "NEW"
    return "UP" if ranks[tier] > ranks[previous] else "DOWN" if ranks[tier] < ranks[previous] else "SAME"


def build_working_db(path: Path) -> None:
    """A warehouse for October 2026 that passes every check (plus a September with bad rows).

    Raw: one committed batch per day from 2026-09-30 to 2026-10-31 in the raw zone beside `path`; marts by hand.
    """
    for day in BATCH_DATES:
        load_rows(path, day, raw_day(day))
    con = duckdb.connect(str(path))
    # Ingestion's figures: 3 lines of a transaction file were quarantined (a rate within the bound).
    con.execute("UPDATE audit.batch_log SET records = records + 3, quarantined = 3 "
                "WHERE batch_date = DATE '2026-10-15' AND table_name = 'CBS_TXN'")
    # The history the gate must read as of the month end (not any version of the month).
    history = con.execute("SELECT cust_id, valid_from, valid_to, status FROM raw.cbs_customer_versions "
                          "WHERE cust_id IN ('P006', 'P008') ORDER BY ALL").fetchall()
    assert history == [("P006", PREV, P006_CLOSED, "A"), ("P006", P006_CLOSED, None, "C"),
                       ("P008", PREV, GONE_AFTER + timedelta(days=1), "A")]
    accounts = con.execute("SELECT valid_from, valid_to, status FROM raw.cbs_account_versions "
                           "WHERE acct_id = 'A004' ORDER BY ALL").fetchall()
    assert accounts == [(PREV, A004_CLOSED, "A"), (A004_CLOSED, A004_GONE, "C")]
    con.execute(MARTS_DDL)

    cib, abc = RULES.rule_sets["cib_monthly"], RULES.rule_sets["abc_quarterly"]
    cib_ranks = {t.code: t.rank for t in cib.tiers}
    abc_ranks = {t.code: t.rank for t in abc.tiers}
    corp = {t.code: t for t in RULES.corporate_tiers}
    corp_ranks = {t.code: t.rank for t in RULES.corporate_tiers}
    info = {c[0]: c for c in CUSTOMERS}
    effective = AS_OF + timedelta(days=1)
    seg_rows, tier_rows = [], []
    for cust, (aum, aum3, dep, loan, value, implied, watch, below, prev) in SEGMENT.items():
        _, ctype, _, name, cert, mobile = info[cust]
        if ctype == "P":
            held = cib.tier(value)
            floor, grace, name_of = held.floor_cny, held.grace_months, held.name
            change, rule_set, rs_version = _change(prev, value, cib_ranks), "cib_monthly", cib.version
        else:
            floor, grace, name_of = corp[value].deposit_floor_cny, 0, corp[value].name
            change, rule_set = _change(prev, value, corp_ranks), "corporate"
            rs_version = RULES.corporate_version
        seg_rows.append((AS_OF, cust, ctype, "B001", mask(name, "cust_name"), mask(cert, "cert_no"),
                         mask(mobile, "mobile"), aum, aum3, DAYS, 92, dep, loan, value, name_of, implied,
                         floor, below, grace, watch, prev, change, effective, rule_set, rs_version,
                         RULES.version))
        if ctype == "P":
            tier_rows.append((AS_OF, cust, ctype, "cib_monthly", cib.version, "avg_daily_aum_1m", aum,
                              implied, floor, below, grace, watch, value, name_of, cib_ranks[value], prev,
                              change, effective))
            t, p = ABC[cust]
            tier_rows.append((AS_OF, cust, ctype, "abc_quarterly", abc.version, "avg_daily_aum_3m", aum3, t,
                              abc.tier(t).floor_cny, 0, 3, False, t, abc.tier(t).name, abc_ranks[t], p,
                              _change(p, t, abc_ranks), effective))
        else:
            tier_rows.append((AS_OF, cust, ctype, "corporate", RULES.corporate_version, "avg_daily_deposit",
                              dep, implied, floor, 0, 0, False, value, name_of, corp_ranks[value], prev,
                              change, effective))
    con.executemany(f"INSERT INTO main_marts.customer_segment VALUES ({', '.join('?' * 26)})", seg_rows)
    con.executemany(f"INSERT INTO main_marts.customer_tier VALUES ({', '.join('?' * 18)})", tier_rows)
    ladder = [(rs.name, t.code, t.name, t.rank) for rs in (cib, abc) for t in rs.tiers]
    ladder += [("corporate", t.code, t.name, t.rank) for t in RULES.corporate_tiers]
    con.execute("CREATE TEMP TABLE ladder (rule_set VARCHAR, tier VARCHAR, tier_name VARCHAR, "
                "tier_rank INTEGER)")
    con.executemany("INSERT INTO ladder VALUES (?, ?, ?, ?)", ladder)
    con.execute("""
        INSERT INTO main_marts.tier_summary
        SELECT DATE '2026-10-31', l.rule_set, l.tier, l.tier_name, l.tier_rank, count(t.cust_id),
               count(t.cust_id) FILTER (WHERE t.on_watch),
               coalesce(sum(s.avg_daily_aum_cny), 0),
               round(count(t.cust_id) / sum(count(t.cust_id)) OVER (PARTITION BY l.rule_set), 6)
        FROM ladder AS l
        LEFT JOIN main_marts.customer_tier AS t ON t.rule_set = l.rule_set AND t.tier = l.tier
        LEFT JOIN main_marts.customer_segment AS s ON s.cust_id = t.cust_id AND s.as_of_month = t.as_of_month
        GROUP BY l.rule_set, l.tier, l.tier_name, l.tier_rank""")
    con.execute("""INSERT INTO main_marts.tier_migration
                   SELECT as_of_month, rule_set, previous_tier, tier, count(*) FROM main_marts.customer_tier
                   GROUP BY ALL""")
    # September: rows that would fail every check, to prove the gate only looks at the candidate month.
    con.execute("""INSERT INTO main_marts.customer_segment (as_of_month, cust_id, cust_type, value_tier,
                       implied_tier, avg_daily_aum_cny, on_watch)
                   VALUES (?, 'P001', 'P', 'XXX', 'XXX', -5, NULL),
                          (?, 'P001', 'P', 'XXX', 'XXX', -5, NULL)""",
                [PREV, PREV])
    con.execute("INSERT INTO main_marts.customer_tier (as_of_month, cust_id, rule_set, tier) "
                "VALUES (?, 'P001', 'nope', 'XXX')", [PREV])
    con.execute("INSERT INTO main_marts.tier_summary (as_of_month, rule_set, tier, customers) "
                "VALUES (?, 'nope', 'XXX', 99)", [PREV])
    con.execute("INSERT INTO main_marts.tier_migration VALUES (?, 'nope', NULL, 'XXX', 0)", [PREV])
    con.close()


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    """The passing warehouse (working database and raw zone), built once."""
    root = tmp_path_factory.mktemp("golden") / "warehouse"
    root.mkdir()
    build_working_db(root / "tiering.duckdb")
    return root


@pytest.fixture
def warehouse(golden: Path, tmp_path: Path) -> Path:
    """A fresh copy of the passing warehouse in `<tmp>/warehouse`."""
    root = tmp_path / "warehouse"
    shutil.copytree(golden, root)
    con = duckdb.connect(str(root / "tiering.duckdb"))
    try:
        raw_zone.refresh_views(con, root)  # the views name raw files by absolute path: read the copy's
    finally:
        con.close()
    return root


Step = str | Callable[[Path], None]


def mutate(warehouse: Path, *steps: Step) -> None:
    """Apply SQL statements to the working database, or steps (reload, …) called with its path."""
    working_db = warehouse / "tiering.duckdb"
    for step in steps:
        if callable(step):
            step(working_db)
            continue
        con = duckdb.connect(str(working_db))
        try:
            con.execute(step)
        finally:
            con.close()


def stored(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_passing_candidate_passes_every_check_and_is_stored(warehouse: Path) -> None:
    result = gate_flow.fn(AS_OF, settings_for(warehouse=warehouse))
    failed = {r.full_name: (r.observed_value, r.details) for r in result.results if not r.success}
    assert failed == {}
    assert result.success and result.blocking_failures == [] and len(result.results) > 40
    assert result.reference["eligible_customers"] == 7
    run = stored(warehouse, "SELECT as_of_month, success, blocking_failures, started_at <= finished_at "
                            "FROM gate.run WHERE gate_run_id = ?", [result.gate_run_id])
    assert run == [(AS_OF, True, 0, True)]
    rows = stored(warehouse, "SELECT count(*), count(*) FILTER (success) FROM gate.result "
                             "WHERE gate_run_id = ?", [result.gate_run_id])
    assert rows == [(len(result.results), len(result.results))]
    observed = dict(stored(warehouse, "SELECT table_name || '.' || expectation, observed_value "
                                      "FROM gate.result"))
    assert observed["customer_segment.row_count_equals_eligible_customers"] == "7"
    assert observed["customer_segment.total_aum_reconciles_with_raw_balances"] == "0 unexpected row(s)"
    assert result.report_path == warehouse / "reports" / "2026-10" / "gate.html"


# One failing candidate per headline blocking check: (steps applied to the passing warehouse, check named).
FAILURES = {
    "duplicate_row": (
        ["INSERT INTO main_marts.customer_segment SELECT * FROM main_marts.customer_segment "
         "WHERE cust_id = 'P001'"],
        "customer_segment.one_row_per_customer_month"),
    "unknown_tier": (
        ["UPDATE main_marts.customer_segment SET value_tier = 'SILVER' WHERE cust_id = 'P002'"],
        "customer_segment.retail_value_tier_in_ladder"),
    "negative_aum": (
        ["UPDATE main_marts.customer_segment SET avg_daily_aum_cny = -0.01 WHERE cust_id = 'P005'"],
        "customer_segment.avg_daily_aum_not_negative"),
    "row_count_not_eligible": (
        # The month-end customer master is re-delivered with one more active customer.
        [reload(AS_OF, extra_customers=(("P007", "P", "A", "周九", "350101200001011111", "13200007777"),))],
        "customer_segment.row_count_equals_eligible_customers"),
    "aum_off_by_one_cny": (
        # 31.00 CNY more on one day of the month = 1.00 CNY more of average daily AUM in raw.
        [reload(date(2026, 10, 7), balance_delta={"A001": 31})],
        "customer_segment.total_aum_reconciles_with_raw_balances"),
    "quarantine_rate_above_bound": (
        ["UPDATE audit.batch_log SET quarantined = 200, loaded = 0, records = 200 "
         "WHERE batch_date = DATE '2026-10-16' AND table_name = 'CBS_TXN'"],
        "batch_log.quarantine_rate_within_bound"),
}
# More blocking checks, each run on its own table only (same checks, less time).
CHECK_FAILURES = {
    "duplicate_tier_row": (
        ["INSERT INTO main_marts.customer_tier SELECT * FROM main_marts.customer_tier "
         "WHERE cust_id = 'P002' AND rule_set = 'abc_quarterly'"],
        "customer_tier.one_row_per_customer_month_rule_set"),
    "unknown_implied_tier_in_customer_tier": (
        ["UPDATE main_marts.customer_tier SET implied_tier = 'GOLD' WHERE rule_set = 'abc_quarterly' "
         "AND cust_id = 'P002'"],
        "customer_tier.abc_quarterly_implied_tier_in_ladder"),
    "implied_tier_below_measure": (
        ["UPDATE main_marts.customer_segment SET implied_tier = 'CORE', value_tier = 'CORE' "
         "WHERE cust_id = 'P002'"],
        "customer_segment.retail_implied_tier_matches_measure"),
    "implied_tier_above_measure_beyond_rounding": (
        ["UPDATE main_marts.customer_segment SET avg_daily_aum_cny = 9999.99, value_tier = 'CORE', "
         "implied_tier = 'CORE' WHERE cust_id = 'P001'"],
        "customer_segment.retail_implied_tier_matches_measure"),
    "corporate_tier_not_reached": (
        ["UPDATE main_marts.customer_segment SET loan_outstanding_cny = 499999999.99 WHERE cust_id = 'C002'"],
        "customer_segment.corporate_implied_tier_matches_deposits_or_loans"),
    "watch_flag_without_lower_implied_tier": (
        ["UPDATE main_marts.customer_segment SET on_watch = TRUE, months_below = 1 WHERE cust_id = 'P001'"],
        "customer_segment.watch_flag_consistent"),
    "held_tier_differs_without_watch": (
        ["UPDATE main_marts.customer_segment SET on_watch = FALSE, months_below = 0 WHERE cust_id = 'P004'"],
        "customer_segment.watch_flag_consistent"),
    "unmasked_name": (
        ["UPDATE main_marts.customer_segment SET cust_name_masked = '李四光' WHERE cust_id = 'P002'"],
        "customer_segment.pii_masked"),
    "raw_pii_column": (
        ["ALTER TABLE main_marts.customer_segment ADD COLUMN mobile VARCHAR"],
        "customer_segment.no_unmasked_pii_columns"),
    "missing_balance_day": (
        [reject_balances(date(2026, 10, 9))],
        "batch_log.balance_batches_complete"),
    "summary_count_wrong": (
        ["UPDATE main_marts.tier_summary SET customers = customers + 1 WHERE rule_set = 'cib_monthly' "
         "AND tier = 'GOLD' AND as_of_month = DATE '2026-10-31'"],
        "tier_summary.counts_match_customer_tier"),
    "tier_row_missing": (
        ["DELETE FROM main_marts.customer_tier WHERE cust_id = 'P003' AND rule_set = 'abc_quarterly'"],
        "customer_tier.agrees_with_customer_segment"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_each_blocking_expectation_fails_its_candidate(warehouse: Path, case: str) -> None:
    statements, expectation = FAILURES[case]
    mutate(warehouse, *statements)
    with pytest.raises(GateFailed) as failed:
        gate_flow.fn(AS_OF, settings_for(warehouse=warehouse))
    message = str(failed.value)
    assert "\n" not in message and expectation in message
    table, name = expectation.split(".")
    rows = stored(warehouse, "SELECT r.success, r.severity, g.success, g.blocking_failures "
                             "FROM gate.result AS r JOIN gate.run AS g USING (gate_run_id) "
                             "WHERE r.table_name = ? AND r.expectation = ?", [table, name])
    assert rows and rows[0][:3] == (False, "blocking", False) and rows[0][3] >= 1


@pytest.mark.parametrize("case", list(CHECK_FAILURES))
def test_more_blocking_checks_catch_their_defect(warehouse: Path, case: str) -> None:
    statements, expectation = CHECK_FAILURES[case]
    mutate(warehouse, *statements)
    table = expectation.split(".")[0]
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=(table,))
    failed = [r.full_name for r in results if not r.success and r.severity == "blocking"]
    assert expectation in failed


def test_failure_details_name_the_offending_figures(warehouse: Path) -> None:
    mutate(warehouse, *FAILURES["aum_off_by_one_cny"][0])
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=("customer_segment",))
    [aum] = [r for r in results if r.name == "total_aum_reconciles_with_raw_balances"]
    assert not aum.success and aum.observed_value == "1 unexpected row(s)"
    assert '"marts_total_cny": "20517451.61"' in aum.details
    assert '"raw_total_cny": "20517452.6129"' in aum.details


def test_pii_failure_details_hold_no_personal_data(warehouse: Path) -> None:
    mutate(warehouse, *CHECK_FAILURES["unmasked_name"][0])
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=("customer_segment",))
    [pii] = [r for r in results if r.name == "pii_masked"]
    assert not pii.success and '"unmasked_fields": "cust_name"' in pii.details and "李四光" not in pii.details


def test_failed_warning_does_not_block(warehouse: Path) -> None:
    mutate(warehouse, "UPDATE main_marts.customer_segment SET effective_from = DATE '2026-10-31'")
    result = gate_flow.fn(AS_OF, settings_for(warehouse=warehouse))
    assert result.success
    assert result.warning_failures == ["customer_segment.effective_from_next_month"]
    assert stored(warehouse, "SELECT success FROM gate.run") == [(True,)]


def test_missing_table_fails_its_checks_without_crashing(warehouse: Path) -> None:
    mutate(warehouse, "DROP TABLE main_marts.tier_migration")
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=("tier_migration",))
    assert results and all(not r.success and r.observed_value == "error" for r in results)
    assert "could not be read" in results[0].details


def test_report_is_self_contained(warehouse: Path) -> None:
    mutate(warehouse, *FAILURES["unknown_tier"][0])
    with pytest.raises(GateFailed):
        gate_flow.fn(AS_OF, settings_for(warehouse=warehouse))
    html = (warehouse / "reports" / "2026-10" / "gate.html").read_text(encoding="utf-8")
    assert "retail_value_tier_in_ladder" in html and "Blocked" in html
    lowered = html.lower()
    forbidden_bits = ("http://", "https://", "<script", "<link", "@import", "url(", "src=", "//cdn",
                      "@font-face")
    for forbidden in forbidden_bits:
        assert forbidden not in lowered, forbidden
    assert re.search(r"<style>.+</style>", html, re.S)


def test_gx_releases_the_file_after_validation(warehouse: Path) -> None:
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=("tier_summary",))
    assert results and all(r.success for r in results)
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))  # read-write: nobody may still hold the file
    con.execute("CREATE TABLE main.probe AS SELECT 1 AS x")
    con.close()


# --- Drift of tier shares vs the previous month (or the last published release's month, if earlier) ---

def _summary_rows(month: date, counts: dict[str, int], rule_set: str = "cib_monthly") -> str:
    values = ", ".join(f"(DATE '{month}', '{rule_set}', '{tier}', {n})" for tier, n in counts.items())
    return f"INSERT INTO main_marts.tier_summary (as_of_month, rule_set, tier, customers) VALUES {values}"


# October's cib_monthly shares in the golden database: NONCORE 2/5, CORE 1/5, GOLD 1/5, PLATINUM 1/5.
STABLE = {"NONCORE": 4, "CORE": 2, "GOLD": 2, "PLATINUM": 2, "BLACK": 0, "DIAMOND": 0}
MODERATE = {"NONCORE": 4, "CORE": 2, "GOLD": 3, "PLATINUM": 1, "BLACK": 0, "DIAMOND": 0}  # ±0.10
BIG = {"NONCORE": 1, "CORE": 1, "GOLD": 1, "PLATINUM": 7, "BLACK": 0, "DIAMOND": 0}  # PLATINUM 0.7 → 0.2


def _drift(warehouse: Path) -> dict[str, object]:
    results, reference = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=("tier_summary",))
    found = {r.name: r for r in results if r.name.startswith("tier_share_drift")}
    assert set(found) == {"tier_share_drift_warn", "tier_share_drift_block"}
    assert found["tier_share_drift_warn"].severity == "warning"
    assert found["tier_share_drift_block"].severity == "blocking"
    return {**found, "reference": reference}


def test_drift_stable_shares_pass(warehouse: Path) -> None:
    mutate(warehouse, _summary_rows(PREV, STABLE))
    found = _drift(warehouse)
    assert found["tier_share_drift_warn"].success and found["tier_share_drift_block"].success
    assert found["reference"]["drift_baseline_month"] == PREV


def test_drift_moderate_move_warns_only(warehouse: Path) -> None:
    mutate(warehouse, _summary_rows(PREV, MODERATE))
    found = _drift(warehouse)
    warn = found["tier_share_drift_warn"]
    assert not warn.success and found["tier_share_drift_block"].success
    assert "cib_monthly GOLD -0.1000" in warn.observed_value
    assert "cib_monthly PLATINUM 0.1000" in warn.observed_value
    result = gate_flow.fn(AS_OF, settings_for(warehouse=warehouse))
    assert result.success and "tier_summary.tier_share_drift_warn" in result.warning_failures


def test_drift_big_jump_blocks_naming_the_tier(warehouse: Path) -> None:
    mutate(warehouse, _summary_rows(PREV, BIG))
    with pytest.raises(GateFailed) as failed:
        gate_flow.fn(AS_OF, settings_for(warehouse=warehouse))
    message = str(failed.value)
    assert "tier_summary.tier_share_drift_block" in message and "cib_monthly PLATINUM -0.5000" in message
    assert "\n" not in message
    html = (warehouse / "reports" / "2026-10" / "gate.html").read_text(encoding="utf-8")
    assert "tier_share_drift_block" in html and "PLATINUM" in html


def test_drift_at_exactly_the_bound_does_not_fire(warehouse: Path) -> None:
    # GOLD 1/4 = 0.25 → 0.20 and NONCORE 1/4 → 0.40: moves of 0.05 (= warn bound) and 0.15.
    mutate(warehouse, _summary_rows(PREV, {"NONCORE": 1, "CORE": 1, "GOLD": 1, "PLATINUM": 1}))
    found = _drift(warehouse)
    assert not found["tier_share_drift_warn"].success  # NONCORE moved 0.15
    assert "GOLD" not in found["tier_share_drift_warn"].observed_value  # exactly 0.05: not above
    assert found["tier_share_drift_block"].success


def test_drift_without_a_previous_month_passes_with_a_note(warehouse: Path) -> None:
    mutate(warehouse, f"DELETE FROM main_marts.tier_summary WHERE as_of_month = DATE '{PREV}'")
    found = _drift(warehouse)
    for name in ("tier_share_drift_warn", "tier_share_drift_block"):
        assert found[name].success and "nothing to compare" in found[name].description


def test_drift_compares_with_the_last_release_when_it_is_earlier(warehouse: Path) -> None:
    august = date(2026, 8, 31)
    mutate(warehouse, _summary_rows(PREV, STABLE), _summary_rows(august, BIG))
    assert _drift(warehouse)["tier_share_drift_block"].success  # September is the baseline: stable
    con = duckdb.connect(str(warehouse / "published.duckdb"))
    con.execute("CREATE TABLE release_log (release_id VARCHAR, as_of_month DATE, published_at TIMESTAMP)")
    con.execute("INSERT INTO release_log VALUES ('r-aug', DATE '2026-08-31', TIMESTAMP '2026-09-02 08:00')")
    con.close()
    found = _drift(warehouse)
    assert found["reference"]["drift_baseline_month"] == august
    assert not found["tier_share_drift_block"].success
    assert "PLATINUM" in found["tier_share_drift_block"].observed_value


# --- Issue-3 classification columns and the AML marts (hand-built, consistent with the rules) ---

_STRATEGY = {**RULES.retail_strategies, **RULES.corporate_strategies} if hasattr(RULES, "retail_strategies") \
    else {}
# cust_id → rfm_r, rfm_f, r/f/m scores, rfm_class, activity, quadrant, need, credit grade, potential,
# reasons, class, churn, churn reason  (means over P001–P005: R 136, F 7.6, M 103290.32)
CLASSIFIED = {
    "P001": (5, 20, 5, 5, 2, "HHL", "HIGH", "LOW_VALUE_HIGH_ACTIVITY", "BASIC", "NONE", False, None, "C",
             False, None),
    "P002": (10, 15, 4, 4, 4, "HHH", "HIGH", "HIGH_VALUE_HIGH_ACTIVITY", "BASIC", "NONE", False, None, "B",
             False, None),
    "P003": (100, 2, 3, 3, 5, "HLH", "LOW", "HIGH_VALUE_LOW_ACTIVITY", "ADVANCED", "NONE", False, None, "A",
             True, "INACTIVE"),
    "P004": (200, 1, 2, 2, 3, "LLL", "LOW", "LOW_VALUE_LOW_ACTIVITY", "BASIC", "NONE", False, None, "C",
             False, None),
    "P005": (365, 0, 1, 1, 1, "LLL", "LOW", "LOW_VALUE_LOW_ACTIVITY", "BASIC", "LOW", True,
             "MORTGAGE_CURRENT", "B", False, None),
}
CLASSIFICATION_DDL = [
    "ALTER TABLE main_marts.customer_segment ADD COLUMN " + column for column in (
        "rfm_r INTEGER", "rfm_f INTEGER", "rfm_m DECIMAL(18,2)", "rfm_r_score INTEGER", "rfm_f_score INTEGER",
        "rfm_m_score INTEGER", "rfm_class VARCHAR", "rfm_class_name VARCHAR", "activity_level VARCHAR",
        "value_activity_quadrant VARCHAR", "quadrant_action VARCHAR", "need_level VARCHAR",
        "credit_grade VARCHAR", "potential_flag BOOLEAN", "potential_reasons VARCHAR",
        "customer_class VARCHAR", "churn_warning BOOLEAN", "churn_reason VARCHAR", "service_strategy VARCHAR",
        "credit_grade_reason VARCHAR", "customer_class_reason VARCHAR")
] + ["""
CREATE TABLE main_marts.aml_customer_risk AS
    SELECT as_of_month, cust_id,
           CASE cust_id WHEN 'P001' THEN 'HIGH' WHEN 'C001' THEN 'MEDIUM' ELSE 'LOW' END AS aml_level,
           CASE cust_id WHEN 'P001' THEN 'CASH_LARGE' WHEN 'C001' THEN 'KYC_MEDIUM' ELSE '' END AS aml_triggers
    FROM main_marts.customer_segment WHERE as_of_month = DATE '2026-10-31'""", """
CREATE TABLE main_marts.aml_trigger_transactions AS
    SELECT DATE '2026-10-31' AS as_of_month, 'P001' AS cust_id, 'CASH_LARGE' AS trigger, 'T0001' AS txn_id,
           TIMESTAMP '2026-10-12 10:00:00' AS txn_time, 'DEP' AS txn_type, CAST(60000 AS DECIMAL(18,2)) AS amount,
           'CNY' AS currency, CAST(60000 AS DECIMAL(38,8)) AS amount_cny, NULL::VARCHAR AS counterparty_country"""]


GRADE_REASON = {"NONE": "NO_LOAN", "LOW": "DPD_BELOW=1,FIVE_CLASS_BELOW=2"}


def _class_reason(klass: str, potential: bool) -> str:
    """A reason of the form the customer-class model publishes, for the fixture's class."""
    if klass == "A":
        return "TIER_AT_LEAST=PLATINUM,CREDIT_GRADE_IN=LOW|NONE"
    if klass == "B":
        return "POTENTIAL" if potential else "TIER_AT_LEAST=GOLD,CREDIT_GRADE_NOT_IN=HIGH"
    return "NOT_POTENTIAL,TIER_BELOW=GOLD"


def classify(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))
    for sql in CLASSIFICATION_DDL:
        con.execute(sql)
    names = RULES.rfm.class_names
    actions = RULES.quadrant.actions
    for cust, (r, f, rs, fs, ms, cls, act, quad, need, grade, pot, why, klass, churn, reason) in CLASSIFIED.items():
        con.execute("""UPDATE main_marts.customer_segment SET rfm_r = ?, rfm_f = ?, rfm_m = avg_daily_aum_cny,
                           rfm_r_score = ?, rfm_f_score = ?, rfm_m_score = ?, rfm_class = ?, rfm_class_name = ?,
                           activity_level = ?, value_activity_quadrant = ?, quadrant_action = ?, need_level = ?,
                           credit_grade = ?, potential_flag = ?, potential_reasons = ?, customer_class = ?,
                           churn_warning = ?, churn_reason = ?, service_strategy = ?
                       WHERE cust_id = ? AND as_of_month = ?""",
                    [r, f, rs, fs, ms, cls, names[cls], act, quad, actions[quad], need, grade, pot, why, klass,
                     churn, reason, _STRATEGY[CLASSIFIED_TIER[cust]], cust, AS_OF])
        con.execute("UPDATE main_marts.customer_segment SET credit_grade_reason = ?, customer_class_reason = ? "
                    "WHERE cust_id = ? AND as_of_month = ?",
                    [GRADE_REASON[grade], _class_reason(klass, pot), cust, AS_OF])
    for cust, grade in (("C001", "NONE"), ("C002", "LOW")):
        con.execute("UPDATE main_marts.customer_segment SET need_level = 'PROFESSIONAL', credit_grade = ?, "
                    "credit_grade_reason = ?, service_strategy = ? WHERE cust_id = ? AND as_of_month = ?",
                    [grade, GRADE_REASON[grade], _STRATEGY[CLASSIFIED_TIER[cust]], cust, AS_OF])
    con.close()


CLASSIFIED_TIER = {cust: row[4] for cust, row in SEGMENT.items()}

CLASSIFICATION_FAILURES = {
    "unknown_rfm_class": ("UPDATE main_marts.customer_segment SET rfm_class = 'XYZ' WHERE cust_id = 'P001'",
                          "customer_segment.rfm_class_known"),
    "score_out_of_range": ("UPDATE main_marts.customer_segment SET rfm_r_score = 6 WHERE cust_id = 'P001'",
                           "customer_segment.rfm_r_score_1_to_5"),
    "unknown_rfm_class_name": ("UPDATE main_marts.customer_segment SET rfm_class_name = '随便' WHERE cust_id = 'P001'",
                               "customer_segment.rfm_class_name_known"),
    "class_with_another_class_reason": ("UPDATE main_marts.customer_segment SET customer_class = 'A' "
                                        "WHERE cust_id = 'P002'",
                                        "customer_segment.customer_class_reason_agrees_with_class"),
    "potential_reason_without_flag": ("UPDATE main_marts.customer_segment SET customer_class_reason = 'POTENTIAL' "
                                      "WHERE cust_id = 'P002'",
                                      "customer_segment.customer_class_reason_agrees_with_class"),
    "grade_with_another_grade_reason": ("UPDATE main_marts.customer_segment SET credit_grade = 'MEDIUM' "
                                        "WHERE cust_id = 'P003'",
                                        "customer_segment.credit_grade_reason_agrees_with_grade"),
    "churn_without_reason": ("UPDATE main_marts.customer_segment SET churn_warning = TRUE, churn_reason = NULL "
                             "WHERE cust_id = 'P004'", "customer_segment.reasons_agree_with_flags"),
    "potential_without_reason": ("UPDATE main_marts.customer_segment SET potential_flag = TRUE, "
                                 "potential_reasons = NULL WHERE cust_id = 'P004'",
                                 "customer_segment.reasons_agree_with_flags"),
    "rfm_m_not_aum": ("UPDATE main_marts.customer_segment SET rfm_m = rfm_m + 0.01 WHERE cust_id = 'P002'",
                      "customer_segment.rfm_m_equals_avg_daily_aum"),
    "retail_column_on_corporate": ("UPDATE main_marts.customer_segment SET rfm_class = 'HHH' WHERE cust_id = 'C002'",
                                   "customer_segment.retail_only_columns_null_for_corporate"),
    "quadrant_of_another_activity": ("UPDATE main_marts.customer_segment "
                                     "SET value_activity_quadrant = 'HIGH_VALUE_LOW_ACTIVITY' WHERE cust_id = 'P001'",
                                     "customer_segment.quadrant_agrees_with_activity"),
    "strategy_missing": ("UPDATE main_marts.customer_segment SET service_strategy = NULL WHERE cust_id = 'C001'",
                         "customer_segment.every_customer_classified"),
    "retail_credit_grade_missing": ("UPDATE main_marts.customer_segment SET credit_grade = NULL "
                                    "WHERE cust_id = 'P004'", "customer_segment.every_customer_classified"),
    "aml_duplicate": ("INSERT INTO main_marts.aml_customer_risk SELECT * FROM main_marts.aml_customer_risk "
                      "WHERE cust_id = 'P002'", "aml_customer_risk.one_row_per_customer_month"),
    "aml_unknown_level": ("UPDATE main_marts.aml_customer_risk SET aml_level = 'SEVERE' WHERE cust_id = 'P002'",
                          "aml_customer_risk.aml_level_known"),
    "aml_high_without_trigger": ("UPDATE main_marts.aml_customer_risk SET aml_level = 'HIGH' "
                                 "WHERE cust_id = 'P002'", "aml_customer_risk.level_follows_triggers"),
    "aml_trigger_but_low": ("UPDATE main_marts.aml_customer_risk SET aml_level = 'LOW' WHERE cust_id = 'P001'",
                            "aml_customer_risk.level_follows_triggers"),
    "aml_customer_missing": ("DELETE FROM main_marts.aml_customer_risk WHERE cust_id = 'C002'",
                             "aml_customer_risk.customers_match_customer_segment"),
    "aml_txn_without_trigger": ("UPDATE main_marts.aml_customer_risk SET aml_level = 'LOW', aml_triggers = '' "
                                "WHERE cust_id = 'P001'", "aml_trigger_transactions.agrees_with_aml_customer_risk"),
    "aml_cash_below_bound": ("UPDATE main_marts.aml_trigger_transactions SET amount_cny = 49999.99",
                             "aml_trigger_transactions.transactions_meet_their_trigger"),
}


def test_classified_candidate_passes_every_classification_check(warehouse: Path) -> None:
    classify(warehouse)
    tables = ("customer_segment", "aml_customer_risk", "aml_trigger_transactions")
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=tables)
    failed = {r.full_name: (r.observed_value, r.details) for r in results if not r.success}
    assert failed == {}
    names = {r.full_name for r in results}
    assert {c for _, c in CLASSIFICATION_FAILURES.values()} <= names
    assert sum(r.table.startswith("aml_") for r in results) >= 10


def test_classification_checks_wait_for_the_columns(warehouse: Path) -> None:
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES,
                            tables=("customer_segment", "aml_customer_risk", "aml_trigger_transactions"))
    assert all(r.success for r in results)
    assert not {"rfm_class_known", "customer_class_reason_agrees_with_class"} & {r.name for r in results}
    assert not any(r.table.startswith("aml_") for r in results)
    # Half the columns there: the present ones are checked and a warning names the missing ones.
    mutate(warehouse, *CLASSIFICATION_DDL[:7])
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=("customer_segment",))
    by_name = {r.name: r for r in results}
    assert "rfm_r_score_1_to_5" in by_name and "customer_class_known" not in by_name
    assert by_name["classification_columns_complete"].severity == "warning"
    assert not by_name["classification_columns_complete"].success


@pytest.mark.parametrize("case", list(CLASSIFICATION_FAILURES))
def test_each_classification_check_catches_its_defect(warehouse: Path, case: str) -> None:
    classify(warehouse)
    statement, expectation = CLASSIFICATION_FAILURES[case]
    mutate(warehouse, statement)
    table = expectation.split(".")[0]
    results, _ = run_checks(settings_for(warehouse=warehouse), AS_OF, RULES, tables=(table,))
    failed = [r.full_name for r in results if not r.success and r.severity == "blocking"]
    assert expectation in failed
