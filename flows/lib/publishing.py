"""Write-audit-publish of a release: build `published.duckdb.tmp`, verify it, `os.replace` it into place.

Readers holding the old `published.duckdb` keep a consistent old release (the old inode stays alive);
new readers get the new one; the pipeline never waits for a reader. Any failure leaves the current
`published.duckdb` and the exports untouched.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

log = logging.getLogger(__name__)

# The published tables, copied whole from the working database's marts (every evaluated month).
PUBLISHED_TABLES = ("customer_segment", "customer_tier", "tier_summary", "tier_migration")
# Personal data never leaves the pipeline unmasked: a release with one of these columns is refused.
FORBIDDEN_COLUMNS = ("cust_name", "cert_no", "mobile")
RELEASE_LOG_DDL = """
CREATE TABLE main.release_log (
    release_id VARCHAR, as_of_month DATE, published_at TIMESTAMP, rules_version VARCHAR,
    rule_set VARCHAR, rule_set_version VARCHAR, gate_run_id VARCHAR,
    customer_segment_rows BIGINT, customer_tier_rows BIGINT, tier_summary_rows BIGINT,
    tier_migration_rows BIGINT)
"""


class PublishRefused(RuntimeError):
    """The gate run does not allow this publication (missing, other month, or failed)."""


class PublishFailed(RuntimeError):
    """Building or verifying the release failed; the published database was left as it was."""


@dataclass(frozen=True)
class Release:
    """One published release and where it went."""

    release_id: str
    as_of_month: date
    published_at: datetime
    gate_run_id: str
    rules_version: str
    rule_set: str
    rule_set_version: str
    row_counts: dict[str, int]
    published_db: Path
    exports: dict[str, Path] = field(default_factory=dict)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def check_gate_run(working_db: Path, gate_run_id: str, as_of_month: date) -> None:
    """Refuse unless gate.run has `gate_run_id`, for the same month, and it succeeded."""
    con = duckdb.connect(str(working_db), read_only=True)
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_schema = 'gate' AND table_name = 'run'").fetchone()[0]
        row = con.execute("SELECT as_of_month, success FROM gate.run WHERE gate_run_id = ?",
                          [gate_run_id]).fetchone() if exists else None
    finally:
        con.close()
    if row is None:
        raise PublishRefused(f"gate run {gate_run_id} not found in gate.run: run the gate first")
    gated_month, success = row
    if (gated_month.year, gated_month.month) != (as_of_month.year, as_of_month.month):
        raise PublishRefused(f"gate run {gate_run_id} validated {gated_month:%Y-%m}, not {as_of_month:%Y-%m}")
    if not success:
        raise PublishRefused(f"gate run {gate_run_id} for {as_of_month:%Y-%m} failed: nothing is published")


def _release_meta(con: duckdb.DuckDBPyConnection, as_of_month: date) -> tuple[str, str, str]:
    """rules_version, active rule set and its version as recorded in the month's retail marts rows."""
    rows = con.execute(
        "SELECT DISTINCT rules_version, rule_set, rule_set_version FROM working.main_marts.customer_segment "
        "WHERE as_of_month = ? AND cust_type = 'P'", [as_of_month]).fetchall()
    if len(rows) != 1:
        raise PublishFailed(f"customer_segment {as_of_month:%Y-%m}: expected one (rules_version, rule_set, "
                            f"rule_set_version) for retail rows, found {len(rows)}")
    return rows[0]


def _build(tmp: Path, working_db: Path, previous: Path, as_of_month: date, gate_run_id: str,
           release_id: str, published_at: datetime) -> tuple[dict[str, int], tuple[str, str, str]]:
    """Create the release database at `tmp`: the marts, the release log (previous rows + this one)."""
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"ATTACH '{_sql_path(working_db)}' AS working (READ_ONLY)")
        latest = con.execute("SELECT max(as_of_month) FROM working.main_marts.customer_segment").fetchone()[0]
        if latest != as_of_month:
            # The marts moved on (or back) since the gate: publishing them would ship ungated rows.
            raise PublishFailed(f"working marts end at {latest}, not at the gated month {as_of_month}")
        counts: dict[str, int] = {}
        for table in PUBLISHED_TABLES:
            con.execute(f"CREATE TABLE main.{table} AS SELECT * FROM working.main_marts.{table}")
            counts[table] = con.execute(f"SELECT count(*) FROM working.main_marts.{table}").fetchone()[0]
        meta = _release_meta(con, as_of_month)
        con.execute(RELEASE_LOG_DDL)
        if previous.exists():
            con.execute(f"ATTACH '{_sql_path(previous)}' AS previous (READ_ONLY)")
            has_log = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'previous' "
                                  "AND schema_name = 'main' AND table_name = 'release_log'").fetchone()[0]
            if has_log:
                con.execute("INSERT INTO main.release_log BY NAME SELECT * FROM previous.main.release_log")
            con.execute("DETACH previous")
        con.execute("INSERT INTO main.release_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [release_id, as_of_month, published_at, *meta, gate_run_id,
                     *(counts[t] for t in PUBLISHED_TABLES)])
        con.execute("DETACH working")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts, meta


