"""Write-audit-publish of a release: month partitions in Parquet, a catalog of views swapped atomically.

A release is a folder of immutable Parquet files, one per published table and month:

    <warehouse>/releases/<release_id>/<table>/as_of_month=<YYYY-MM-DD>/data.parquet

A run writes only the months it built (the new month, or every month a restatement rebuilt); every other
month of the previous release is hard-linked into the new folder, so publication costs the months written,
not the months held, and the previous release's files stay exactly as they were (DECISIONLOG P1).
Consumers see a release through:

- `published.duckdb`: one view per table over the release's files, `release_log` (every release) and
  `release_months` (which release and gate run wrote each month). It is built as `published.duckdb.tmp`,
  verified, then `os.replace`d into place: readers holding the old file keep the old release (whose files
  are kept until the release after next), new readers get the new one, nobody waits;
- `exports`: a relative symlink to the current release folder, replaced atomically (Spark, pandas, BI:
  `exports/<table>/` is a Hive-partitioned Parquet dataset of the current release).

The AML marts are confidential: never in `published.duckdb` or `releases/`. The same step writes them to
`<warehouse>/restricted/releases/<release_id>/…` (folders 0700, files 0600) with their own catalog
`restricted/aml.duckdb`, carrying the same release_id. Order: build and verify both releases, replace the
restricted catalog, then the main one, then the `exports` link. Any failure before the replacements removes
what was written and leaves both releases byte for byte; the restricted catalog goes first so that a
published release never exists without its AML counterpart.

Both catalogs' `release_log` has one row per publication (`action` 'publish') and one per rollback
(`action` 'rollback', `rolled_back_from` naming the release it replaced; flows/commands/rollback.py): the
current release is always the latest row by published_at.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from flows.faults import crash_point
from flows.months import SHANGHAI, bank_time
from flows.settings import Settings
from flows.sql_literals import sql_text

log = logging.getLogger(__name__)

# The published tables, and the order their rows are written in (stable files, fast lookups by customer).
PUBLISHED_TABLES = ("customer_segment", "customer_tier", "tier_summary", "tier_migration", "customer_event")
# Confidential marts: never in published.duckdb, only in the restricted AML release.
AML_TABLES = ("aml_customer_risk", "aml_trigger_transactions")
ROW_ORDER = {
    "customer_segment": "cust_id",
    "customer_tier": "cust_id, rule_set",
    "tier_summary": "rule_set, tier_rank DESC, tier",
    "tier_migration": "rule_set, from_tier NULLS FIRST, to_tier",
    "customer_event": "cust_id, event_type",
    "aml_customer_risk": "cust_id",
    "aml_trigger_transactions": "cust_id, trigger, txn_id",
}
DATA_FILE = "data.parquet"
# The CRM change feed as CSV beside the Parquet: <release>/crm/<YYYY-MM>/customer_event.csv, UTF-8 with a BOM
# so that Excel and CRM importers (纷享销客, Zoho CRM) read the Chinese as Chinese.
CRM_DIR, CRM_TABLE = "crm", "customer_event"
UTF8_BOM = b"\xef\xbb\xbf"
RESTRICTED_DIR_MODE = 0o700
RESTRICTED_FILE_MODE = 0o600
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880"
# Personal data never leaves the pipeline unmasked: a release with one of these columns is refused.
FORBIDDEN_COLUMNS = ("cust_name", "cert_no", "mobile")
RELEASE_LOG_DDL = """
CREATE TABLE main.release_log (
    release_id VARCHAR, as_of_month DATE, published_at TIMESTAMP, rules_version VARCHAR,
    rule_set VARCHAR, rule_set_version VARCHAR, gate_run_id VARCHAR,
    customer_segment_rows BIGINT, customer_tier_rows BIGINT, tier_summary_rows BIGINT,
    tier_migration_rows BIGINT, customer_event_rows BIGINT, months_published VARCHAR, restated_months VARCHAR,
    action VARCHAR, rolled_back_from VARCHAR, month_gate_runs VARCHAR)
