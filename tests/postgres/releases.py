"""Small month-partitioned releases for the PostgreSQL tests, made by the real `publish_release`.

`Releases` keeps a working database with the five marts (`main_marts`, the published tables' real
columns and types, 60 customers a month) and `gate.run`, and publishes months of it into
`<root>/warehouse/published.duckdb`: a catalog of views over Parquet month partitions with `release_log`
and `release_months`, as production has it. `version` changes every money value of a month: publishing a
month again with another version is a restatement.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from flows.stages.publishing import Release, publish_release
from tests.support.isolation import settings_for

# Month ends of 2026 (the tests use the first five, the benchmark up to all twelve).
MONTHS = tuple((date(2026, m + 1, 1) if m < 12 else date(2027, 1, 1)) - timedelta(days=1) for m in range(1, 13))
CUSTOMERS = 60

SCHEMA_SQL = """
CREATE SCHEMA main_marts; CREATE SCHEMA gate;
CREATE TABLE main_marts.customer_segment (as_of_month DATE, cust_id VARCHAR, cust_type VARCHAR,
    avg_daily_aum_cny DECIMAL(18, 2), value_tier VARCHAR, months_below INTEGER, on_watch BOOLEAN,
    rule_set VARCHAR, rule_set_version VARCHAR, rules_version VARCHAR);
CREATE TABLE main_marts.customer_tier (as_of_month DATE, cust_id VARCHAR, rule_set VARCHAR, tier VARCHAR,
    tier_floor_cny DECIMAL(18, 2));
CREATE TABLE main_marts.tier_summary (as_of_month DATE, rule_set VARCHAR, tier VARCHAR, tier_rank INTEGER,
    customers BIGINT, total_avg_daily_aum_cny DECIMAL(38, 2), share_of_customers DECIMAL(9, 6));
CREATE TABLE main_marts.tier_migration (as_of_month DATE, rule_set VARCHAR, from_tier VARCHAR,
    to_tier VARCHAR, customers BIGINT);
CREATE TABLE main_marts.customer_event (as_of_month DATE, cust_id VARCHAR, event_type VARCHAR,
    from_value VARCHAR, to_value VARCHAR, branch_id VARCHAR, cust_name_masked VARCHAR);
CREATE TABLE gate.run (gate_run_id VARCHAR, as_of_month DATE, started_at TIMESTAMP, finished_at TIMESTAMP,
    success BOOLEAN, blocking_failures INTEGER);
"""

# One month of the five marts; {month} is a DATE literal, {version} an integer, {customers} the count.
MONTH_SQL = """
DELETE FROM main_marts.customer_segment WHERE as_of_month = {month};
DELETE FROM main_marts.customer_tier WHERE as_of_month = {month};
DELETE FROM main_marts.tier_summary WHERE as_of_month = {month};
DELETE FROM main_marts.tier_migration WHERE as_of_month = {month};
DELETE FROM main_marts.customer_event WHERE as_of_month = {month};
INSERT INTO main_marts.customer_segment (as_of_month, cust_id, cust_type, avg_daily_aum_cny, value_tier,
        months_below, on_watch, rule_set, rule_set_version, rules_version)
    SELECT {month}, 'C' || lpad(i::VARCHAR, 7, '0'), CASE WHEN i % 5 = 0 THEN 'C' ELSE 'P' END,
           CAST(i * 1234.57 + month({month}) * 10.01 + {version} * 0.03 AS DECIMAL(18, 2)),
           CASE WHEN i * 1234.57 >= 50000 THEN 'GOLD' WHEN i * 1234.57 >= 20000 THEN 'SILVER' ELSE 'MASS' END,
           (i % 3)::INTEGER, i % 7 = 0,
           'cib_monthly', 'cib_monthly/2026.{version}', '2026.{version}'
    FROM range({customers}) AS r(i);
INSERT INTO main_marts.customer_tier
    SELECT as_of_month, cust_id, rs, value_tier,
           CAST(CASE value_tier WHEN 'GOLD' THEN 50000 WHEN 'SILVER' THEN 20000 ELSE 0 END AS DECIMAL(18, 2))
    FROM main_marts.customer_segment, (VALUES ('cib_monthly'), ('abc_quarterly')) AS x(rs)
    WHERE as_of_month = {month};
