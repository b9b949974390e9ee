"""Which months a run builds: the requested month, and every earlier built month whose batches changed since.

Each successful dbt build of a month is recorded in `audit.month_build` with the load time of the newest
batch it could read (any batch dated on or before the month's end). A month is stale when a batch dated on
or before its end was loaded (or replaced with `--force`) after its build: that batch may change the month
itself, or, through the hysteresis, the three-month window and the carried states, every later month. A run
for month N therefore rebuilds, in order, every evaluated month from the first stale one through N, and
only those (DECISIONLOG R2). A month already built from the same batches and rules is not rebuilt: the run
re-gates and re-publishes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.months import month_runs

MONTH_BUILD_DDL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.month_build (
    as_of_month DATE, build_id VARCHAR, built_at TIMESTAMP, inputs_loaded_at TIMESTAMP,
    rules_version VARCHAR, rules_sha256 VARCHAR, full_refresh BOOLEAN)
"""
# Which build of a month a release published. A build that no release published yet (its run failed or was
# killed between build and publication) is published by the next run, with the months it builds.
MONTH_PUBLISH_DDL = """
CREATE TABLE IF NOT EXISTS audit.month_publish (
    as_of_month DATE, build_id VARCHAR, release_id VARCHAR, recorded_at TIMESTAMP)
"""


class PlanRefused(RuntimeError):
    """The requested run cannot be planned as asked (e.g. a full refresh that would drop later months)."""


@dataclass(frozen=True)
class MonthPlan:
    """The months one run builds (in order), which of them were built before, and why."""

    as_of: dt.date
    months: list[dt.date]
    restated: list[dt.date] = field(default_factory=list)
    full_refresh: bool = False
    rules_changed: bool = False
    # The newest batch load each month's build reads (recorded with the build).
    inputs_loaded_at: dict[dt.date, dt.datetime | None] = field(default_factory=dict)
    # Months up to as_of built by an earlier run whose latest build no release has published yet.
    unpublished: list[dt.date] = field(default_factory=list)

    @property
    def build_needed(self) -> bool:
        return bool(self.months)

    @property
    def published_months(self) -> list[dt.date]:
        """The months the run's release writes: those it builds, the built ones no release published yet, and
        the requested one."""
        return sorted({*self.months, *self.unpublished, self.as_of})

    def describe(self) -> str:
        """One line for logs and the terminal."""
        pending = [m for m in self.unpublished if m not in self.months and m != self.as_of]
        also = (f"; also publishing {month_runs(pending)} (built by an earlier run that "
                f"published nothing)") if pending else ""
        return self._describe_build() + also

    def _describe_build(self) -> str:
        if not self.months:
            return f"{self.as_of:%Y-%m} already built from the same batches and rules: gate and publish only"
        names = month_runs(self.months)
        if self.full_refresh:
            return f"full refresh: rebuilding {len(self.months)} month(s) from raw: {names}"
        if self.restated:
            first = min(self.restated)
            return (f"restating from {first:%Y-%m} (batches dated up to it changed since it was built): "
                    f"building {names}")
        if self.rules_changed:
            return f"building {names} (the rules file changed since {self.as_of:%Y-%m} was built)"
        return f"building {names}"


def rules_sha256(rules_path: Path) -> str:
    return hashlib.sha256(Path(rules_path).read_bytes()).hexdigest()


def ensure_month_build(con: duckdb.DuckDBPyConnection) -> None:
    """Create audit.month_build and audit.month_publish. A warehouse built before month_publish existed has
    every build it holds recorded as published (by the release that was current, release_id NULL): its runs
    published every month they built."""
    upgrading = _table_exists(con, "audit", "month_build") and not _table_exists(con, "audit", "month_publish")
    con.execute(MONTH_BUILD_DDL)
    con.execute(MONTH_PUBLISH_DDL)
    if upgrading:
        con.execute("INSERT INTO audit.month_publish SELECT as_of_month, build_id, NULL, ? FROM audit.month_build",
                    [dt.datetime.now()])


def evaluated_months(con: duckdb.DuckDBPyConnection, through: dt.date) -> list[dt.date]:
    """Months up to `through` whose every day has a LOADED CBS_BALANCE batch (as int_evaluation_months)."""
    rows = con.execute("""
        SELECT last_day(batch_date) AS month, count(DISTINCT batch_date) AS days
        FROM audit.batch_log WHERE table_name = 'CBS_BALANCE' AND status = 'LOADED' AND batch_date <= ?
        GROUP BY 1 ORDER BY 1""", [through]).fetchall()
    return [month for month, days in rows if days == month.day]


def built_rules_sha256(con: duckdb.DuckDBPyConnection, month: dt.date) -> str | None:
    """The checksum of the rules file `month`'s latest build read (None when the month is not built)."""
    return _latest_builds(con).get(month, (None, None))[1]


def _latest_builds(con: duckdb.DuckDBPyConnection) -> dict[dt.date, tuple[dt.datetime | None, str | None]]:
    """Each built month's latest build: (inputs_loaded_at, rules_sha256); none before the first build."""
    has_builds = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'audit' "
                             "AND table_name = 'month_build'").fetchone()[0]
    if not has_builds:
        return {}
    rows = con.execute("""
        SELECT as_of_month, inputs_loaded_at, rules_sha256 FROM audit.month_build
        QUALIFY row_number() OVER (PARTITION BY as_of_month ORDER BY built_at DESC) = 1""").fetchall()
    return {month: (loaded, sha) for month, loaded, sha in rows}


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                            [schema, table]).fetchone()[0])