"""
AML_RELEASE_LOG_DDL = """
CREATE TABLE main.release_log (
    release_id VARCHAR, as_of_month DATE, published_at TIMESTAMP, rules_version VARCHAR,
    gate_run_id VARCHAR, aml_customer_risk_rows BIGINT, aml_trigger_transactions_rows BIGINT,
    months_published VARCHAR, restated_months VARCHAR, action VARCHAR, rolled_back_from VARCHAR,
    month_gate_runs VARCHAR)
"""
# release_log.action: a release written by publish_release, or made current again by a rollback.
# release_log.month_gate_runs: each month a publication wrote and its gate run, `<YYYY-MM-DD>=<gate run>,…`
# (what release_months says of those months, kept for a rollback after a later release restated them).
ACTION_PUBLISH = "publish"
ACTION_ROLLBACK = "rollback"
RELEASE_MONTHS_DDL = """
CREATE TABLE main.release_months (
    table_name VARCHAR, as_of_month DATE, release_id VARCHAR, gate_run_id VARCHAR, published_at TIMESTAMP,
    rows BIGINT, file VARCHAR)
"""


class PublishRefused(RuntimeError):
    """The gate runs do not allow this publication (missing, other month, or failed)."""


class PublishFailed(RuntimeError):
    """Building or verifying the release failed; the published release was left as it was."""


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
    months_published: list[date] = field(default_factory=list)
    restated_months: list[date] = field(default_factory=list)
    release_dir: Path | None = None
    exports: dict[str, Path] = field(default_factory=dict)
    # The restricted AML release (None when the working database has no AML marts).
    restricted_db: Path | None = None
    restricted_row_counts: dict[str, int] = field(default_factory=dict)


def _month_text(months: list[date]) -> str:
    return ",".join(f"{m:%Y-%m-%d}" for m in months)


def _month_gate_runs_text(months: list[date], gate_runs: dict[date, str]) -> str:
    return ",".join(f"{m:%Y-%m-%d}={gate_runs[m]}" for m in months)


def check_gate_runs(working_db: Path, gate_runs: dict[date, str]) -> None:
    """Refuse unless every month's gate run is in gate.run, for that month, and succeeded."""
    con = duckdb.connect(str(working_db), read_only=True)
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_schema = 'gate' AND table_name = 'run'").fetchone()[0]
        rows = {}
        for month, gate_run_id in gate_runs.items():
            rows[month] = con.execute("SELECT as_of_month, success FROM gate.run WHERE gate_run_id = ?",
                                      [gate_run_id]).fetchone() if exists else None
    finally:
        con.close()
    for month, gate_run_id in gate_runs.items():
        row = rows[month]
        if row is None:
            raise PublishRefused(f"gate run {gate_run_id} not found in gate.run: run the gate first")
        gated_month, success = row
        if (gated_month.year, gated_month.month) != (month.year, month.month):
            raise PublishRefused(f"gate run {gate_run_id} validated {gated_month:%Y-%m}, not {month:%Y-%m}")
        if not success:
            raise PublishRefused(f"gate run {gate_run_id} for {month:%Y-%m} failed: nothing is published")


# ------------------------------------------------------------------------------------------ previous release


@dataclass
class _Previous:
    """What the current catalog says: its months per table (→ file), release log and month manifest."""

    files: dict[str, dict[date, Path]] = field(default_factory=dict)
    manifest: list[tuple] = field(default_factory=list)
    release_ids: set[str] = field(default_factory=set)


def _read_previous(catalog: Path, warehouse: Path) -> _Previous:
    previous = _Previous()
    if not catalog.exists():
        return previous
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
        if "release_months" not in tables:
            if tables & {*PUBLISHED_TABLES, *AML_TABLES}:
                raise PublishFailed(f"{catalog} is a release of the old single-file layout: publish into a new "
                                    "warehouse folder (this version keeps releases as month partitions)")
            return previous
        previous.manifest = con.execute("SELECT * FROM main.release_months").fetchall()
        previous.release_ids = {r[0] for r in con.execute("SELECT release_id FROM main.release_log").fetchall()}
    finally:
        con.close()
    for table, month, _release, _gate, _at, _rows, file in previous.manifest:
        previous.files.setdefault(table, {})[month] = Path(warehouse) / file
    return previous


