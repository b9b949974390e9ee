"""The raw zone: accepted batches as Parquet, one file per table and batch date, committed by the audit row.

Layout (both DuckDB and Spark read it; docs/ARCHITECTURE.md):

    <warehouse>/raw/cbs_<table>/batch_date=<YYYY-MM-DD>/load-<load_id>/part.parquet

(one folder per load: Spark registers a committed batch as a partition whose location is that folder, so a
folder never holds a file that is not committed; warehouses of issue 10–12 have `…/part-<load_id>.parquet`,
which DuckDB still reads.)

- Daily facts (CBS_BALANCE, CBS_TXN, CBS_FX_RATE) are stored as loaded: every accepted record.
- Daily full snapshots (CBS_CUSTOMER, CBS_ACCOUNT, CBS_LOAN) are stored as change history: a batch's file
  holds only the rows that differ from the snapshot of the previous loaded date (`is_deleted = false`,
  the new version) and a tombstone for every key that disappeared (`is_deleted = true`, the last known
  values). A version is valid from its batch date until the next change of its key (SCD2), so the state on
  any date is exactly the full snapshot that was delivered for it (DECISIONLOG D1, D2, R1).

Commit protocol: the files of a batch are written first under a fresh load id; the batch becomes visible
only when its `audit.batch_log` rows (which name the files) commit, in the same DuckDB transaction that
re-creates the `raw.*` views over the committed files. A crash before that commit leaves orphan files that
no view names (removed by `remove_orphans`); files a replacement superseded are deleted after the commit.

Snapshot diffs chain from day to day, so loading a date before an already loaded one (a late batch, or a
`--force` replacement) also rewrites the change file of the next loaded date: its delivered snapshot is
reconstructed from the change history and diffed against the new one. The ingest-private `raw_state.*`
tables hold the snapshot of the latest loaded date, so the everyday case (a new latest date) diffs against
one table instead of the history.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.settings import RAW_DIR
from flows.sql_literals import sql_text

FACT_TABLES = ("BALANCE", "TXN", "FX_RATE")
SNAPSHOT_TABLES = ("CUSTOMER", "ACCOUNT", "LOAN")
# Parquet settings of every raw file: zstd keeps a 1 M-customer day small; row groups of DuckDB's vector
# multiple let both engines split a file for parallel scans.
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880"


class RawZoneError(RuntimeError):
    """The raw zone cannot be used as found (e.g. a warehouse of the old, table-based layout)."""


def table_name(table: str) -> str:
    """`CUSTOMER` → `cbs_customer`: the folder and view name of a table."""
    return f"cbs_{table.lower()}"


def raw_root(warehouse: Path) -> Path:
    return Path(warehouse) / RAW_DIR


def partition_dir(warehouse: Path, table: str, batch_date: dt.date) -> Path:
    return raw_root(warehouse) / table_name(table) / f"batch_date={batch_date.isoformat()}"


def raw_file_path(warehouse: Path, table: str, batch_date: dt.date, load_id: str) -> Path:
    """Where one load writes one table's file of one batch date (a folder of its own, see the layout)."""
    return partition_dir(warehouse, table, batch_date) / f"load-{load_id}" / "part.parquet"


def _unlink_with_folder(path: Path) -> None:
    """Delete a raw file, and its load folder when that is left empty."""
    path.unlink(missing_ok=True)
    if path.parent.name.startswith("load-"):
        try:
            path.parent.rmdir()
        except OSError:
            pass


def new_load_id() -> str:
    """A fresh id naming one load's files (never reused, so a new file never overwrites a committed one)."""
    return uuid.uuid4().hex


# ------------------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class TableShape:
    """Column names and SQL types of one table's records, and its key (for snapshots)."""

    table: str
    columns: tuple[tuple[str, str], ...]
    key: str

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def typed_nulls(self) -> str:
        return ", ".join(f"CAST(NULL AS {sql_type}) AS {name}" for name, sql_type in self.columns)


def shapes() -> dict[str, TableShape]:
    """Shapes of the six tables, from the extract spec in flows.stages.extracts."""
    from flows.stages.extracts import KEYS, SPECS

    return {t: TableShape(t, tuple((f.name, f.sql_type) for f in SPECS[t]), KEYS[t]) for t in SPECS}


