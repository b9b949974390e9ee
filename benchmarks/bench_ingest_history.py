"""Ingest one daily batch into a warehouse that holds 1 day of history, and into one that holds N days.

    .venv/bin/python benchmarks/bench_ingest_history.py --landing /work/bench/landing1m \\
        --first 2026-08-01 --history-days 180 --work /work/bench/ingest_history [--repeat 2]

`--first` and the day after must be in the landing folder (generated batches, e.g. 1 M customers). Both
warehouses load `--first` for real. The "day N" warehouse then gets N − 2 more days of history before it,
made by hard-linking `--first`'s raw files under earlier batch dates with their audit rows (facts as
loaded; snapshot history: the earliest day holds the snapshot, the others no change), so the ingest of
the next day finds N − 1 loaded days: N − 1 raw files per table in the views, N − 1 days of batch_log, a
raw-state table of the same size. Then the day after `--first` is ingested into each warehouse (the timed
step, `--repeat` times on fresh copies) and the two are compared. Peak RSS is this process's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.settings import Settings  # noqa: E402
from flows.stages import raw_zone  # noqa: E402
from flows.stages.extracts import TABLES, ingest_batches  # noqa: E402


def load_first(landing: Path, warehouse: Path, first: dt.date) -> float:
    warehouse.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = ingest_batches(landing, warehouse / "tiering.duckdb", date=first, wait_seconds=0,
                            duckdb_config=Settings(warehouse=warehouse).duckdb_config())
    assert report.batches[0].outcome == "loaded", report.batches[0].summary_line()
    return time.perf_counter() - started


def add_history(warehouse: Path, first: dt.date, days: int) -> None:
    """Make `days` loaded days before `first` out of `first`'s own files (hard links) and audit rows."""
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))
    try:
        rows = con.execute("SELECT * FROM audit.batch_log WHERE batch_date = ?", [first]).fetchall()
        columns = [d[0] for d in con.description]
        files = {r[columns.index("table_name")]: r[columns.index("raw_file")] for r in rows}
        con.execute("BEGIN TRANSACTION")
        for back in range(days, 0, -1):
            day = first - dt.timedelta(days=back)
            for row in rows:
                table = row[columns.index("table_name")].removeprefix("CBS_")
                source = warehouse / files[f"CBS_{table}"]
                target = raw_zone.partition_dir(warehouse, table, day) / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if table in raw_zone.SNAPSHOT_TABLES and back != days:
                    # No change since the day before: an empty change file.
                    con.execute(f"COPY (SELECT * FROM read_parquet('{source}', hive_partitioning = false) "
                                f"WHERE false) TO '{target}' ({raw_zone.PARQUET_OPTIONS})")
                else:
                    os.link(source, target)
                values = list(row)
                values[columns.index("batch_date")] = day
                values[columns.index("raw_file")] = str(target.relative_to(warehouse))
                con.execute(f"INSERT INTO audit.batch_log VALUES ({', '.join(['?'] * len(values))})", values)
        # `first` now follows a day with the same snapshot: its own change files hold no change.
        for table in raw_zone.SNAPSHOT_TABLES:
            path = warehouse / files[f"CBS_{table}"]
            empty = path.with_name("empty-" + path.name)
            con.execute(f"COPY (SELECT * FROM read_parquet('{path}', hive_partitioning = false) WHERE false) "
                        f"TO '{empty}' ({raw_zone.PARQUET_OPTIONS})")
            os.replace(empty, path)
        raw_zone.refresh_views(con, warehouse)
        con.execute("COMMIT")
    finally:
        con.close()


def timed_ingest(landing: Path, template: Path, work: Path, day: dt.date) -> float:
    shutil.rmtree(work, ignore_errors=True)
    # Raw files are never modified in place (a load writes new ones): hard links make the copy instant.
    shutil.copytree(template / "raw", work / "raw", copy_function=os.link)
    for db in template.glob("tiering.duckdb*"):
        shutil.copy2(db, work / db.name)
    con = duckdb.connect(str(work / "tiering.duckdb"))
    try:
        raw_zone.refresh_views(con, work)  # the copy's own files
    finally:
        con.close()
    started = time.perf_counter()
    report = ingest_batches(landing, work / "tiering.duckdb", date=day, wait_seconds=0,
                            duckdb_config=Settings(warehouse=work).duckdb_config())
    elapsed = time.perf_counter() - started
    batch = report.batches[0]
    assert batch.outcome == "loaded", batch.summary_line()
    print(f"    {batch.summary_line()} in {elapsed:.1f} s", flush=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, type=Path)
    parser.add_argument("--first", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--history-days", type=int, default=180)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    nxt = args.first + dt.timedelta(days=1)
    short, long_ = args.work / "day2", args.work / f"day{args.history_days}"
    for folder in (short, long_):
        shutil.rmtree(folder, ignore_errors=True)
    print(f"day 1 (empty warehouse, every snapshot row is new): {load_first(args.landing, short, args.first):.1f} s")
    shutil.copytree(short / "raw", long_ / "raw", copy_function=os.link)
    for db in short.glob("tiering.duckdb*"):
        shutil.copy2(db, long_ / db.name)
    con = duckdb.connect(str(long_ / "tiering.duckdb"))
    raw_zone.refresh_views(con, long_)
    con.close()
    add_history(long_, args.first, args.history_days - 2)
    results = {}
    for name, template in (("day 2", short), (f"day {args.history_days}", long_)):
        print(f"  {name}: ingest {nxt}")
        results[name] = [timed_ingest(args.landing, template, args.work / "run", nxt) for _ in range(args.repeat)]
    shutil.rmtree(args.work / "run", ignore_errors=True)
    a, b = (statistics.median(v) for v in results.values())
    print(f"median: day 2 {a:.1f} s, day {args.history_days} {b:.1f} s, ratio {b / a:.2f}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB; tables: {', '.join(TABLES)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
