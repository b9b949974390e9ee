"""Write-audit-publish of a release: build `published.duckdb.tmp`, verify it, `os.replace` it into place.

Readers holding the old `published.duckdb` keep a consistent old release (the old inode stays alive);
new readers get the new one; the pipeline never waits for a reader. Any failure leaves the current
`published.duckdb` and the exports untouched.

The AML marts (`aml_customer_risk`, `aml_trigger_transactions`) are confidential: they are never copied
to `published.duckdb`. The same publish step writes them to `<warehouse>/restricted/aml.duckdb` (directory
mode 0700, file mode 0600) with its own `release_log` row carrying the same release_id. Order:

1. build `published.duckdb.tmp` and `restricted/aml.duckdb.tmp`, verify both, write the Parquet `.tmp`s;
   a failure in any of these removes every tmp file and leaves both releases byte for byte;
2. `os.replace` the restricted file, then 3. `os.replace` the main file, then the Parquet copies.

Between 2 and 3 (two renames in the same warehouse, microseconds) a reader can see the new AML release
next to the old main one; if step 3 itself failed (e.g. the warehouse directory turned read-only), the
restricted release would stay one release ahead until the next publication — its release_log row then
names a release_id that the main release_log lacks, which is detectable. The AML file goes first so that
a published release never exists without its AML counterpart. A working database without the AML marts
(builds before issue 3) publishes the main release only and leaves any restricted file as it was.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from flows.months import SHANGHAI

log = logging.getLogger(__name__)

# The published tables, copied whole from the working database's marts (every evaluated month).
PUBLISHED_TABLES = ("customer_segment", "customer_tier", "tier_summary", "tier_migration")
# Confidential marts: never in published.duckdb, only in the restricted AML release.
AML_TABLES = ("aml_customer_risk", "aml_trigger_transactions")
RESTRICTED_DIR = "restricted"
RESTRICTED_DB = "aml.duckdb"
RESTRICTED_DIR_MODE = 0o700
RESTRICTED_FILE_MODE = 0o600
AML_RELEASE_LOG_DDL = """
CREATE TABLE main.release_log (
    release_id VARCHAR, as_of_month DATE, published_at TIMESTAMP, rules_version VARCHAR,
    gate_run_id VARCHAR, aml_customer_risk_rows BIGINT, aml_trigger_transactions_rows BIGINT)
"""
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
    # The restricted AML release (None when the working database has no AML marts).
    restricted_db: Path | None = None
    restricted_row_counts: dict[str, int] = field(default_factory=dict)


def restricted_db_path(warehouse: Path) -> Path:
    """`<warehouse>/restricted/aml.duckdb`: the AML release, readable by AML staff only."""
    return Path(warehouse) / RESTRICTED_DIR / RESTRICTED_DB


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


def _copy_marts(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> dict[str, int]:
    """Copy `tables` whole from the attached working marts into the release; return their row counts."""
    counts: dict[str, int] = {}
    for table in tables:
        con.execute(f"CREATE TABLE main.{table} AS SELECT * FROM working.main_marts.{table}")
        counts[table] = con.execute(f"SELECT count(*) FROM working.main_marts.{table}").fetchone()[0]
    return counts


def _carry_release_log(con: duckdb.DuckDBPyConnection, previous: Path) -> None:
    """Append the release log of the `previous` release file (if it has one) to the new release's log."""
    if not previous.exists():
        return
    con.execute(f"ATTACH '{_sql_path(previous)}' AS previous (READ_ONLY)")
    has_log = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'previous' "
                          "AND schema_name = 'main' AND table_name = 'release_log'").fetchone()[0]
    if has_log:
        con.execute("INSERT INTO main.release_log BY NAME SELECT * FROM previous.main.release_log")
    con.execute("DETACH previous")


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
        counts = _copy_marts(con, PUBLISHED_TABLES)
        meta = _release_meta(con, as_of_month)
        con.execute(RELEASE_LOG_DDL)
        _carry_release_log(con, previous)
        con.execute("INSERT INTO main.release_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [release_id, as_of_month, published_at, *meta, gate_run_id,
                     *(counts[t] for t in PUBLISHED_TABLES)])
        con.execute("DETACH working")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts, meta


