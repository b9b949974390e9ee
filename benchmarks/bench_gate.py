"""Time the gate's expectations on N synthetic customers (default 1,000,000) in a throw-away DuckDB file.

    .venv/bin/python benchmarks/bench_gate.py --rows 1000000
"""

from __future__ import annotations

import argparse
import calendar
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project root

import flows  # noqa: E402,F401  (no-telemetry environment before GX loads)
from expectations.suites import SUITES  # noqa: E402
from flows.rules import Rules, load_rules  # noqa: E402
from flows.settings import DEFAULT_RULES, Settings  # noqa: E402
from flows.stages.gate_checks import run_checks  # noqa: E402

SCHEMAS = """
CREATE SCHEMA raw; CREATE SCHEMA audit; CREATE SCHEMA main_marts;
CREATE TABLE audit.batch_log (batch_date DATE, table_name VARCHAR, file_name VARCHAR, records BIGINT,
    loaded BIGINT, quarantined BIGINT, byte_size BIGINT, md5 VARCHAR, encoding VARCHAR, status VARCHAR,
    message VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP);
CREATE TABLE raw.cbs_fx_rate (batch_date DATE, currency VARCHAR, rate_date DATE, cny_per_unit DECIMAL(18,6));
"""


def _tier_case(column: str, ladder: list[tuple[str, object]]) -> str:
    """SQL CASE giving the highest tier whose floor `column` reaches (ladder lowest first)."""
    whens = " ".join(f"WHEN {column} >= {floor} THEN '{code}'" for code, floor in reversed(ladder[1:]))
    return f"CASE {whens} ELSE '{ladder[0][0]}' END"