def _unpublished(con: duckdb.DuckDBPyConnection, through: dt.date) -> list[dt.date]:
    """Built months up to `through` whose latest build no release published (none before the first record)."""
    if not _table_exists(con, "audit", "month_build"):
        return []
    if not _table_exists(con, "audit", "month_publish"):  # built before it existed: see ensure_month_build
        return []
    return [m for (m,) in con.execute("""
        SELECT b.as_of_month FROM audit.month_build b
        WHERE b.as_of_month <= ?
        QUALIFY row_number() OVER (PARTITION BY b.as_of_month ORDER BY b.built_at DESC) = 1
            AND b.build_id NOT IN (SELECT build_id FROM audit.month_publish)
        ORDER BY 1""", [through]).fetchall()]


def record_month_publication(working_db: Path, months: list[dt.date], release_id: str) -> None:
    """After a publication: the latest build of each of `months` is published by `release_id`."""
    con = duckdb.connect(str(working_db))
    try:
        ensure_month_build(con)
        now = dt.datetime.now()
        con.execute("""
            INSERT INTO audit.month_publish
            SELECT as_of_month, build_id, ?, ? FROM audit.month_build WHERE list_contains(?, as_of_month)
            QUALIFY row_number() OVER (PARTITION BY as_of_month ORDER BY built_at DESC) = 1""",
                    [release_id, now, months])
    finally:
        con.close()


def _inputs_loaded_at(con: duckdb.DuckDBPyConnection, month: dt.date) -> dt.datetime | None:
    return con.execute("SELECT max(finished_at) FROM audit.batch_log WHERE status = 'LOADED' AND batch_date <= ?",
                       [month]).fetchone()[0]


def built_and_stale(con: duckdb.DuckDBPyConnection) -> tuple[list[dt.date], list[dt.date]]:
    """Built months, and the evaluated months a run would (re)build: never built, or batches dated on or
    before their end loaded since their build (for `tiering status`)."""
    builds = _latest_builds(con)
    latest = con.execute("SELECT max(batch_date) FROM audit.batch_log WHERE status = 'LOADED'").fetchone()[0]
    evaluated = evaluated_months(con, latest) if latest else []
    loaded = {m: _inputs_loaded_at(con, m) for m in evaluated}
    return sorted(builds), _stale_months(evaluated, builds, loaded)


def _stale_months(evaluated: list[dt.date], builds: dict[dt.date, tuple[dt.datetime | None, str | None]],
                  loaded: dict[dt.date, dt.datetime | None]) -> list[dt.date]:
    """Evaluated months never built, or with a batch dated on or before their end loaded since their build."""
    return [m for m in evaluated
            if m not in builds or (loaded[m] is not None and (builds[m][0] is None or loaded[m] > builds[m][0]))]


def plan_months(working_db: Path, as_of: dt.date, rules_path: Path, full_refresh: bool = False) -> MonthPlan:
    """The months a run for `as_of` builds (read-only on the working database)."""
    working_db = Path(working_db)
    if not working_db.exists():
        return MonthPlan(as_of, [as_of], full_refresh=full_refresh)
    con = duckdb.connect(str(working_db), read_only=True)
    try:
        has_log = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'audit' "
                              "AND table_name = 'batch_log'").fetchone()[0]
        if not has_log:
            return MonthPlan(as_of, [as_of], full_refresh=full_refresh)
        builds = _latest_builds(con)
        evaluated = evaluated_months(con, as_of)
        loaded = {m: _inputs_loaded_at(con, m) for m in [*evaluated, as_of]}
        unpublished = _unpublished(con, as_of)
    finally:
        con.close()
    sha = rules_sha256(rules_path)
    if full_refresh:
        later = sorted(m for m in builds if m > as_of)
        if later:
            raise PlanRefused(f"a full refresh through {as_of:%Y-%m} would drop the built months after it "
                              f"({month_runs(later)}): use --as-of {later[-1]:%Y-%m}")
        months = [m for m in evaluated if m <= as_of] or [as_of]
        if months[-1] != as_of:
            months.append(as_of)  # not evaluable: dbt's completeness check names the missing dates
        return MonthPlan(as_of, months, restated=[m for m in months if m in builds], full_refresh=True,
                         inputs_loaded_at={m: loaded.get(m) for m in months})
    stale = _stale_months(evaluated, builds, loaded)
    if stale:
        months = [m for m in evaluated if m >= stale[0]]
        if as_of not in months:
            months.append(as_of)
    elif as_of not in builds or builds[as_of][1] != sha:
        months = [as_of]
    else:
        months = []
    return MonthPlan(as_of, months, restated=[m for m in months if m in builds],
                     rules_changed=bool(months) and not stale and as_of in builds,
                     inputs_loaded_at={m: loaded.get(m) for m in months}, unpublished=unpublished)


def record_month_build(working_db: Path, month: dt.date, inputs_loaded_at: dt.datetime | None,
                       rules_version: str, rules_path: Path, full_refresh: bool,
                       built_at: dt.datetime) -> str:
    """Record a successful dbt build of `month`; return its build id."""
    build_id = str(uuid.uuid4())
    con = duckdb.connect(str(working_db))
    try:
        ensure_month_build(con)
        con.execute("INSERT INTO audit.month_build VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [month, build_id, built_at, inputs_loaded_at, rules_version, rules_sha256(rules_path),
                     full_refresh])
    finally:
        con.close()
    return build_id