def _verify(tmp: Path, counts: dict[str, int], release_id: str) -> None:
    """Audit the built file on its own: row counts, no personal-data columns, this release logged once."""
    con = duckdb.connect(str(tmp), read_only=True)
    try:
        for table, expected in counts.items():
            found = con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]
            if found != expected:
                raise PublishFailed(f"{table}: {found} rows in the release, {expected} in the working marts")
        leaked = con.execute(
            "SELECT table_name || '.' || column_name FROM information_schema.columns "
            f"WHERE lower(column_name) IN ({', '.join(repr(c) for c in FORBIDDEN_COLUMNS)})").fetchall()
        if leaked:
            raise PublishFailed(f"unmasked personal data in the release: {', '.join(r[0] for r in leaked)}")
        logged = con.execute("SELECT count(*) FROM main.release_log WHERE release_id = ?",
                             [release_id]).fetchone()[0]
        if logged != 1:
            raise PublishFailed(f"release_log has {logged} rows for release {release_id}, expected 1")
    finally:
        con.close()


def _export(tmp: Path, exports_dir: Path) -> dict[str, Path]:
    """Parquet copies of the release's tables, written as `<table>.parquet.tmp` (replaced later)."""
    exports_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    con = duckdb.connect(str(tmp), read_only=True)
    try:
        for table in PUBLISHED_TABLES:
            target = exports_dir / f"{table}.parquet.tmp"
            con.execute(f"COPY main.{table} TO '{_sql_path(target)}' (FORMAT parquet)")
            written[table] = target
    finally:
        con.close()
    return written


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def publish_release(working_db: Path, published_db: Path, exports_dir: Path, as_of_month: date,
                    gate_run_id: str) -> Release:
    """Publish the working marts as a new release if gate run `gate_run_id` passed for `as_of_month`."""
    working_db, published_db, exports_dir = Path(working_db), Path(published_db), Path(exports_dir)
    check_gate_run(working_db, gate_run_id, as_of_month)
    tmp = published_db.with_name(published_db.name + ".tmp")
    tmp_files = [tmp, tmp.with_name(tmp.name + ".wal")]
    _remove(*tmp_files)  # leftovers of an interrupted run
    release_id = str(uuid.uuid4())
    published_at = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    exports: dict[str, Path] = {}
    try:
        counts, meta = _build(tmp, working_db, published_db, as_of_month, gate_run_id, release_id,
                              published_at)
        _verify(tmp, counts, release_id)
        exports = _export(tmp, exports_dir)
        if tmp_files[1].exists():
            raise PublishFailed(f"{tmp_files[1]} left behind: the release was not checkpointed")
        os.replace(tmp, published_db)
    except Exception as exc:
        _remove(*tmp_files, *exports.values())
        if isinstance(exc, PublishFailed | PublishRefused):
            raise
        raise PublishFailed(f"publication of {as_of_month:%Y-%m} failed, {published_db.name} unchanged: "
                            f"{exc}") from exc
    # The database is the release of record; the Parquet copies follow it, each replaced atomically.
    final: dict[str, Path] = {}
    for table, tmp_export in exports.items():
        final[table] = exports_dir / f"{table}.parquet"
        os.replace(tmp_export, final[table])
    log.info("published release %s for %s (gate run %s): %s", release_id, f"{as_of_month:%Y-%m}", gate_run_id,
             ", ".join(f"{t} {n}" for t, n in counts.items()))
    return Release(release_id=release_id, as_of_month=as_of_month, published_at=published_at,
                   gate_run_id=gate_run_id, rules_version=meta[0], rule_set=meta[1], rule_set_version=meta[2],
                   row_counts=counts, published_db=published_db, exports=final)