# ------------------------------------------------------------------------------------------ building


def _release_meta(con: duckdb.DuckDBPyConnection, as_of_month: date) -> tuple[str, str, str]:
    """rules_version, active rule set and its version as recorded in the month's retail marts rows."""
    rows = con.execute(
        "SELECT DISTINCT rules_version, rule_set, rule_set_version FROM working.main_marts.customer_segment "
        "WHERE as_of_month = ? AND cust_type = 'P'", [as_of_month]).fetchall()
    if len(rows) != 1:
        raise PublishFailed(f"customer_segment {as_of_month:%Y-%m}: expected one (rules_version, rule_set, "
                            f"rule_set_version) for retail rows, found {len(rows)}")
    return rows[0]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 'working' AND schema_name = 'main_marts' "
        "AND table_name = ? ORDER BY column_index", [table]).fetchall()]


@dataclass
class _Written:
    """A release folder being built: files per table and month, the rows written, what to undo."""

    folder: Path
    files: dict[str, dict[date, Path]] = field(default_factory=dict)
    rows_written: dict[tuple[str, date], int] = field(default_factory=dict)


def _write_release_folder(con: duckdb.DuckDBPyConnection, tmp_folder: Path, final_folder: Path,
                          tables: tuple[str, ...], months: list[date], previous: _Previous,
                          file_mode: int | None = None) -> _Written:
    """Write the built months of `tables` from the attached working marts; hard-link every other month of
    the previous release (its files are immutable)."""
    written = _Written(final_folder)
    for table in tables:
        columns = [c for c in _columns(con, table) if c != "as_of_month"]
        if not columns:
            raise PublishFailed(f"working marts have no table {table}: the release would be incomplete")
        leaked = [c for c in columns if c.lower() in FORBIDDEN_COLUMNS]
        if leaked:  # checked before a byte is written: the files are readable without the catalog
            raise PublishFailed(f"unmasked personal data in working marts {table}: {', '.join(leaked)}")
        carried = {m: f for m, f in previous.files.get(table, {}).items() if m not in months}
        for month in sorted({*carried, *months}):
            part = Path(table) / f"as_of_month={month.isoformat()}" / DATA_FILE
            target = tmp_folder / part
            target.parent.mkdir(parents=True, exist_ok=True)
            if month in carried:
                try:
                    os.link(carried[month], target)
                except OSError:  # a filesystem without hard links: copy (costs the bytes, same result)
                    shutil.copy2(carried[month], target)
            else:
                count = con.execute(
                    f"COPY (SELECT {', '.join(columns)} FROM working.main_marts.{table} "
                    f"WHERE as_of_month = DATE '{month.isoformat()}' ORDER BY {ROW_ORDER[table]}) "
                    f"TO {sql_text(str(target))} ({PARQUET_OPTIONS})").fetchone()[0]
                written.rows_written[(table, month)] = int(count)
                if file_mode is not None:
                    os.chmod(target, file_mode)
            written.files.setdefault(table, {})[month] = final_folder / part
    return written