def ensure_raw_schema(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    """Create the ingest-private `raw_state` tables and the `raw.*` views (idempotent)."""
    found = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'").fetchall()
    if found:
        raise RawZoneError(
            f"{warehouse} holds raw tables of the old layout ({', '.join(r[0] for r in found)}): "
            "this version keeps raw batches as Parquet; ingest the landing folder into a new warehouse folder")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw_state")
    for table in SNAPSHOT_TABLES:
        shape = shapes()[table]
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type in shape.columns)
        # line_text: the record as delivered, so an identical line the next day skips the field checks.
        con.execute(f"CREATE TABLE IF NOT EXISTS raw_state.{table_name(table)} ({columns}, line_text VARCHAR)")
    refresh_views(con, warehouse)


def committed_batches(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[dt.date, str]]:
    """(batch date, raw file) of every committed batch of one table, in date order: what readers may see."""
    return con.execute(
        "SELECT batch_date, raw_file FROM audit.batch_log WHERE table_name = ? AND status = 'LOADED' "
        "AND raw_file IS NOT NULL ORDER BY batch_date", [f"CBS_{table}"]).fetchall()


def _read(warehouse: Path, files: list[str], shape: TableShape, snapshot: bool) -> str:
    """SQL reading the committed files of one table, batch_date first (typed, empty when no file)."""
    names = ", ".join(shape.names)
    if not files:
        deleted = "CAST(NULL AS BOOLEAN) AS is_deleted, " if snapshot else ""
        return f"SELECT CAST(NULL AS DATE) AS batch_date, {deleted}{shape.typed_nulls()} WHERE false"
    paths = ", ".join(sql_text(str(Path(warehouse) / f)) for f in files)
    deleted = "is_deleted, " if snapshot else ""
    return (f"SELECT batch_date, {deleted}{names} FROM read_parquet([{paths}], hive_partitioning = true, "
            f"hive_types = {{'batch_date': DATE}})")


