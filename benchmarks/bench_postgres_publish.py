"""Time the PostgreSQL publication of a release: the first one, then an incremental one-month one.

The release is published (default: the demo's) into a throw-away local PostgreSQL cluster (Debian's
binaries, started and removed here).

    make demo   # once, for demo/warehouse/published.duckdb
    .venv/bin/python benchmarks/bench_postgres_publish.py --release demo/warehouse/published.duckdb
    .venv/bin/python benchmarks/bench_postgres_publish.py --synthetic 20000 --months 12   # no demo needed

`--release` is a catalog (`published.duckdb` of a warehouse, read through its views: the warehouse's
`releases/` folder must be where the catalog says). It is copied first, so the live release is never
locked. `--synthetic N [--months M]` instead publishes a release of N customers a month (M months from
January 2026, default 4: all but the last in one release, the last as its own monthly release) with
`tests/postgres/releases.py` (the marts' real column types; 2 rule sets, so customer_tier has 2 N rows a
month) and measures that. Each of the `--repeat` rounds uses a new,
empty database:

- the first publication of the release (all its months, `__incoming` tables swapped in);
- a one-month publication: a copy of the catalog in which a new release wrote the last month (its
  `release_months` rows name a new release id, `release_log` gains that release), as a monthly release
  does, so that month alone is deleted and copied again;
- an unchanged publication (the same catalog again): the fixed cost, nothing written.

Output, one line each (times are wall clock, seconds):

    release <path>: <n> months <first>…<last>; <table> <rows>, …          the release measured
    round <k> first publication: <s> s (<months> months; <table> <rows written>, …)
    round <k> one-month publication: <s> s (<YYYY-MM>; <table> <rows written>, …)
    round <k> unchanged publication: <s> s (nothing written)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project root

import duckdb  # noqa: E402
import psycopg  # noqa: E402

import flows  # noqa: E402,F401  (no-telemetry environment)
from flows.adapters.postgres_publish import PostgresPublication, publish_to_postgres  # noqa: E402
from tests.support.postgres_server import running_postgres_server  # noqa: E402


def describe(release: Path) -> str:
    con = duckdb.connect(str(release), read_only=True)
    try:
        months = [r[0] for r in con.execute(
            "SELECT DISTINCT as_of_month FROM release_months ORDER BY 1").fetchall()]
        rows = con.execute("SELECT table_name, sum(rows) FROM release_months GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    span = f"{months[0]:%Y-%m}…{months[-1]:%Y-%m}" if months else "none"
    return f"{len(months)} months {span}; " + ", ".join(f"{t} {n:,}" for t, n in rows)


def one_month_later(release: Path, target: Path, round_no: int) -> Path:
    """A copy of `release` in which a new release (re)wrote the last month."""
    shutil.copy(release, target)
    con = duckdb.connect(str(target))
    try:
        release_id = f"bench-one-month-{round_no}"
        (last_month,) = con.execute("SELECT max(as_of_month) FROM release_months").fetchone()
        (published_at,) = con.execute("SELECT max(published_at) + INTERVAL 1 SECOND FROM release_log").fetchone()
        con.execute("INSERT INTO release_log SELECT * REPLACE (? AS release_id, ? AS published_at) "
                    "FROM release_log ORDER BY published_at DESC LIMIT 1", [release_id, published_at])
        con.execute("UPDATE release_months SET release_id = ?, published_at = ? WHERE as_of_month = ?",
                    [release_id, published_at, last_month])
    finally:
        con.close()
    return target


def synthetic_release(tmp: Path, customers: int, months: int) -> Path:
    """All months but the last in one release, then the last as its own monthly release."""
    from tests.postgres.releases import MONTHS, Releases

    releases = Releases(tmp / "synthetic", customers=customers)
    releases.publish(*MONTHS[:months - 1])
    releases.publish(MONTHS[months - 1])
    return releases.published_db


def written(publication: PostgresPublication) -> str:
    return ", ".join(f"{t} {n:,}" for t, n in publication.rows_written.items())


def timed(release: Path, url: str) -> tuple[float, PostgresPublication]:
    started = time.perf_counter()
    publication = publish_to_postgres(release, url)
    return time.perf_counter() - started, publication


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=Path("demo/warehouse/published.duckdb"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic", type=int, metavar="CUSTOMERS",
                        help="measure a release built here with this many customers a month")
    parser.add_argument("--months", type=int, default=4, choices=range(2, 13), metavar="2…12",
                        help="months of the --synthetic release (default 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = synthetic_release(Path(tmp), args.synthetic, args.months) if args.synthetic else args.release
        release = Path(tmp) / "published.duckdb"
        shutil.copy(source, release)  # never hold a lock on the live release
        print(f"release {source}: {describe(release)}")
        with running_postgres_server() as server:
            for round_no in range(1, args.repeat + 1):
                database = f"bench_{round_no}"
                with psycopg.connect(server.url(database="postgres"), autocommit=True) as con:
                    con.execute(f'CREATE DATABASE "{database}"')
                url = server.url(database=database)
                seconds, first = timed(release, url)
                print(f"round {round_no} first publication: {seconds:.2f} s "
                      f"({len(first.months_written)} months; {written(first)})")
                later = one_month_later(release, Path(tmp) / f"later-{round_no}.duckdb", round_no)
                seconds, monthly = timed(later, url)
                months = ", ".join(f"{m:%Y-%m}" for m in monthly.months_written)
                print(f"round {round_no} one-month publication: {seconds:.2f} s ({months}; {written(monthly)})")
                seconds, unchanged = timed(later, url)
                assert not unchanged.months_written, unchanged
                print(f"round {round_no} unchanged publication: {seconds:.2f} s (nothing written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
