"""The gate on a hand-built working database: a passing candidate, then one failure per blocking check."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import flows  # noqa: F401  (no-telemetry environment before GX/Prefect load)
from flows.gate import GateFailed, gate_flow
from flows.lib.gate import run_checks
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES

AS_OF = date(2026, 10, 31)
PREV = date(2026, 9, 30)
RULES = load_rules(DEFAULT_RULES)
DAYS = 31
USD_RATE = Decimal("7.100000")

# cust_id, cust_type, status, name, cert_no, mobile
CUSTOMERS = [
    ("P001", "P", "A", "张三", "110101199001011234", "13812345678"),
    ("P002", "P", "A", "李四光", "110101198502023456", "13900001111"),
    ("P003", "P", "A", "王五", "310101197003035678", "13700002222"),
    ("P004", "P", "D", "赵六", "440101196004047890", "13600003333"),
    ("P005", "P", "A", "钱七", "510101199505051357", "13500004444"),
    ("C001", "C", "A", "兴华贸易有限公司", "91350100MA2XKXXX1", "05911234567"),
    ("C002", "C", "A", "闽江建设集团", "91350100MA2YKYYY2", "05917654321"),
    ("P006", "P", "C", "孙八", "120101198806062468", "13400005555"),  # closed: no tier
]
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

RAW_DDL = """
CREATE SCHEMA raw; CREATE SCHEMA audit; CREATE SCHEMA main_marts;
CREATE TABLE raw.cbs_customer (batch_date DATE, cust_id VARCHAR, cust_type VARCHAR, cust_name VARCHAR,
    cert_type VARCHAR, cert_no VARCHAR, mobile VARCHAR, birth_date DATE, gender VARCHAR, education VARCHAR,
    occupation VARCHAR, monthly_income DECIMAL(18,2), industry_code VARCHAR, branch_id VARCHAR,
    open_date DATE, kyc_risk_level VARCHAR, status VARCHAR);
CREATE TABLE raw.cbs_account (batch_date DATE, acct_id VARCHAR, cust_id VARCHAR, product_type VARCHAR,
    currency VARCHAR, open_date DATE, close_date DATE, status VARCHAR);
CREATE TABLE raw.cbs_balance (batch_date DATE, acct_id VARCHAR, bal_date DATE, balance DECIMAL(18,2),
    currency VARCHAR);
CREATE TABLE raw.cbs_fx_rate (batch_date DATE, currency VARCHAR, rate_date DATE, cny_per_unit DECIMAL(18,6));
CREATE TABLE audit.batch_log (batch_date DATE, table_name VARCHAR, file_name VARCHAR, records BIGINT,
    loaded BIGINT, quarantined BIGINT, byte_size BIGINT, md5 VARCHAR, encoding VARCHAR, status VARCHAR,
    message VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP);
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
    """A working database for October 2026 that passes every check (plus a September with bad rows)."""
    con = duckdb.connect(str(path))
    con.execute(RAW_DDL)
    for snapshot in (PREV, AS_OF):
        con.executemany(
            "INSERT INTO raw.cbs_customer (batch_date, cust_id, cust_type, cust_name, cert_type, cert_no, "
            "mobile, branch_id, status) VALUES (?, ?, ?, ?, 'ID', ?, ?, 'B001', ?)",
            [(snapshot, c, t, n, cert, m, s) for c, t, s, n, cert, m in CUSTOMERS])
        con.executemany("INSERT INTO raw.cbs_account VALUES (?, ?, ?, ?, ?, DATE '2020-01-01', NULL, 'A')",
                        [(snapshot, a, c, p, cur) for a, c, p, cur, _, _ in ACCOUNTS])
    for acct, _, _, currency, balance, days in ACCOUNTS:
        con.execute("""INSERT INTO raw.cbs_balance SELECT d::DATE, ?, d::DATE, ?, ?
                       FROM generate_series(DATE '2026-09-01', ?::DATE, INTERVAL 1 DAY) AS g(d)""",
                    [acct, balance, currency, date(2026, 10, days)])
    con.execute("""INSERT INTO raw.cbs_fx_rate SELECT d::DATE, cur, d::DATE, rate
                   FROM generate_series(DATE '2026-09-01', DATE '2026-10-31', INTERVAL 1 DAY) AS g(d),
                        (VALUES ('USD', 7.100000), ('CNY', 1.000000)) AS r(cur, rate)""")
    con.execute("""INSERT INTO audit.batch_log
                   SELECT d::DATE, t, t || '_' || strftime(d, '%Y%m%d') || '.dat', 100, 100, 0, 1000, 'x',
                          'GBK', 'LOADED', NULL, d, d
                   FROM generate_series(DATE '2026-09-01', DATE '2026-10-31', INTERVAL 1 DAY) AS g(d),
                        (VALUES ('CBS_CUSTOMER'), ('CBS_ACCOUNT'), ('CBS_BALANCE'), ('CBS_FX_RATE'),
                                ('CBS_TXN'), ('CBS_LOAN')) AS x(t)""")
    con.execute("UPDATE audit.batch_log SET loaded = 97, quarantined = 3 "
                "WHERE batch_date = DATE '2026-10-15' AND table_name = 'CBS_TXN'")

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
def golden_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("golden") / "tiering.duckdb"
    build_working_db(path)
    return path


