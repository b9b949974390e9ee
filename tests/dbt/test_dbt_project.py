"""dbt project end to end: unit tests and models on an empty database, then one hand-made month.

One module-scoped database is built once per stage (dbt invocations cost seconds each).
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

import flows  # noqa: F401  (no-telemetry environment before dbt loads)
from flows.adapters.dbt_runner import DbtBuildError, prepare_seeds, run_dbt
from flows.rules import load_rules
from flows.settings import Settings
from flows.stages.build import NodeProgress
from flows.stages.extracts import ensure_schema
from tests.support.isolation import settings_for
from tests.support.raw_batches import load_rows, set_batch_status

MONTH_START, AS_OF = dt.date(2024, 2, 1), dt.date(2024, 2, 29)  # a leap February: 29 days
DAYS = [MONTH_START + dt.timedelta(days=i) for i in range(29)]
TABLES = ("CBS_CUSTOMER", "CBS_ACCOUNT", "CBS_BALANCE", "CBS_TXN", "CBS_LOAN", "CBS_FX_RATE")
CUSTOMERS = [
    # cust_id, type, name, cert_no, mobile, month-end status
    ("P001", "P", "张三丰", "110101199001011234", "13812345678", "A"),
    ("P002", "P", "欧阳娜娜", "110101199202023456", None, "A"),
    ("P003", "P", "李四", "110101199303033456", "13900001111", "D"),
    ("P004", "P", "王五", "110101199404044567", "13700002222", "C"),
    ("P005", "P", "赵六", "110101199505055678", "13600003333", "A"),
    ("C001", "C", "某某科技有限公司", "91310000MA1234567X", "02112345678", "A"),
]
ACCOUNTS = [
    # acct_id, cust_id, product, currency
    ("A1", "P001", "CASA", "CNY"),
    ("A2", "P002", "TD", "USD"),
    ("A3", "P002", "LOAN", "CNY"),
    ("A4", "P003", "TD", "CNY"),
    ("A5", "P004", "CASA", "CNY"),
    ("A6", "P005", "FUND", "CNY"),
    ("A7", "P005", "CARD", "CNY"),
    ("A8", "C001", "CASA", "CNY"),
]


def usd_rate(day: dt.date) -> Decimal:
    """A different USD rate every day, so using another day's rate would show."""
    return Decimal("7.100010") + Decimal("0.000001") * day.day


def balance(acct_id: str, day: dt.date) -> Decimal | None:
    """End-of-day balance, or None when the account has no balance row that day."""
    if acct_id == "A4":  # opened on the 10th, closed after the 20th: the other days count 0
        return Decimal("300000.00") if 10 <= day.day <= 20 else None
    return {"A1": Decimal("10000.00"), "A2": Decimal("1000.00"), "A3": Decimal("1000000.00"),
            "A5": Decimal("50000.00"), "A6": Decimal("6000000.00"), "A7": Decimal("9000000.00"),
            "A8": Decimal("9999999.99")}[acct_id]


def load_month(db: Path) -> None:
    """Commit a complete month of raw rows (LOADED batch_log rows for every table and day) to the raw zone."""
    for day in DAYS:
        load_rows(db, day, {
            "CUSTOMER": [{"cust_id": c[0], "cust_type": c[1], "cust_name": c[2], "cert_type": "01", "cert_no": c[3],
                          "mobile": c[4], "branch_id": "B01", "open_date": dt.date(2020, 1, 1),
                          "kyc_risk_level": "L", "status": c[5] if day == AS_OF else "A"} for c in CUSTOMERS],
            "ACCOUNT": [{"acct_id": a[0], "cust_id": a[1], "product_type": a[2], "currency": a[3],
                         "open_date": dt.date(2020, 1, 1), "status": "A"} for a in ACCOUNTS],
            "BALANCE": [{"acct_id": a[0], "bal_date": day, "balance": balance(a[0], day), "currency": a[3]}
                        for a in ACCOUNTS if balance(a[0], day) is not None],
            "FX_RATE": [{"currency": "USD", "rate_date": day, "cny_per_unit": usd_rate(day)}],
            "LOAN": [{"loan_id": "L1", "cust_id": "C001", "acct_id": "A9", "loan_type": "BIZ",
                      "principal": Decimal("60000000.00"), "outstanding": Decimal("50000000.00"), "currency": "CNY",
                      "dpd": 0, "five_class": "1", "maturity_date": dt.date(2030, 1, 1)}],
        })