def _build_catalog(tmp: Path, written: _Written, tables: tuple[str, ...], log_ddl: str, log_row: list,
                   previous_catalog: Path, manifest_rows: list[tuple]) -> dict[str, int]:
    """Create the catalog at `tmp`: one view per table over its files, release_log, release_months."""
    counts: dict[str, int] = {}
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET enable_progress_bar = false")
        for table in tables:
            paths = ", ".join(sql_text(str(p)) for _, p in sorted(written.files[table].items()))
            # union_by_name: a column added in a later month shows (NULL before it) instead of hiding.
            source = (f"read_parquet([{paths}], hive_partitioning = true, union_by_name = true, "
                      "hive_types = {'as_of_month': DATE})")
            # as_of_month first, as in the marts (read_parquet puts the partition column last).
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
            ordered = ["as_of_month", *[c for c in columns if c != "as_of_month"]]
            con.execute(f"CREATE VIEW main.{table} AS SELECT {', '.join(ordered)} FROM {source}")
            counts[table] = con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]
        con.execute(log_ddl)
        if previous_catalog.exists():
            con.execute(f"ATTACH {sql_text(str(previous_catalog))} AS previous (READ_ONLY)")
            con.execute("INSERT INTO main.release_log BY NAME SELECT * FROM previous.main.release_log")
            con.execute("DETACH previous")
            # Rows of a catalog older than the action column were all publications.
            con.execute(f"UPDATE main.release_log SET action = '{ACTION_PUBLISH}' WHERE action IS NULL")
        placeholders = ", ".join(["?"] * len(log_row))
        con.execute(f"INSERT INTO main.release_log VALUES ({placeholders})", log_row)
        con.execute(RELEASE_MONTHS_DDL)
        con.executemany("INSERT INTO main.release_months VALUES (?, ?, ?, ?, ?, ?, ?)", manifest_rows)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts


def _check_catalog(tmp: Path, counts: dict[str, int], release_id: str, what: str,
                   confidential: tuple[str, ...] = (), logged_at: datetime | None = None) -> None:
    """Audit a built catalog on its own: row counts through its views, no personal-data column, this
    release logged once (at `logged_at` when given: a rolled-back-to release has older rows too), and
    (for the general release) no confidential table."""
    con = duckdb.connect(str(tmp), read_only=True)
    try:
        for table, expected in counts.items():
            found = con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]
            if found != expected:
                raise PublishFailed(f"{table}: {found} rows in the {what}, {expected} expected")
        leaked = con.execute(
            "SELECT table_name || '.' || column_name FROM information_schema.columns "
            f"WHERE lower(column_name) IN ({', '.join(repr(c) for c in FORBIDDEN_COLUMNS)})").fetchall()
        if leaked:
            raise PublishFailed(f"unmasked personal data in the {what}: {', '.join(r[0] for r in leaked)}")
        logged = con.execute("SELECT count(*) FROM main.release_log WHERE release_id = ?"
                             + (" AND published_at = ?" if logged_at else ""),
                             [release_id, *([logged_at] if logged_at else [])]).fetchone()[0]
        if logged != 1:
            at = f" at {bank_time(logged_at)}" if logged_at else ""
            raise PublishFailed(f"{what} release_log has {logged} rows for release {release_id}{at}, expected 1")
        if confidential:
            found_confidential = con.execute(
                "SELECT table_name FROM information_schema.tables "
                f"WHERE lower(table_name) IN ({', '.join(repr(t) for t in confidential)})").fetchall()
            if found_confidential:
                raise PublishFailed(f"confidential AML tables in the general release: "
                                    f"{', '.join(r[0] for r in found_confidential)}")
    finally:
        con.close()


def crm_csv_part(month: date) -> Path:
    """Where a month's CRM feed CSV sits inside a release folder (and so under `exports/`)."""
    return Path(CRM_DIR) / f"{month:%Y-%m}" / f"{CRM_TABLE}.csv"


def _write_crm_csv(con: duckdb.DuckDBPyConnection, tmp_folder: Path, months: list[date],
                   previous: _Previous) -> None:
    """The CRM feed of every month of the release as CSV: written for the built months, hard-linked from the
    previous release for the others (a release published before the feed existed has none to carry)."""
    for month, parquet in previous.files.get(CRM_TABLE, {}).items():
        source = parquet.parents[2] / crm_csv_part(month)
        if month not in months and source.exists():
            target = tmp_folder / crm_csv_part(month)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
    for month in months:
        target = tmp_folder / crm_csv_part(month)
        target.parent.mkdir(parents=True, exist_ok=True)
        plain = target.with_suffix(".nobom")
        columns = _columns(con, CRM_TABLE)
        con.execute(f"COPY (SELECT {', '.join(columns)} FROM working.main_marts.{CRM_TABLE} "
                    f"WHERE as_of_month = DATE '{month.isoformat()}' ORDER BY {ROW_ORDER[CRM_TABLE]}) "
                    f"TO {sql_text(str(plain))} (FORMAT csv, HEADER true)")
        with open(plain, "rb") as source, open(target, "wb") as out:
            out.write(UTF8_BOM)
            shutil.copyfileobj(source, out, 1 << 20)
        plain.unlink()


