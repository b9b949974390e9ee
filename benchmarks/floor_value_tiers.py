"""Bare DuckDB floor: the active retail value tiers straight from the landing files, nothing else.

What it computes, per evaluation month and retail customer (the active rule set of the rules file only):
  * daily AUM = Σ balance × that day's cny_per_unit over the customer's AUM-product accounts, owner and
    product taken from the same day's CBS_ACCOUNT file (CNY = 1 when the FX file omits it; missing day = 0);
  * the month's average daily AUM (Σ daily AUM ÷ days in month, rounded half up to cents) and the implied
    tier (highest tier with Σ >= floor × days; exact: DECIMAL(38,8) sums compared and rounded as HUGEINT
    units of 1e-8 CNY, never divided as DOUBLE);
    a three-month measure sums the month and the two before it, clipped to the first month listed;
  * population: cust_type P with status A or D in the month's last-day CBS_CUSTOMER file;
  * hysteresis ("fast up, slow down") carried in memory from month to month, the first month listed
    starting the history: a downgrade waits grace_months of the tier held.
Output: one row per (as_of_month, cust_id) with avg_daily_aum_cny, implied_tier, value_tier, months_below,
the columns of the pipeline's customer_segment, written to --out if given.

What it skips (on purpose: it is the floor the pipeline's time is reported against): .ok record counts,
byte sizes and MD5s, quarantine of bad lines, audit tables, dbt, Great Expectations, every other table
(TXN, LOAN) and classification, other rule sets, corporate tiers, publication. Malformed input is not
diagnosed: an unknown currency or account drops the balance; a malformed line is not quarantined (DuckDB
rejects the file or reads the line as it can).

Reading: BALANCE and ACCOUNT files are read by DuckDB's read_csv straight from the landing folder when
they are UTF-8 or pure ASCII (checked on a memory map; then GBK and UTF-8 agree); any non-ASCII GBK file
(the month-end CUSTOMER file: Chinese names, whose second GBK byte may be 0x7C '|') is decoded in Python
first and handed to DuckDB as a UTF-8 copy in a temporary folder (in /dev/shm when it exists). One day is
read at a time: one query reads the day's BALANCE and ACCOUNT files, joins them and appends one row per
AUM account (customer, CNY); these rows are summed per customer every 7 days and at month end, so memory
holds at most a week of (customer, amount) rows, never a month of raw balances. Measured on 1 M customers:
this fused read+join, with the weekly group-by, uses less CPU than materialising the files first, than a
per-day group-by, or than pyarrow's CSV reader.

    .venv/bin/python benchmarks/floor_value_tiers.py --landing /work/bench/landing1m --months 2026-08 \\
        [--rules rules/tiering_rules.yml] [--out /tmp/floor.parquet] [--threads 2] [--memory-limit 6GB]

Printed per month, wall seconds: decode (.ok files, ASCII checks, FX files, decoding the month-end GBK
customer file), scan+join (DuckDB reading BALANCE and ACCOUNT and joining them: with decode, the reading),
aggregate (the per-customer sums), tiering (population, implied tier, hysteresis), the month total; then
total wall time and peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import math
import mmap
import os
import resource
import shutil
import sys
import tempfile
import time
from decimal import Decimal, localcontext
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project root

from flows.rules import RuleSet, load_rules  # noqa: E402
from flows.settings import DEFAULT_RULES  # noqa: E402

UNITS = 10**8  # sums are kept in units of 1e-8 CNY: balance (2 places) × rate (6 places), exact
COMPACT_EVERY_DAYS = 7  # per-account rows are summed per customer weekly: bounded memory, one group-by a week
CSV = "delim='|', header=false, quote='', escape='', auto_detect=false, strict_mode=false"
BALANCE_COLUMNS = "{'acct_id': 'VARCHAR', 'bal_date': 'VARCHAR', 'balance': 'DECIMAL(18,2)', 'currency': 'VARCHAR'}"
ACCOUNT_COLUMNS = ("{'acct_id': 'VARCHAR', 'cust_id': 'VARCHAR', 'product_type': 'VARCHAR', 'currency': 'VARCHAR', "
                   "'open_date': 'VARCHAR', 'close_date': 'VARCHAR', 'status': 'VARCHAR'}")
CUSTOMER_FIELDS = ("cust_id", "cust_type", "cust_name", "cert_type", "cert_no", "mobile", "birth_date", "gender",
                   "education", "occupation", "monthly_income", "industry_code", "branch_id", "open_date",
                   "kyc_risk_level", "status")
CUSTOMER_COLUMNS = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in CUSTOMER_FIELDS) + "}"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _data_file(landing: Path, table: str, day: dt.date) -> Path:
    stamp = day.strftime("%Y%m%d")
    return landing / stamp / f"CBS_{table}_{stamp}.dat"


def _encoding(path: Path) -> str:
    """The encoding named by the .ok control file beside `path` (`<file>|<records>|<bytes>|<md5>|<encoding>`)."""
    return path.with_suffix(".ok").read_text(encoding="ascii").strip().split("|")[4].strip()


def _is_ascii(path: Path) -> bool:
    """No byte >= 0x80 (then GBK and UTF-8 read the same); mapped, not copied: ~10x faster than read_bytes()."""
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return True
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return bool(np.frombuffer(mapped, dtype=np.uint8).max() < 0x80)


def _readable(path: Path, scratch: Path) -> Path:
    """A file DuckDB can read as UTF-8: the landing file itself if it is UTF-8 or pure ASCII, else a decoded copy."""
    encoding = _encoding(path)
    if encoding.replace("-", "").upper() == "UTF8" or _is_ascii(path):
        return path
    copy = scratch / path.name
    copy.write_bytes(path.read_bytes().decode(encoding.lower()).encode("utf-8"))  # decode, then split on '|'
    return copy


def _fx_case(landing: Path, day: dt.date) -> str:
    """SQL CASE on b.currency giving the day's cny_per_unit as DECIMAL(18,6) (CNY = 1 unless the file says)."""
    path = _data_file(landing, "FX_RATE", day)
    encoding = _encoding(path)
    text = path.read_bytes().decode("utf-8" if encoding.replace("-", "").upper() == "UTF8" else encoding.lower())
    rates = {"CNY": Decimal(1)}
    for line in text.split("\n"):
        fields = line.rstrip("\r").split("|")
        if len(fields) >= 3 and fields[2]:
            rates[fields[0]] = Decimal(fields[2])
    whens = " ".join(f"WHEN {_sql_text(cur)} THEN CAST('{rate}' AS DECIMAL(18,6))" for cur, rate in rates.items())
    return f"CASE b.currency {whens} END"