def _check_release_file(con, counts: dict[str, int], release_id: str, what: str) -> None:
    """The checks every built release file passes: row counts, no personal-data columns, logged once."""
    for table, expected in counts.items():
        found = con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]
        if found != expected:
            raise PublishFailed(f"{table}: {found} rows in the {what}, {expected} in the working marts")
    leaked = con.execute(
        "SELECT table_name || '.' || column_name FROM information_schema.columns "
        f"WHERE lower(column_name) IN ({', '.join(repr(c) for c in FORBIDDEN_COLUMNS)})").fetchall()
    if leaked:
        raise PublishFailed(f"unmasked personal data in the {what}: {', '.join(r[0] for r in leaked)}")
    logged = con.execute("SELECT count(*) FROM main.release_log WHERE release_id = ?", [release_id]).fetchone()[0]
    if logged != 1:
        raise PublishFailed(f"{what} release_log has {logged} rows for release {release_id}, expected 1")


def _verify(tmp: Path, counts: dict[str, int], release_id: str) -> None:
    """Audit the built file on its own: row counts, no personal-data columns, this release logged once."""
    con = duckdb.connect(str(tmp), read_only=True)
    try:
        _check_release_file(con, counts, release_id, "release")
        confidential = con.execute(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE lower(table_name) IN ({', '.join(repr(t) for t in AML_TABLES)})").fetchall()
        if confidential:
            raise PublishFailed(f"confidential AML tables in the general release: "
                                f"{', '.join(r[0] for r in confidential)}")
    finally:
        con.close()


def _aml_tables_present(working_db: Path) -> bool:
    """True when the working marts have both AML tables, False when neither; a half pair is an error."""
    con = duckdb.connect(str(working_db), read_only=True)
    try:
        found = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main_marts' "
            f"AND table_name IN ({', '.join(repr(t) for t in AML_TABLES)})").fetchall()}
    finally:
        con.close()
    if found and len(found) != len(AML_TABLES):
        missing = sorted(set(AML_TABLES) - found)
        raise PublishFailed(f"working marts have {', '.join(sorted(found))} but not {', '.join(missing)}: "
                            "the AML release would be incomplete")
    return bool(found)


def _prepare_restricted_dir(directory: Path) -> None:
    """Create `restricted/` as 0700 (and put the mode back if someone widened it)."""
    directory.mkdir(mode=RESTRICTED_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(directory, RESTRICTED_DIR_MODE)


def _build_restricted(tmp: Path, working_db: Path, previous: Path, as_of_month: date, gate_run_id: str,
                      release_id: str, published_at: datetime, rules_version: str) -> dict[str, int]:
    """Create the AML release at `tmp` (mode 0600): the AML marts and its release log."""
    con = duckdb.connect(str(tmp))
    try:
        os.chmod(tmp, RESTRICTED_FILE_MODE)
        con.execute("SET enable_progress_bar = false")
        con.execute(f"ATTACH '{_sql_path(working_db)}' AS working (READ_ONLY)")
        counts = _copy_marts(con, AML_TABLES)
        con.execute(AML_RELEASE_LOG_DDL)
        _carry_release_log(con, previous)
        con.execute("INSERT INTO main.release_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [release_id, as_of_month, published_at, rules_version, gate_run_id,
                     *(counts[t] for t in AML_TABLES)])
        con.execute("DETACH working")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts


