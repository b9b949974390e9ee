"""Bare-engine floor for the Spark engine: what one local Spark session and bare DuckDB cost on the same raw zone.

    TIERING_ENGINE=spark .venv/bin/python benchmarks/floor_spark.py --warehouse /work/bench/wh100k_spark \\
        --month 2026-01 [--statements 20]

The warehouse is one the pipeline has loaded (its raw zone, `raw/cbs_<table>/batch_date=D/load-*/part.parquet`);
nothing in it is changed: Spark gets a scratch catalog in a temporary folder. Printed, wall seconds:

  * session start: the JVM and a SparkSession with the project's configuration (`spark_engine.spark_conf`:
    `local[2]`, driver memory, shuffle partitions, ANSI, Hive catalog on Derby);
  * per statement: the mean of `--statements` trivial `CREATE TABLE … USING parquet AS SELECT` + `DROP TABLE`
    (what every dbt model pays before it reads a row) and of trivial `SELECT count(*)` queries (what every dbt
    data test pays), against DuckDB's same statements;
  * the two heavy reads of a month, each written as a Parquet table: balances summed per account (the shape of
    `int_customer_monthly_balance_sums` without the joins) and transactions counted and summed per account and
    day (the shape of `int_customer_daily_activity`), Spark against DuckDB on the same Parquet files.

No validation, joins to account versions or FX, dbt, or gate: it is the floor the pipeline's Spark build is
compared with (BENCHMARKS.md, "The Spark engine").
"""

from __future__ import annotations

import argparse
import calendar
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project root

from flows.adapters import spark_engine  # noqa: E402
from flows.settings import Settings  # noqa: E402


def _month_bounds(month: str) -> tuple[str, str]:
    year, mon = (int(part) for part in month.split("-"))
    return f"{month}-01", f"{month}-{calendar.monthrange(year, mon)[1]:02d}"


def heavy_queries(raw: Path, month: str) -> dict[str, str]:
    """The month's two heavy reads as SQL both engines run unchanged (`{balance}`, `{txn}` = the files' readers)."""
    first, last = _month_bounds(month)
    return {
        "balances per account": (
            "select acct_id, currency, count(*) as days_held, sum(balance) as balance_sum "
            f"from {{balance}} where bal_date between date '{first}' and date '{last}' group by acct_id, currency"),
        "transactions per account and day": (
            "select acct_id, cast(txn_time as date) as txn_date, count(*) as txn_count, sum(amount) as amount_sum "
            f"from {{txn}} where txn_time >= timestamp '{first} 00:00:00' "
            f"and txn_time < timestamp '{last} 00:00:00' + interval 1 day group by 1, 2"),
    }


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def spark_floor(raw: Path, month: str, statements: int, scratch: Path) -> dict[str, float]:
    settings = Settings.from_env(warehouse=scratch)
    figures: dict[str, float] = {}
    started = time.perf_counter()
    session = spark_engine.spark_session(settings)
    figures["session start"] = time.perf_counter() - started
    session.sql("create database if not exists floor")
    session.sql("create table floor.warm using parquet as select 1 as x").collect()  # first-statement costs
    session.sql("drop table floor.warm").collect()
    ctas = [timed(lambda i=i: (session.sql(f"create table floor.t{i} using parquet as select {i} as x").collect(),
                               session.sql(f"drop table floor.t{i}").collect())) for i in range(statements)]
    figures["per model statement (CTAS + DROP)"] = sum(ctas) / statements
    tests = [timed(lambda: session.sql("select count(*) from (select 1 as x) where x is null").collect())
             for _ in range(statements)]
    figures["per test query"] = sum(tests) / statements
    for table in ("balance", "txn"):  # every load's file, committed or not: a floor, not a reader
        session.read.parquet(str(raw / f"cbs_{table}" / "*" / "*" / "*.parquet")).createOrReplaceTempView(table)
    for name, sql in heavy_queries(raw, month).items():
        table = name.replace(" ", "_")
        figures[name] = timed(lambda sql=sql, table=table: session.sql(
            f"create table floor.{table} using parquet as {sql.format(balance='balance', txn='txn')}").collect())
    session.stop()
    return figures


def duckdb_floor(raw: Path, month: str, statements: int, scratch: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    con = duckdb.connect(str(scratch / "floor.duckdb"))
    con.execute("set threads = 2")
    ctas = [timed(lambda i=i: (con.execute(f"create table t{i} as select {i} as x"),
                               con.execute(f"drop table t{i}"))) for i in range(statements)]
    figures["per model statement (CTAS + DROP)"] = sum(ctas) / statements
    tests = [timed(lambda: con.execute("select count(*) from (select 1 as x) where x is null").fetchall())
             for _ in range(statements)]
    figures["per test query"] = sum(tests) / statements
    readers = {t: f"read_parquet('{raw}/cbs_{t}/*/*/*.parquet')" for t in ("balance", "txn")}
    for name, sql in heavy_queries(raw, month).items():
        target = scratch / f"{name.replace(' ', '_')}.parquet"
        figures[name] = timed(lambda sql=sql, target=target: con.execute(
            f"copy ({sql.format(**readers)}) to '{target}' (format parquet)"))
    con.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path, help="a loaded warehouse (its raw zone is read)")
    parser.add_argument("--month", required=True, help="e.g. 2026-01")
    parser.add_argument("--statements", type=int, default=20, help="trivial statements timed per engine")
    args = parser.parse_args()
    raw = args.warehouse / "raw"
    if not (raw / "cbs_balance").is_dir():
        raise SystemExit(f"{raw} has no raw zone: load the month first (tiering run or tiering ingest)")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    with tempfile.TemporaryDirectory(prefix="floor-spark-") as scratch:
        spark = spark_floor(raw, args.month, args.statements, Path(scratch) / "spark")
        (Path(scratch) / "duckdb").mkdir()
        bare = duckdb_floor(raw, args.month, args.statements, Path(scratch) / "duckdb")
    print(f"{'what':<40} {'spark s':>9} {'duckdb s':>9}")
    for name, seconds in spark.items():
        other = f"{bare[name]:9.3f}" if name in bare else "-"
        print(f"{name:<40} {seconds:>9.3f} {other:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