def _months(spec: str) -> list[dt.date]:
    """Month ends of `2026-08,2026-09`; they must be consecutive (hysteresis carries month to month)."""
    ends = []
    for item in spec.split(","):
        year, month = (int(part) for part in item.strip().split("-"))
        ends.append(dt.date(year, month, calendar.monthrange(year, month)[1]))
    for before, after in zip(ends, ends[1:], strict=False):
        if after.replace(day=1) - dt.timedelta(days=1) != before:
            raise SystemExit(f"--months must be consecutive and in order: {before:%Y-%m} then {after:%Y-%m}")
    return ends


def _code_case(rule_set: RuleSet, rank: str) -> str:
    """SQL CASE from a tier rank to its code."""
    return f"CASE {rank} " + " ".join(f"WHEN {t.rank} THEN {_sql_text(t.code)}" for t in rule_set.tiers) + " END"


def _grace_case(rule_set: RuleSet, rank: str) -> str:
    """SQL CASE from a tier rank to its grace months."""
    return f"CASE {rank} " + " ".join(f"WHEN {t.rank} THEN {t.grace_months}" for t in rule_set.tiers) + " END"


def _implied_case(rule_set: RuleSet, units: str, days: int) -> str:
    """SQL CASE: the highest rank whose floor × days (in 1e-8 CNY units, rounded up: exact for an integer
    sum) the sum reaches; the lowest tier takes everything else."""
    ladder = sorted(rule_set.tiers, key=lambda t: t.rank)
    with localcontext(prec=200):  # exact whatever the floor's digits
        thresholds = [(t.rank, math.ceil(t.floor_cny * days * UNITS)) for t in reversed(ladder[1:])]
    whens = " ".join(f"WHEN {units} >= CAST('{threshold}' AS HUGEINT) THEN {rank}" for rank, threshold in thresholds)
    return f"CASE {whens} ELSE {ladder[0].rank} END" if whens else str(ladder[0].rank)


def _round_cents(units: str, days: int) -> str:
    """SQL: units (1e-8 CNY) ÷ days, rounded half up (away from zero) to cents, as DECIMAL(18,2), exactly."""
    divisor = days * UNITS // 100
    cents = f"sign({units}) * ((abs({units}) * 2 + {divisor}) // {2 * divisor})"
    return f"CAST(CAST({cents} AS DECIMAL(38,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2))"