def _verify_restricted(tmp: Path, counts: dict[str, int], release_id: str) -> None:
    """Audit the AML file: row counts, no unmasked personal data, this release logged once, mode 0600."""
    con = duckdb.connect(str(tmp), read_only=True)
    try:
        _check_release_file(con, counts, release_id, "AML release")
    finally:
        con.close()
    os.chmod(tmp, RESTRICTED_FILE_MODE)
    if tmp.stat().st_mode & 0o777 != RESTRICTED_FILE_MODE:
        raise PublishFailed(f"{tmp} is not mode {RESTRICTED_FILE_MODE:o}")


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
                    gate_run_id: str, restricted_db: Path | None = None) -> Release:
    """Publish the working marts as a new release if gate run `gate_run_id` passed for `as_of_month`.

    The AML marts, when the working database has them, go to `restricted_db` (default
    `<published_db's directory>/restricted/aml.duckdb`) in the same step: both files or neither.
    """
    working_db, published_db, exports_dir = Path(working_db), Path(published_db), Path(exports_dir)
    restricted_db = Path(restricted_db) if restricted_db else restricted_db_path(published_db.parent)
    check_gate_run(working_db, gate_run_id, as_of_month)
    tmp = published_db.with_name(published_db.name + ".tmp")
    restricted_tmp = restricted_db.with_name(restricted_db.name + ".tmp")
    tmp_files = [tmp, tmp.with_name(tmp.name + ".wal")]
    restricted_tmp_files = [restricted_tmp, restricted_tmp.with_name(restricted_tmp.name + ".wal")]
    _remove(*tmp_files, *restricted_tmp_files)  # leftovers of an interrupted run
    release_id = str(uuid.uuid4())
    published_at = datetime.now(SHANGHAI).replace(tzinfo=None)
    exports: dict[str, Path] = {}
    aml_counts: dict[str, int] = {}
    try:
        with_aml = _aml_tables_present(working_db)
        counts, meta = _build(tmp, working_db, published_db, as_of_month, gate_run_id, release_id,
                              published_at)
        _verify(tmp, counts, release_id)
        if with_aml:
            _prepare_restricted_dir(restricted_db.parent)
            aml_counts = _build_restricted(restricted_tmp, working_db, restricted_db, as_of_month, gate_run_id,
                                           release_id, published_at, meta[0])
            _verify_restricted(restricted_tmp, aml_counts, release_id)
        else:
            log.info("no AML marts (%s) in %s: restricted AML release skipped, %s left as it was",
                     ", ".join(AML_TABLES), working_db.name, restricted_db)
        exports = _export(tmp, exports_dir)
        for leftover in (tmp_files[1], restricted_tmp_files[1]):
            if leftover.exists():
                raise PublishFailed(f"{leftover} left behind: the release was not checkpointed")
        # Both files are built and verified: restricted first, then main (see the module docstring).
        if with_aml:
            os.replace(restricted_tmp, restricted_db)
        os.replace(tmp, published_db)
    except Exception as exc:
        _remove(*tmp_files, *restricted_tmp_files, *exports.values())
        if isinstance(exc, PublishFailed | PublishRefused):
            raise
        raise PublishFailed(f"publication of {as_of_month:%Y-%m} failed, {published_db.name} unchanged: "
                            f"{exc}") from exc
    # The database is the release of record; the Parquet copies follow it, each replaced atomically.
    final: dict[str, Path] = {}
    for table, tmp_export in exports.items():
        final[table] = exports_dir / f"{table}.parquet"
        os.replace(tmp_export, final[table])
    log.info("published release %s for %s (gate run %s): %s%s", release_id, f"{as_of_month:%Y-%m}",
             gate_run_id, ", ".join(f"{t} {n}" for t, n in counts.items()),
             f"; restricted AML release {restricted_db}: " + ", ".join(f"{t} {n}" for t, n in aml_counts.items())
             if with_aml else "")
    return Release(release_id=release_id, as_of_month=as_of_month, published_at=published_at,
                   gate_run_id=gate_run_id, rules_version=meta[0], rule_set=meta[1], rule_set_version=meta[2],
                   row_counts=counts, published_db=published_db, exports=final,
                   restricted_db=restricted_db if with_aml else None, restricted_row_counts=aml_counts)