@pytest.fixture
def warehouse(golden_db: Path, tmp_path: Path) -> Path:
    """A fresh copy of the passing working database in `<tmp>/warehouse`."""
    root = tmp_path / "warehouse"
    root.mkdir()
    shutil.copy(golden_db, root / "tiering.duckdb")
    return root


def mutate(warehouse: Path, *statements: str) -> None:
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))
    for sql in statements:
        con.execute(sql)
    con.close()


def stored(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_passing_candidate_passes_every_check_and_is_stored(warehouse: Path) -> None:
    result = gate_flow.fn(str(warehouse), "2026-10-31")
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


# One failing candidate per headline blocking check: (SQL applied to the passing database, check named).
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
        ["INSERT INTO raw.cbs_customer (batch_date, cust_id, cust_type, cust_name, status) "
         "VALUES (DATE '2026-10-31', 'P007', 'P', '周九', 'A')"],
        "customer_segment.row_count_equals_eligible_customers"),
    "aum_off_by_one_cny": (
        # 31.00 CNY more on one day of the month = 1.00 CNY more of average daily AUM in raw.
        ["UPDATE raw.cbs_balance SET balance = balance + 31 "
         "WHERE acct_id = 'A001' AND bal_date = DATE '2026-10-07'"],
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
        ["DELETE FROM audit.batch_log WHERE batch_date = DATE '2026-10-09' AND table_name = 'CBS_BALANCE'"],
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
        gate_flow.fn(str(warehouse), "2026-10-31")
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
    results, _ = run_checks(warehouse / "tiering.duckdb", AS_OF, RULES, tables=(table,))
    failed = [r.full_name for r in results if not r.success and r.severity == "blocking"]
    assert expectation in failed


def test_failure_details_name_the_offending_figures(warehouse: Path) -> None:
    mutate(warehouse, *FAILURES["aum_off_by_one_cny"][0])
    results, _ = run_checks(warehouse / "tiering.duckdb", AS_OF, RULES, tables=("customer_segment",))
    [aum] = [r for r in results if r.name == "total_aum_reconciles_with_raw_balances"]
    assert not aum.success and aum.observed_value == "1 unexpected row(s)"
    assert '"marts_total_cny": "20517451.61"' in aum.details
    assert '"raw_total_cny": "20517452.6129"' in aum.details


def test_pii_failure_details_hold_no_personal_data(warehouse: Path) -> None:
    mutate(warehouse, *CHECK_FAILURES["unmasked_name"][0])
    results, _ = run_checks(warehouse / "tiering.duckdb", AS_OF, RULES, tables=("customer_segment",))
    [pii] = [r for r in results if r.name == "pii_masked"]
    assert not pii.success and '"unmasked_fields": "cust_name"' in pii.details and "李四光" not in pii.details


def test_failed_warning_does_not_block(warehouse: Path) -> None:
    mutate(warehouse, "UPDATE main_marts.customer_segment SET effective_from = DATE '2026-10-31'")
    result = gate_flow.fn(str(warehouse), "2026-10-31")
    assert result.success
    assert result.warning_failures == ["customer_segment.effective_from_next_month"]
    assert stored(warehouse, "SELECT success FROM gate.run") == [(True,)]


def test_missing_table_fails_its_checks_without_crashing(warehouse: Path) -> None:
    mutate(warehouse, "DROP TABLE main_marts.tier_migration")
    results, _ = run_checks(warehouse / "tiering.duckdb", AS_OF, RULES, tables=("tier_migration",))
    assert results and all(not r.success and r.observed_value == "error" for r in results)
    assert "could not be read" in results[0].details


def test_report_is_self_contained(warehouse: Path) -> None:
    mutate(warehouse, *FAILURES["unknown_tier"][0])
    with pytest.raises(GateFailed):
        gate_flow.fn(str(warehouse), "2026-10-31")
    html = (warehouse / "reports" / "2026-10" / "gate.html").read_text(encoding="utf-8")
    assert "retail_value_tier_in_ladder" in html and "Blocked" in html
    lowered = html.lower()
    forbidden_bits = ("http://", "https://", "<script", "<link", "@import", "url(", "src=", "//cdn",
                      "@font-face")
    for forbidden in forbidden_bits:
        assert forbidden not in lowered, forbidden
    assert re.search(r"<style>.+</style>", html, re.S)


def test_gx_releases_the_file_after_validation(warehouse: Path) -> None:
    results, _ = run_checks(warehouse / "tiering.duckdb", AS_OF, RULES, tables=("tier_summary",))
    assert results and all(r.success for r in results)
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))  # read-write: nobody may still hold the file
    con.execute("CREATE TABLE main.probe AS SELECT 1 AS x")
    con.close()