class Floor:
    """The DuckDB connection and the state carried between months."""

    def __init__(self, landing: Path, rules_path: Path, threads: int | None, memory_limit: str, scratch: Path,
                 spill: Path):
        self.landing = landing
        rules = load_rules(rules_path)
        self.rule_set = rules.active
        self.aum_products = ", ".join(_sql_text(p) for p in rules.aum_product_types)
        self.scratch = scratch
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute(f"SET memory_limit = {_sql_text(memory_limit)}")
        self.con.execute(f"SET temp_directory = {_sql_text(str(spill))}")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        # Per-customer units per evaluated month (for the three-month measure), the previous month's tiers.
        self.con.execute("CREATE TABLE month_units (as_of_month DATE, cust_id VARCHAR, units HUGEINT)")
        self.con.execute("CREATE TABLE state (cust_id VARCHAR, tier INTEGER, months_below INTEGER)")
        self.con.execute("""CREATE TABLE segment (as_of_month DATE, cust_id VARCHAR, avg_daily_aum_cny DECIMAL(18,2),
            implied_tier VARCHAR, value_tier VARCHAR, months_below INTEGER)""")
        self.first_day: dt.date | None = None

    def month(self, month_end: dt.date) -> dict[str, float]:
        """Compute one month, append it to `segment` and replace `state`; return wall seconds per phase."""
        con, landing, scratch = self.con, self.landing, self.scratch
        start = month_end.replace(day=1)
        self.first_day = self.first_day or start
        decode = scan_join = aggregate = 0.0
        # One row per AUM account and day (customer, CNY); summed per customer every COMPACT_EVERY_DAYS days.
        con.execute("CREATE OR REPLACE TEMP TABLE sums (cust_id VARCHAR, s DECIMAL(38,8))")
        day = start
        while day <= month_end:
            began = time.perf_counter()
            fx = _fx_case(landing, day)
            balance = _readable(_data_file(landing, "BALANCE", day), scratch)
            account = _readable(_data_file(landing, "ACCOUNT", day), scratch)
            decode += time.perf_counter() - began
            began = time.perf_counter()
            con.execute(f"""
                INSERT INTO sums
                SELECT a.cust_id, CAST(b.balance AS DECIMAL(38,2)) * {fx}
                FROM read_csv({_sql_text(str(balance))}, {CSV}, columns = {BALANCE_COLUMNS}) AS b
                JOIN (SELECT acct_id, cust_id
                      FROM read_csv({_sql_text(str(account))}, {CSV}, columns = {ACCOUNT_COLUMNS})
                      WHERE product_type IN ({self.aum_products})) AS a ON a.acct_id = b.acct_id""")
            scan_join += time.perf_counter() - began
            for path in (balance, account):
                if path.parent == scratch:
                    path.unlink()
            if day.day % COMPACT_EVERY_DAYS == 0 and day != month_end:
                began = time.perf_counter()
                con.execute("CREATE OR REPLACE TEMP TABLE sums AS SELECT cust_id, sum(s) AS s FROM sums GROUP BY cust_id")
                aggregate += time.perf_counter() - began
            day += dt.timedelta(days=1)
        began = time.perf_counter()
        con.execute(f"""
            INSERT INTO month_units
            SELECT DATE '{month_end}', cust_id, CAST(sum(s) * {UNITS} AS HUGEINT) FROM sums GROUP BY cust_id""")
        con.execute("DROP TABLE sums")
        aggregate += time.perf_counter() - began

        began = time.perf_counter()
        customer = _readable(_data_file(landing, "CUSTOMER", month_end), scratch)
        decode += time.perf_counter() - began

        began = time.perf_counter()
        days_1m = month_end.day
        if self.rule_set.measure == "avg_daily_aum_3m":
            window = (start - dt.timedelta(days=1)).replace(day=1)
            window = max(self.first_day, (window - dt.timedelta(days=1)).replace(day=1))
        else:
            window = start
        days_measure = (month_end - window).days + 1
        implied = _implied_case(self.rule_set, "coalesce(m.measure_units, 0)", days_measure)
        keep = f"p.months_below + 1 < {_grace_case(self.rule_set, 'p.tier')}"  # still within the held tier's grace
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE tiers_now AS
            WITH population AS (
                SELECT cust_id
                FROM read_csv({_sql_text(str(customer))}, {CSV}, columns = {CUSTOMER_COLUMNS})
                WHERE cust_type = 'P' AND status IN ('A', 'D')
            ), measures AS (
                SELECT cust_id,
                       coalesce(sum(units) FILTER (WHERE as_of_month = DATE '{month_end}'), 0) AS units_1m,
                       coalesce(sum(units), 0) AS measure_units
                FROM month_units
                WHERE as_of_month BETWEEN DATE '{window}' AND DATE '{month_end}'
                GROUP BY cust_id
            ), implied AS (
                SELECT population.cust_id, coalesce(m.units_1m, 0) AS units_1m,
                       {implied} AS implied
                FROM population LEFT JOIN measures AS m ON m.cust_id = population.cust_id
            )
            SELECT i.cust_id, i.units_1m, i.implied,
                   CASE WHEN p.tier IS NULL OR i.implied >= p.tier THEN i.implied
                        WHEN {keep} THEN p.tier ELSE i.implied END AS tier,
                   CASE WHEN p.tier IS NULL OR i.implied >= p.tier THEN 0
                        WHEN {keep} THEN p.months_below + 1 ELSE 0 END AS months_below
            FROM implied AS i LEFT JOIN state AS p ON p.cust_id = i.cust_id""")
        con.execute("DELETE FROM state")
        con.execute("INSERT INTO state SELECT cust_id, tier, months_below FROM tiers_now")
        con.execute(f"""
            INSERT INTO segment
            SELECT DATE '{month_end}', cust_id, {_round_cents("units_1m", days_1m)},
                   {_code_case(self.rule_set, "implied")}, {_code_case(self.rule_set, "tier")}, months_below
            FROM tiers_now""")
        con.execute("DROP TABLE tiers_now")
        if self.rule_set.measure == "avg_daily_aum_3m":  # the next month needs this one and the one before
            keep_from = (start - dt.timedelta(days=1)).replace(day=1)
            con.execute(f"DELETE FROM month_units WHERE as_of_month < DATE '{keep_from}'")
        else:
            con.execute("DELETE FROM month_units")
        tiering = time.perf_counter() - began
        if customer.parent == scratch:
            customer.unlink()
        return {"decode": decode, "scan_join": scan_join, "aggregate": aggregate, "tiering": tiering}


def main(argv: list[str] | None = None) -> int:
    """Compute the months in order, print wall seconds per phase and month, total and peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True, help="folder of <YYYYMMDD>/CBS_*.dat batches")
    parser.add_argument("--months", required=True, help="consecutive months, e.g. 2026-08,2026-09")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--out", type=Path, help="write the per-customer result here (Parquet)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's, the number of cores)")
    parser.add_argument("--memory-limit", default="6GB")
    args = parser.parse_args(argv)

    months = _months(args.months)
    began = time.perf_counter()
    shm = Path("/dev/shm")
    # Decoded UTF-8 copies go to RAM (/dev/shm); DuckDB spills, if ever, to the ordinary temporary folder.
    scratch = Path(tempfile.mkdtemp(prefix="floor_value_tiers_", dir=shm if shm.is_dir() else None))
    spill = Path(tempfile.mkdtemp(prefix="floor_value_tiers_spill_"))
    try:
        floor = Floor(args.landing, args.rules, args.threads, args.memory_limit, scratch, spill)
        threads = floor.con.execute("SELECT current_setting('threads')").fetchone()[0]
        print(f"rule set {floor.rule_set.name} ({floor.rule_set.measure}), DuckDB threads {threads}")
        print("wall seconds: decode = .ok/ASCII checks, FX files, GBK decoding; scan+join = DuckDB read_csv of "
              "BALANCE and ACCOUNT joined per day\n(decode + scan+join = reading); aggregate = per-customer sums; "
              "tiering = population, implied tier, hysteresis")
        print(f"{'month':<9}{'decode':>8}{'scan+join':>11}{'read':>8}{'aggregate':>11}{'tiering':>9}{'month':>8}"
              f"{'customers':>12}")
        for month_end in months:
            month_began = time.perf_counter()
            phases = floor.month(month_end)
            month_seconds = time.perf_counter() - month_began
            customers = floor.con.execute("SELECT count(*) FROM state").fetchone()[0]
            read = phases["decode"] + phases["scan_join"]
            print(f"{month_end:%Y-%m}  {phases['decode']:>8.2f}{phases['scan_join']:>11.2f}{read:>8.2f}"
                  f"{phases['aggregate']:>11.2f}{phases['tiering']:>9.2f}{month_seconds:>8.2f}{customers:>12,}",
                  flush=True)
        if args.out:
            out_began = time.perf_counter()
            floor.con.execute(f"COPY (SELECT * FROM segment ORDER BY as_of_month, cust_id) "
                              f"TO {_sql_text(str(args.out))} (FORMAT parquet)")
            print(f"wrote {args.out} in {time.perf_counter() - out_began:.2f} s")
        floor.con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(spill, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total {time.perf_counter() - began:.2f} s wall; peak RSS {peak_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