def refresh_views(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    """(Re-)create the `raw.*` views over the committed files named in audit.batch_log.

    Facts: `raw.cbs_balance`, `raw.cbs_txn`, `raw.cbs_fx_rate` (batch_date + the spec's fields).
    Snapshots: `raw.cbs_<t>_changes` (the change history as stored) and `raw.cbs_<t>_versions` (SCD2:
    one row per version with `valid_from`, `valid_to` — exclusive, NULL while current).
    """
    for table, shape in shapes().items():
        name = table_name(table)
        files = [raw_file for _, raw_file in committed_batches(con, table)]
        if table in FACT_TABLES:
            con.execute(f"CREATE OR REPLACE VIEW raw.{name} AS {_read(warehouse, files, shape, False)}")
            continue
        con.execute(f"CREATE OR REPLACE VIEW raw.{name}_changes AS {_read(warehouse, files, shape, True)}")
        con.execute(versions_view_sql(name, shape))


def versions_view_sql(name: str, shape: TableShape) -> str:
    """`raw.<name>_versions` over `raw.<name>_changes`: each version's validity [valid_from, valid_to), deletions
    dropped. Plain SQL both engines run (flows/stages/spark_inputs.py sends it to Spark)."""
    return f"""
        CREATE OR REPLACE VIEW raw.{name}_versions AS
        SELECT batch_date AS valid_from, valid_to, {', '.join(shape.names)}
        FROM (
            SELECT *, lead(batch_date) OVER (PARTITION BY {shape.key} ORDER BY batch_date) AS valid_to
            FROM raw.{name}_changes
        ) AS changes
        WHERE NOT is_deleted"""


def state_at_sql(table: str, day: dt.date) -> str:
    """SQL of the snapshot delivered for `day` (or the last loaded day before it), from the change history."""
    shape = shapes()[table]
    return f"""
        SELECT {', '.join(shape.names)} FROM raw.{table_name(table)}_changes
        WHERE batch_date <= DATE '{day.isoformat()}'
        QUALIFY row_number() OVER (PARTITION BY {shape.key} ORDER BY batch_date DESC) = 1 AND NOT is_deleted"""


# ------------------------------------------------------------------------------------------ writing a batch


@dataclass
class StagedBatch:
    """Files written for one batch before its commit, and what the commit must record and change."""

    batch_date: dt.date
    load_id: str
    # table → (raw_file relative to the warehouse, rows stored)
    entries: dict[str, tuple[str, int]] = field(default_factory=dict)
    # (next loaded date, table, new raw_file, rows) whose change file the load rewrote
    rewritten: list[tuple[dt.date, str, str, int]] = field(default_factory=list)
    # snapshot table → how its raw_state follows this batch: "changes" (apply the change file: a new
    # latest date) or "replace" (the latest date itself was replaced: the whole new snapshot)
    new_state: dict[str, str] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    superseded: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        """Remove the files of a load that did not commit."""
        for path in self.written:
            _unlink_with_folder(path)

    def remove_superseded(self) -> None:
        """After the commit: delete the files the load replaced (no view names them any more)."""
        for path in self.superseded:
            _unlink_with_folder(path)


def _copy(con: duckdb.DuckDBPyConnection, select_sql: str, target: Path) -> int:
    """Write `select_sql` to one Parquet file; return the rows written (COPY reports them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return int(con.execute(f"COPY ({select_sql}) TO {sql_text(str(target))} ({PARQUET_OPTIONS})").fetchone()[0])


def _diff_sql(shape: TableShape, current: str, previous: str, skip_reused: bool = False) -> str:
    """Change rows turning snapshot `previous` into `current` (both relation names), in key order.

    `skip_reused`: rows of `current` flagged is_reused are known equal to `previous` and not compared.
    """
    key, names = shape.key, shape.names
    differs = " OR ".join(f"c.{n} IS DISTINCT FROM p.{n}" for n in names if n != key)
    cols = ", ".join(f"c.{n}" for n in names)
    pcols = ", ".join(f"p.{n}" for n in names)
    compared = f"(SELECT * FROM {current} WHERE NOT is_reused)" if skip_reused else current
    return f"""
        SELECT {cols}, false AS is_deleted FROM {compared} AS c LEFT JOIN {previous} AS p ON p.{key} = c.{key}
        WHERE p.{key} IS NULL OR {differs}
        UNION ALL
        SELECT {pcols}, true AS is_deleted FROM {previous} AS p ANTI JOIN {current} AS c ON c.{key} = p.{key}
        ORDER BY {key}"""


def _loaded_dates(con: duckdb.DuckDBPyConnection, table: str) -> list[dt.date]:
    return [r[0] for r in con.execute(
        "SELECT batch_date FROM audit.batch_log WHERE table_name = ? AND status = 'LOADED' ORDER BY 1",
        [f"CBS_{table}"]).fetchall()]


def _raw_file_of(con: duckdb.DuckDBPyConnection, table: str, day: dt.date) -> str | None:
    row = con.execute("SELECT raw_file FROM audit.batch_log WHERE table_name = ? AND batch_date = ? "
                      "AND status = 'LOADED'", [f"CBS_{table}", day]).fetchone()
    return row[0] if row else None


def stage_batch(con: duckdb.DuckDBPyConnection, warehouse: Path, batch_date: dt.date,
                accepted: dict[str, str]) -> StagedBatch:
    """Write the Parquet files of one batch (before its commit; see `apply_staged`).

    `accepted` maps each table to SQL selecting its accepted records: the spec's columns, typed, in the
    order rows should be stored (file order, which keeps compression and scans good).
    """
    warehouse = Path(warehouse)
    staged = StagedBatch(batch_date, new_load_id())
    all_shapes = shapes()
    try:
        for table, select_sql in accepted.items():
            shape = all_shapes[table]
            target = raw_file_path(warehouse, table, batch_date, staged.load_id)
            staged.written.append(target)
            previous_file = _raw_file_of(con, table, batch_date)
            if previous_file:
                staged.superseded.append(warehouse / previous_file)
            if table in FACT_TABLES:
                rows = _copy(con, select_sql, target)
            else:
                rows = _stage_snapshot(con, warehouse, staged, shape, select_sql, target)
            staged.entries[table] = (str(target.relative_to(warehouse)), rows)
    except BaseException:
        staged.discard()
        raise
    return staged


def _stage_snapshot(con: duckdb.DuckDBPyConnection, warehouse: Path, staged: StagedBatch, shape: TableShape,
                    select_sql: str, target: Path) -> int:
    """Write the change file of one snapshot table, and re-diff the next loaded date if there is one."""
    table, name, day = shape.table, table_name(shape.table), staged.batch_date
    loaded = _loaded_dates(con, table)
    earlier = [d for d in loaded if d < day]
    later = [d for d in loaded if d > day]
    latest = loaded[-1] if loaded else None
    new = snapshot_temp(table)
    found = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM ({select_sql})").fetchall()}
    text = "line_text" if "line_text" in found else "CAST(NULL AS VARCHAR) AS line_text"
    reused = "is_reused" if "is_reused" in found else "false AS is_reused"
    # A view over the caller's (already materialised) rows: the big snapshot is not copied again.
    con.execute(f"CREATE OR REPLACE TEMP VIEW {new} AS "
                f"SELECT {', '.join(shape.names)}, {text}, {reused} FROM ({select_sql})")
    if latest is not None and day > latest:
        # The everyday case: the state table is the previous snapshot, and rows whose line was identical
        # to it (is_reused) cannot have changed; only the others are compared field by field.
        diff = _diff_sql(shape, new, f"raw_state.{name}", skip_reused=True)
    else:
        if earlier:
            con.execute(f"CREATE OR REPLACE TEMP TABLE snapshot_previous AS {state_at_sql(table, earlier[-1])}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE snapshot_previous AS SELECT {shape.typed_nulls()} "
                        "WHERE false")
        diff = _diff_sql(shape, new, "snapshot_previous")
    rows = _copy(con, diff, target)
    if later:
        # The next loaded date's file was diffed against the old snapshot of this date: re-diff it.
        following = later[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE snapshot_following AS {state_at_sql(table, following)}")
        rewritten = raw_file_path(warehouse, table, following, staged.load_id)
        staged.written.append(rewritten)
        old = _raw_file_of(con, table, following)
        if old:
            staged.superseded.append(warehouse / old)
        count = _copy(con, _diff_sql(shape, "snapshot_following", new), rewritten)
        staged.rewritten.append((following, table, str(rewritten.relative_to(warehouse)), count))
    if latest is None or day > latest:
        staged.new_state[table] = "changes"
    elif day == latest:
        staged.new_state[table] = "replace"
    return rows


def snapshot_temp(table: str) -> str:
    """The temp table holding a snapshot table's accepted rows of the batch being loaded."""
    return f"snapshot_new_{table.lower()}"


def apply_staged(con: duckdb.DuckDBPyConnection, warehouse: Path, staged: StagedBatch) -> None:
    """Inside the caller's transaction, after its batch_log rows for the batch: point the log at the re-diffed
    files, replace the state tables, and re-create the views (the commit makes it all visible at once)."""
    for following, table, raw_file, rows in staged.rewritten:
        con.execute("UPDATE audit.batch_log SET raw_file = ?, stored_rows = ? "
                    "WHERE batch_date = ? AND table_name = ? AND status = 'LOADED'",
                    [raw_file, rows, following, f"CBS_{table}"])
    for table, mode in staged.new_state.items():
        name, key = table_name(table), shapes()[table].key
        columns = ", ".join([*shapes()[table].names, "line_text"])
        if mode == "replace":
            con.execute(f"DELETE FROM raw_state.{name}")
            con.execute(f"INSERT INTO raw_state.{name} SELECT {columns} FROM {snapshot_temp(table)}")
            continue
        # Only the keys that changed: a 1 M-customer snapshot changes by a few hundred rows a day.
        changes = f"read_parquet({sql_text(str(Path(warehouse) / staged.entries[table][0]))}, hive_partitioning = false)"
        con.execute(f"DELETE FROM raw_state.{name} WHERE {key} IN (SELECT {key} FROM {changes})")
        con.execute(f"INSERT INTO raw_state.{name} SELECT {columns} FROM {snapshot_temp(table)} AS n "
                    f"SEMI JOIN (SELECT {key} FROM {changes} WHERE NOT is_deleted) AS c ON c.{key} = n.{key}")
    refresh_views(con, warehouse)


def drop_temps(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp tables `stage_batch` made."""
    con.execute("; ".join(f"DROP VIEW IF EXISTS temp.{snapshot_temp(t)}" for t in SNAPSHOT_TABLES))
    con.execute("; ".join(f"DROP TABLE IF EXISTS temp.{n}" for n in ("snapshot_previous", "snapshot_following")))


def remove_orphans(con: duckdb.DuckDBPyConnection, warehouse: Path) -> list[Path]:
    """Delete raw files no committed batch names (left by a load that crashed before its commit)."""
    root = raw_root(warehouse)
    if not root.is_dir():
        return []
    named = {r[0] for r in con.execute("SELECT raw_file FROM audit.batch_log WHERE raw_file IS NOT NULL").fetchall()}
    removed = []
    for pattern in ("cbs_*/batch_date=*/*.parquet", "cbs_*/batch_date=*/load-*/*.parquet"):
        for path in root.glob(pattern):
            if str(path.relative_to(warehouse)) not in named:
                _unlink_with_folder(path)
                removed.append(path)
    return removed


def stored_bytes(warehouse: Path) -> dict[str, int]:
    """Bytes of the raw zone per table folder (for status and benchmarks)."""
    root = raw_root(warehouse)
    return {d.name: sum(p.stat().st_size for p in d.rglob("*.parquet")) for d in sorted(root.glob("cbs_*"))}