def build(path: Path, rows: int, as_of: date, rules: Rules) -> None:
    """A working database whose month `as_of` has `rows` customers and passes every blocking check."""
    days = calendar.monthrange(as_of.year, as_of.month)[1]
    start = as_of.replace(day=1)
    active = rules.active
    abc_name = next(n for n in rules.rule_sets if n != rules.active_rule_set)
    abc = rules.rule_sets[abc_name]
    corp_types = "', '".join(rules.corporate_cust_types)
    con = duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")
    con.execute(SCHEMAS)
    con.execute(f"""
        CREATE TABLE raw.cbs_customer AS
        SELECT DATE '{as_of}' AS batch_date, printf('C%09d', i) AS cust_id,
               CASE WHEN i % 20 = 0 THEN 'C' ELSE 'P' END AS cust_type, '张三' AS cust_name, 'ID' AS cert_type,
               '110101199001011234' AS cert_no, '13812345678' AS mobile, 'B' || (i % 50) AS branch_id,
               'A' AS status, CAST((i * 7919) % 300000000 AS DECIMAL(18, 2)) AS aum_cny
        FROM range({rows}) AS r(i)""")
    con.execute("""CREATE TABLE raw.cbs_account AS SELECT batch_date, 'A' || cust_id AS acct_id, cust_id,
                    'CASA' AS product_type, 'CNY' AS currency FROM raw.cbs_customer""")
    # One balance row on the 1st worth `days` × the average: the month's average is exact.
    con.execute(f"""CREATE TABLE raw.cbs_balance AS
                    SELECT DATE '{start}' AS batch_date, 'A' || cust_id AS acct_id,
                           DATE '{start}' AS bal_date,
                           CAST(aum_cny * {days} AS DECIMAL(18, 2)) AS balance, 'CNY' AS currency
                    FROM raw.cbs_customer""")
    con.execute(f"""INSERT INTO audit.batch_log
                    SELECT d::DATE, t, t || '.dat', 100000, 100000, 0, 1, 'x', 'UTF-8', 'LOADED', NULL, d, d
                    FROM generate_series(DATE '{start}', DATE '{as_of}', INTERVAL 1 DAY) AS g(d),
                         (VALUES ('CBS_CUSTOMER'), ('CBS_ACCOUNT'), ('CBS_BALANCE')) AS x(t)""")
    retail = _tier_case("aum_cny", [(t.code, t.floor_cny) for t in active.tiers])
    corporate = _tier_case("aum_cny", [(t.code, t.deposit_floor_cny) for t in rules.corporate_tiers])
    con.execute(f"""
        CREATE TABLE main_marts.customer_segment AS
        SELECT DATE '{as_of}' AS as_of_month, cust_id, cust_type, branch_id, '张*' AS cust_name_masked,
               '110***********1234' AS cert_no_masked, '138****5678' AS mobile_masked,
               aum_cny AS avg_daily_aum_cny, aum_cny AS aum_3m_avg_cny, {days} AS aum_days, 92 AS aum_3m_days,
               aum_cny AS avg_daily_deposit_cny, CAST(0 AS DECIMAL(18, 2)) AS loan_outstanding_cny,
               tier AS value_tier, tier AS value_tier_name, tier AS implied_tier,
               CAST(0 AS DECIMAL(18, 2)) AS tier_floor_cny, 0 AS months_below, 3 AS grace_months,
               FALSE AS on_watch, tier AS previous_tier, 'SAME' AS tier_change,
               DATE '{as_of}' + 1 AS effective_from,
               CASE WHEN cust_type = 'P' THEN '{active.name}' ELSE 'corporate' END AS rule_set,
               CASE WHEN cust_type = 'P' THEN '{active.version}' ELSE '{rules.corporate_version}' END
               AS rule_set_version, '{rules.version}' AS rules_version
        FROM (SELECT *, CASE WHEN cust_type IN ('{corp_types}') THEN {corporate} ELSE {retail} END AS tier
              FROM raw.cbs_customer)""")
    abc_case = _tier_case("measure_value_cny", [(t.code, t.floor_cny) for t in abc.tiers])
    ladders = [(active.name, active.tiers), (abc.name, abc.tiers), ("corporate", rules.corporate_tiers)]
    ranks = " ".join(f"WHEN '{rs}' || '/' || '{t.code}' THEN {t.rank}"
                     for rs, tiers in ladders for t in tiers)
    con.execute(f"""
        CREATE TABLE main_marts.customer_tier AS
        WITH base AS (
            SELECT as_of_month, cust_id, cust_type, rule_set, avg_daily_aum_cny AS measure_value_cny,
                   value_tier
            FROM main_marts.customer_segment
            UNION ALL
            SELECT as_of_month, cust_id, cust_type, '{abc.name}', aum_3m_avg_cny, NULL
            FROM main_marts.customer_segment WHERE cust_type = 'P'
        ), tiered AS (SELECT *, coalesce(value_tier, {abc_case}) AS tier FROM base)
        SELECT as_of_month, cust_id, cust_type, rule_set, rule_set AS rule_set_version, 'measure' AS measure,
               measure_value_cny, tier AS implied_tier, CAST(0 AS DECIMAL(18, 2)) AS tier_floor_cny,
               0 AS months_below, 3 AS grace_months, FALSE AS on_watch, tier, tier AS tier_name,
               CASE rule_set || '/' || tier {ranks} END AS tier_rank, tier AS previous_tier,
               'SAME' AS tier_change, as_of_month + 1 AS effective_from
        FROM tiered""")
    ladder = ", ".join(f"('{rs}', '{t.code}', {t.rank})" for rs, tiers in ladders for t in tiers)
    con.execute(f"""
        CREATE TABLE main_marts.tier_summary AS
        WITH ladder(rule_set, tier, tier_rank) AS (VALUES {ladder}),
        counts AS (SELECT rule_set, tier, count(*) AS customers FROM main_marts.customer_tier GROUP BY ALL)
        SELECT DATE '{as_of}' AS as_of_month, l.rule_set, l.tier, l.tier AS tier_name, l.tier_rank,
               coalesce(c.customers, 0) AS customers, CAST(0 AS BIGINT) AS on_watch_customers,
               CAST(0 AS DECIMAL(38, 2)) AS total_avg_daily_aum_cny,
               CAST(round(coalesce(c.customers, 0)
                          / sum(coalesce(c.customers, 0)) OVER (PARTITION BY l.rule_set), 6)
                    AS DECIMAL(9, 6)) AS share_of_customers
        FROM ladder AS l LEFT JOIN counts AS c USING (rule_set, tier)""")
    con.execute("""CREATE TABLE main_marts.tier_migration AS
                   SELECT as_of_month, rule_set, previous_tier AS from_tier, tier AS to_tier,
                          count(*) AS customers
                   FROM main_marts.customer_tier GROUP BY ALL""")
    con.execute("ALTER TABLE raw.cbs_customer DROP COLUMN aum_cny")
    con.execute("CHECKPOINT")
    con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="customer_segment rows (default 1,000,000)")
    parser.add_argument("--as-of", default="2026-10-31", help="evaluated month's last day")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--dir", type=Path,
                        help="where to build the database (default: a temporary directory, removed after)")
    args = parser.parse_args(argv)
    as_of, rules = date.fromisoformat(args.as_of), load_rules(args.rules)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="bench_gate_"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(warehouse=workdir)  # the pipeline's DuckDB settings, as the gate flow runs
    db = settings.working_db
    db.unlink(missing_ok=True)
    try:
        started = time.perf_counter()
        build(db, args.rows, as_of, rules)
        print(f"built {args.rows:,} customers in {time.perf_counter() - started:.2f} s ({db})")
        total, failed_all = 0.0, []
        for suite in SUITES:
            started = time.perf_counter()
            results, _ = run_checks(settings, as_of, rules, tables=(suite.TABLE,))
            seconds = time.perf_counter() - started
            total += seconds
            failed = [r.full_name for r in results if not r.success]
            failed_all += failed
            print(f"  {suite.TABLE:<17} {len(results):>3} checks {seconds:7.2f} s"
                  + (f"  FAILED: {', '.join(failed)}" if failed else ""))
        started = time.perf_counter()
        results, _ = run_checks(settings, as_of, rules)
        whole = time.perf_counter() - started
        print(f"gate expectations, {len(results)} checks on {args.rows:,} customer_segment rows: "
              f"{whole:.2f} s in one run ({total:.2f} s table by table); {len(failed_all)} failed")
        return 1 if failed_all else 0
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