def _expected_counts(previous: _Previous, written: _Written, tables: tuple[str, ...],
                     months: list[date]) -> dict[str, int]:
    """Rows each view must show: the previous release's rows of the carried months plus the rows written."""
    carried_rows = {(t, m): rows for t, m, _r, _g, _a, rows, _f in previous.manifest}
    return {table: sum(written.rows_written[(table, m)] if m in months else carried_rows[(table, m)]
                       for m in written.files[table]) for table in tables}


def _manifest(previous: _Previous, written: _Written, tables: tuple[str, ...], months: list[date],
              release_id: str, gate_runs: dict[date, str], published_at: datetime,
              warehouse: Path) -> list[tuple]:
    old = {(t, m): (r, g, a, rows) for t, m, r, g, a, rows, _f in previous.manifest}
    rows = []
    for table in tables:
        for month, path in sorted(written.files[table].items()):
            file = str(path.relative_to(warehouse))
            if month in months:
                rows.append((table, month, release_id, gate_runs[month], published_at,
                             written.rows_written[(table, month)], file))
            else:
                writer, gate, at, count = old[(table, month)]
                rows.append((table, month, writer, gate, at, count, file))
    return rows


def _aml_tables_present(working_db: Path) -> bool:
    """True when the working marts have both AML tables, False when neither; a half pair is an error."""
    con = duckdb.connect(str(working_db), read_only=True)
    try:
        found = {r[0] for r in con.execute(
            # Tables, or views over a Spark build's files (spark_engine.mount_built_tables).
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main_marts' "
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


def _restrict_tree(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, RESTRICTED_DIR_MODE if path.is_dir() else RESTRICTED_FILE_MODE)


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def exports_target(settings: Settings, release_id: str) -> Path:
    """What the `exports` link holds: the release folder, relative to the link (a moved warehouse keeps it)."""
    return Path(os.path.relpath(settings.releases_dir / release_id, settings.exports_dir.parent))


def _swap_exports_link(settings: Settings, release_id: str) -> Path:
    """Point `<warehouse>/exports` at the release folder."""
    link = settings.exports_dir
    tmp = link.with_name(f".{link.name}.tmp")
    _remove(tmp)
    os.symlink(exports_target(settings, release_id), tmp)
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # the single-file exports of an older version
    os.replace(tmp, link)
    return link


def remove_old_releases(releases_dir: Path, keep: set[str]) -> list[Path]:
    """Delete release folders other than `keep` (the current and the previous release): readers that opened
    the previous catalog still find its files; older ones have had a whole release to finish."""
    removed = []
    if not releases_dir.is_dir():
        return removed
    for folder in releases_dir.iterdir():
        if folder.is_dir() and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _latest_release(catalog: Path) -> set[str]:
    """The release id a catalog serves (empty when there is none yet)."""
    if not catalog.exists():
        return set()
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        row = con.execute("SELECT release_id FROM main.release_log ORDER BY published_at DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return {row[0]} if row else set()


def _restrict_tree_modes(releases: Path) -> None:
    """Put 0700 back on the restricted releases folder and its release folders (if someone widened them)."""
    for folder in [releases, *(p for p in releases.iterdir() if p.is_dir())]:
        os.chmod(folder, RESTRICTED_DIR_MODE)


def publish_release(settings: Settings, months: list[date], gate_runs: dict[date, str],
                    as_of_month: date | None = None) -> Release:
    """Publish the working marts' `months` of `settings.working_db` as a new release of `settings.published_db`,
    if each month's gate run passed.

    `as_of_month` (default: the last of `months`) names the release; the months among `months` that the
    current release already holds are recorded as restated. The AML marts, when the working database has
    them, go to `settings.restricted_db` (restricted/aml.duckdb) in the same step: both or neither.
    """
    working_db, published_db, restricted_db = settings.working_db, settings.published_db, settings.restricted_db
    warehouse, duckdb_config = settings.warehouse, settings.duckdb_config()
    months = sorted(set(months))
    if not months:
        raise PublishRefused("no month to publish")
    as_of_month = as_of_month or months[-1]
    if as_of_month not in months:
        raise PublishRefused(f"release month {as_of_month:%Y-%m} is not among the months to publish")
    check_gate_runs(working_db, {m: gate_runs.get(m, "") for m in months})
    release_id = str(uuid.uuid4())
    published_at = datetime.now(SHANGHAI).replace(tzinfo=None)
    releases_dir, restricted_releases = settings.releases_dir, settings.restricted_releases_dir
    tmp_folder = releases_dir / f".tmp-{release_id}"
    restricted_tmp_folder = restricted_releases / f".tmp-{release_id}"
    catalog_tmp = published_db.with_name(published_db.name + ".tmp")
    restricted_catalog_tmp = restricted_db.with_name(restricted_db.name + ".tmp")
    leftovers = [catalog_tmp, catalog_tmp.with_name(catalog_tmp.name + ".wal"), restricted_catalog_tmp,
                 restricted_catalog_tmp.with_name(restricted_catalog_tmp.name + ".wal")]
    _remove(*leftovers, *releases_dir.glob(".tmp-*"), *restricted_releases.glob(".tmp-*"))
    aml_counts: dict[str, int] = {}
    moved: list[Path] = []
    restricted_backup = restricted_db.with_name(restricted_db.name + ".previous")
    aml_swapped = False
    try:
        with_aml = _aml_tables_present(working_db)
        previous = _read_previous(published_db, warehouse)
        restated = sorted(set(previous.files.get("customer_segment", {})) & set(months))
        # Decided before the swap: re-reading the catalog afterwards could hit a connection this process
        # still holds on the old file (DuckDB reuses it) and then delete the new release.
        keep = {release_id, *_latest_release(published_db)}
        con = duckdb.connect(config=dict(duckdb_config or {}))
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute(f"ATTACH {sql_text(str(working_db))} AS working (READ_ONLY)")
            for month in months:
                if not con.execute("SELECT count(*) FROM working.main_marts.customer_segment "
                                   "WHERE as_of_month = ?", [month]).fetchone()[0]:
                    raise PublishFailed(f"working marts hold no customer_segment rows for {month:%Y-%m}")
            meta = _release_meta(con, as_of_month)
            written = _write_release_folder(con, tmp_folder, releases_dir / release_id, PUBLISHED_TABLES,
                                            months, previous)
            _write_crm_csv(con, tmp_folder, months, previous)
            if with_aml:
                _prepare_restricted_dir(settings.restricted_dir)
                restricted_releases.mkdir(mode=RESTRICTED_DIR_MODE, exist_ok=True)
                previous_aml = _read_previous(restricted_db, warehouse)
                written_aml = _write_release_folder(con, restricted_tmp_folder,
                                                    restricted_releases / release_id, AML_TABLES, months,
                                                    previous_aml, file_mode=RESTRICTED_FILE_MODE)
        finally:
            con.close()
        gate_run_id = gate_runs[as_of_month] if as_of_month in gate_runs else gate_runs[months[-1]]
        expected = _expected_counts(previous, written, PUBLISHED_TABLES, months)
        # The folder gets its final name before the catalog that names it is built.
        os.replace(tmp_folder, releases_dir / release_id)
        moved.append(releases_dir / release_id)
        counts = _build_catalog(
            catalog_tmp, written, PUBLISHED_TABLES, RELEASE_LOG_DDL,
            [release_id, as_of_month, published_at, *meta, gate_run_id, *(expected[t] for t in PUBLISHED_TABLES),
             _month_text(months), _month_text(restated) or None, ACTION_PUBLISH, None,
             _month_gate_runs_text(months, gate_runs)],
            published_db, _manifest(previous, written, PUBLISHED_TABLES, months, release_id, gate_runs,
                                    published_at, warehouse))
        if counts != expected:
            raise PublishFailed(f"release views show {counts}, expected {expected}")
        _check_catalog(catalog_tmp, counts, release_id, "release", confidential=AML_TABLES)
        if with_aml:
            aml_expected = _expected_counts(previous_aml, written_aml, AML_TABLES, months)
            os.replace(restricted_tmp_folder, restricted_releases / release_id)
            moved.append(restricted_releases / release_id)
            _restrict_tree(restricted_releases / release_id)
            aml_counts = _build_catalog(
                restricted_catalog_tmp, written_aml, AML_TABLES, AML_RELEASE_LOG_DDL,
                [release_id, as_of_month, published_at, meta[0], gate_run_id,
                 *(aml_expected[t] for t in AML_TABLES), _month_text(months), _month_text(restated) or None,
                 ACTION_PUBLISH, None, _month_gate_runs_text(months, gate_runs)],
                restricted_db, _manifest(previous_aml, written_aml, AML_TABLES, months, release_id, gate_runs,
                                         published_at, warehouse))
            os.chmod(restricted_catalog_tmp, RESTRICTED_FILE_MODE)
            if aml_counts != aml_expected:
                raise PublishFailed(f"AML release views show {aml_counts}, expected {aml_expected}")
            _check_catalog(restricted_catalog_tmp, aml_counts, release_id, "AML release")
        else:
            log.info("no AML marts (%s) in %s: restricted AML release skipped, %s left as it was",
                     ", ".join(AML_TABLES), working_db.name, restricted_db)
        for leftover in (leftovers[1], leftovers[3]):
            if leftover.exists():
                raise PublishFailed(f"{leftover} left behind: the release was not checkpointed")
        crash_point("publish:before-swap")
        # Everything is built and verified: restricted first, then main, then the exports link. The old
        # AML catalog is kept aside until the main swap succeeded, to be put back if it does not.
        if with_aml:
            if restricted_db.exists():
                _remove(restricted_backup)
                os.link(restricted_db, restricted_backup)
            os.replace(restricted_catalog_tmp, restricted_db)
            aml_swapped = True
        os.replace(catalog_tmp, published_db)
    except Exception as exc:
        if aml_swapped:
            if restricted_backup.exists():
                os.replace(restricted_backup, restricted_db)
            else:
                restricted_db.unlink(missing_ok=True)
        _remove(*leftovers, tmp_folder, restricted_tmp_folder, *moved, restricted_backup)
        if isinstance(exc, PublishFailed | PublishRefused):
            raise
        raise PublishFailed(f"publication of {as_of_month:%Y-%m} failed, {published_db.name} unchanged: "
                            f"{exc}") from exc
    _remove(restricted_backup)
    link = _swap_exports_link(settings, release_id)
    remove_old_releases(releases_dir, keep)
    if with_aml:
        remove_old_releases(restricted_releases, keep)
        _restrict_tree_modes(restricted_releases)
    log.info("published release %s for %s (months %s%s): %s", release_id, f"{as_of_month:%Y-%m}",
             _month_text(months), f"; restated {_month_text(restated)}" if restated else "",
             ", ".join(f"{t} {n}" for t, n in counts.items()))
    return Release(release_id=release_id, as_of_month=as_of_month, published_at=published_at,
                   gate_run_id=gate_run_id, rules_version=meta[0], rule_set=meta[1], rule_set_version=meta[2],
                   row_counts=counts, published_db=published_db, months_published=months,
                   restated_months=restated, release_dir=releases_dir / release_id,
                   exports={t: link / t for t in PUBLISHED_TABLES},
                   restricted_db=restricted_db if with_aml else None, restricted_row_counts=aml_counts)