INSERT INTO main_marts.tier_summary
    SELECT t.as_of_month, t.rule_set, t.tier,
           CASE t.tier WHEN 'GOLD' THEN 3 WHEN 'SILVER' THEN 2 ELSE 1 END, count(*),
           CAST(sum(s.avg_daily_aum_cny) AS DECIMAL(38, 2)),
           CAST(count(*) / sum(count(*)) OVER (PARTITION BY t.rule_set) AS DECIMAL(9, 6))
    FROM main_marts.customer_tier AS t JOIN main_marts.customer_segment AS s USING (as_of_month, cust_id)
    WHERE t.as_of_month = {month} GROUP BY 1, 2, 3, 4;
INSERT INTO main_marts.tier_migration
    SELECT as_of_month, rule_set, CASE WHEN cust_id LIKE '%0' THEN NULL ELSE tier END, tier, count(*)
    FROM main_marts.customer_tier WHERE as_of_month = {month} GROUP BY ALL;
INSERT INTO main_marts.customer_event
    SELECT as_of_month, cust_id, CASE WHEN on_watch THEN 'WATCH_START' ELSE 'TIER_UP' END, 'MASS', value_tier,
           'B0' || (months_below + {version})::VARCHAR, '张*'
    FROM main_marts.customer_segment WHERE as_of_month = {month} AND months_below = 1;
"""


class Releases:
    """A working database and the releases published from it (see the module docstring)."""

    def __init__(self, root: Path, customers: int = CUSTOMERS):
        self.warehouse = Path(root) / "warehouse"
        self.warehouse.mkdir(parents=True)
        self.settings = settings_for(warehouse=self.warehouse)
        self.working_db = self.settings.working_db
        self.published_db = self.settings.published_db
        self.customers = customers
        self._gate_runs = 0
        self.working(SCHEMA_SQL)

    def working(self, *statements: str) -> None:
        con = duckdb.connect(str(self.working_db))
        try:
            for statement in statements:
                con.execute(statement)
        finally:
            con.close()

    def build(self, month: date, version: int = 1) -> None:
        """(Re)compute one month of the working marts."""
        self.working(MONTH_SQL.format(month=f"DATE '{month.isoformat()}'", version=version,
                                      customers=self.customers))

    def publish(self, *months: date, version: int | None = None) -> Release:
        """Publish `months` as one release (built first when `version` is given, or when not built yet)."""
        gate_runs = {}
        for month in months:
            if version is not None or not self._built(month):
                self.build(month, version or 1)
            self._gate_runs += 1
            gate_runs[month] = f"gate-{self._gate_runs}"
            now = datetime.now()
            self.working(f"INSERT INTO gate.run VALUES ('{gate_runs[month]}', DATE '{month.isoformat()}', "
                         f"TIMESTAMP '{now:%Y-%m-%d %H:%M:%S}', TIMESTAMP '{now:%Y-%m-%d %H:%M:%S}', TRUE, 0)")
        return publish_release(self.settings, list(months), gate_runs)

    def poison(self, table: str, month: date, column: str) -> None:
        """Put a NUL character in one text value of that month: PostgreSQL text cannot hold it."""
        self.working(f"UPDATE main_marts.{table} SET {column} = {column} || chr(0) WHERE rowid = "
                     f"(SELECT min(rowid) FROM main_marts.{table} WHERE as_of_month = DATE '{month}')")

    def snapshot(self, target: Path) -> Path:
        """A copy of the current catalog (its views name the release folder, kept while it is current or
        previous)."""
        shutil.copy(self.published_db, target)
        return target

    def _built(self, month: date) -> bool:
        con = duckdb.connect(str(self.working_db), read_only=True)
        try:
            return bool(con.execute("SELECT count(*) FROM main_marts.customer_segment WHERE as_of_month = ?",
                                    [month]).fetchone()[0])
        finally:
            con.close()