def expected_avg(total: Decimal, days: int) -> Decimal:
    """Reference rounding: exact decimal average, half up to cents."""
    return (total / days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_aum(cust_id: str) -> Decimal:
    aum_products = set(load_rules(Settings(warehouse=Path(".")).rules_path).aum_product_types)
    total = Decimal(0)
    for day in DAYS:
        for acct_id, owner, product, currency in ACCOUNTS:
            amount = balance(acct_id, day)
            if owner == cust_id and product in aum_products and amount is not None:
                total += amount * (usd_rate(day) if currency == "USD" else 1)
    return total


def dbt_args(base: list[str], tmp: Path) -> list[str]:
    # Own target and log dirs: other runs in the same checkout must not share partial-parse state.
    return [*base, "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]


# The month build's node progress, as the build flow's callback recorded it.
BUILD_PROGRESS: dict[str, NodeProgress] = {}


@pytest.fixture(scope="module")
def empty_build(tmp_path_factory):
    """Seeds from the shipped rules, then `dbt build` (unit tests, models, data tests) on empty raw tables."""
    tmp = tmp_path_factory.mktemp("dbt_empty")
    settings = settings_for(warehouse=tmp / "warehouse")
    settings.warehouse.mkdir()
    con = duckdb.connect(str(settings.working_db))
    ensure_schema(con, settings.warehouse)
    con.close()
    prepare_seeds(settings)
    result = run_dbt(dbt_args(["build"], tmp), settings)
    return settings, result, tmp


@pytest.fixture(scope="module")
def month_build(empty_build):
    """The same database with one complete month loaded, built for as_of = its last day."""
    settings, _, tmp = empty_build
    load_month(settings.working_db)
    # The unit tests already ran in the empty build; this run exercises models and data tests on data.
    nodes = NodeProgress("build 2024-02")
    result = run_dbt(dbt_args(["build", "--exclude-resource-type", "unit_test"], tmp), settings, as_of=AS_OF,
                     callbacks=[nodes])
    BUILD_PROGRESS["month"] = nodes
    return settings, result, tmp


def query(settings: Settings, sql: str) -> list[tuple]:
    con = duckdb.connect(str(settings.working_db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_empty_database_build_succeeds(empty_build):
    _, result, _ = empty_build
    assert result.success, result.error_message()
    assert result.failures == []
    assert result.nodes_run > 100  # seeds, models, unit tests and data tests all ran


def test_month_build_succeeds(month_build):
    _, result, _ = month_build
    assert result.success, result.error_message()


def test_build_progress_counts_every_node_of_the_month(month_build):
    """The terminal bar's "dbt nodes done of N" comes from dbt's own events: every node, once."""
    _, result, _ = month_build
    nodes = BUILD_PROGRESS["month"]
    assert nodes.total == result.nodes_run == nodes.done == len(nodes.nodes)
    assert {n["status"] for n in nodes.nodes} == {"success", "pass"}
    assert any(n["node"] == "model.tiering.customer_segment" for n in nodes.nodes)


def test_published_averages_are_exact_and_rounded_half_up(month_build):
    settings, _, _ = month_build
    rows = {r[0]: r[1:] for r in query(settings, """
        select cust_id, avg_daily_aum_cny, aum_3m_avg_cny, aum_days, aum_3m_days, avg_daily_deposit_cny,
               loan_outstanding_cny
        from main_marts.customer_segment where as_of_month = date '2024-02-29'""")}
    assert set(rows) == {"P001", "P002", "P003", "P005", "C001"}  # P004 closed at month end: no row
    for cust_id in rows:
        assert rows[cust_id][0] == expected_avg(expected_aum(cust_id), 29), cust_id
        assert rows[cust_id][1] == rows[cust_id][0]  # the window starts at the first loaded date
        assert rows[cust_id][2:4] == (29, 29)
    # USD at that day's rate: 1000 × (7.100010 + d/10^6) averages exactly 7,100.025 → 7,100.03 (half up)
    assert rows["P002"][0] == Decimal("7100.03")
    assert rows["P003"][0] == Decimal("113793.10")  # 11 days of 300,000, the other 18 count 0
    assert rows["P005"][0] == Decimal("6000000.00")  # the CARD balance is a debt, not AUM
    assert rows["C001"][4:] == (Decimal("9999999.99"), Decimal("50000000.00"))


def test_tiers_and_versions(month_build):
    settings, _, _ = month_build
    rules = load_rules(settings.rules_path)
    segment = {r[0]: r[1:] for r in query(settings, """
        select cust_id, value_tier, implied_tier, tier_floor_cny, tier_change, rule_set, rule_set_version,
               rules_version, effective_from, on_watch
        from main_marts.customer_segment""")}
    assert segment["P001"][:5] == ("CORE", "CORE", Decimal("10000.00"), "NEW", "cib_monthly")
    assert segment["P002"][0] == "NONCORE"
    assert segment["P003"][0] == "GOLD"
    assert segment["P005"][0] == "DIAMOND"
    # Reached by the loan floor: the floor shown is that ladder's, as in customer_tier.
    assert segment["C001"][:3] == ("KEY", "KEY", Decimal("50000000.00"))
    assert segment["C001"][4:6] == ("corporate", rules.corporate_version)
    assert segment["P001"][5:7] == (rules.active.version, rules.version)
    assert segment["P001"][7] == dt.date(2024, 3, 1) and segment["P001"][8] is False

    tiers = {(r[0], r[1]): r[2:] for r in query(settings, """
        select cust_id, rule_set, tier, measure, measure_value_cny, tier_floor_cny from main_marts.customer_tier""")}
    assert tiers[("P005", "abc_quarterly")][:2] == ("DIAMOND_CARD", "avg_daily_aum_3m")
    assert tiers[("C001", "corporate")] == ("KEY", "loan_outstanding_month_end", Decimal("50000000.00"),
                                            Decimal("50000000.00"))

    summary = {r[0]: r[1:] for r in query(settings, """
        select tier, customers, share_of_customers from main_marts.tier_summary
        where rule_set = 'cib_monthly'""")}
    assert len(summary) == len(rules.rule_sets["cib_monthly"].tiers)
    assert summary["PLATINUM"] == (0, Decimal("0"))
    assert summary["GOLD"] == (1, Decimal("0.25"))
    migration = query(settings, "select count(*), sum(customers) from main_marts.tier_migration "
                                "where rule_set = 'cib_monthly' and from_tier is null")
    assert migration == [(4, 4)]


def test_personal_data_is_masked(month_build):
    settings, _, _ = month_build
    masked = {r[0]: r[1:] for r in query(settings, """
        select cust_id, cust_name_masked, cert_no_masked, mobile_masked from main_marts.customer_segment""")}
    assert masked["P001"] == ("张**", "110***********1234", "138****5678")
    assert masked["P002"] == ("欧***", "110***********3456", None)
    columns = {r[0] for r in query(settings, """
        select column_name from information_schema.columns where table_schema = 'main_marts'""")}
    assert not columns & {"cust_name", "cert_no", "mobile"}
    raw_values = {v for c in CUSTOMERS for v in c[2:5] if v}
    for table in ("customer_segment", "customer_tier", "tier_summary", "tier_migration"):
        text = " ".join(str(v) for row in query(settings, f"select * from main_marts.{table}") for v in row)
        assert not any(value in text for value in raw_values), table


def test_missing_balance_date_fails_naming_it(month_build, tmp_path):
    settings, _, tmp = month_build
    # A copy, so the other tests keep their complete month.
    copy = settings_for(warehouse=tmp_path / "warehouse")
    copy.warehouse.mkdir()
    shutil.copy(settings.working_db, copy.working_db)
    shutil.copytree(settings.warehouse / "raw", copy.warehouse / "raw")
    set_batch_status(copy.working_db, dt.date(2024, 2, 17), "CBS_BALANCE", "REJECTED")
    for day in range(20, 30):  # a run of missing days is named as a range, not day by day
        set_batch_status(copy.working_db, dt.date(2024, 2, day), "CBS_BALANCE", "REJECTED")
    result = run_dbt(dbt_args(["build"], tmp_path), copy, as_of=AS_OF)
    assert not result.success
    assert ("missing CBS_BALANCE batches for 2024-02: 2024-02-17, 2024-02-20 … 2024-02-29 (10 days)"
            in result.error_message())
    with pytest.raises(DbtBuildError) as info:
        result.raise_on_failure()
    assert "2024-02-17" in str(info.value) and "\n" not in str(info.value)


def test_an_incomplete_rules_section_fails_the_build(month_build, tmp_path):
    """A section seed with an empty rule fails its completeness test: no rule silently reads as NULL."""
    settings, _, _ = month_build
    copy = settings_for(warehouse=tmp_path / "warehouse")
    copy.warehouse.mkdir()
    shutil.copy(settings.working_db, copy.working_db)
    seed = settings.dbt_project_dir / "seeds" / "rule_churn.csv"
    complete = seed.read_text(encoding="utf-8")
    header, row = complete.splitlines()
    assert header.startswith("min_tier,")
    seed.write_text(f"{header}\n,{row.split(',', 1)[1]}\n", encoding="utf-8")
    try:
        result = run_dbt(dbt_args(["build", "--select", "rule_churn"], tmp_path), copy)
    finally:
        seed.write_text(complete, encoding="utf-8")
    assert not result.success
    assert "exactly_one_complete_row_rule_churn" in result.error_message()
