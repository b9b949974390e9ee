"""Commit hand-made rows to a warehouse's raw zone as if ingestion had accepted them (for dbt and gate tests).

The rows go through the same commit path as a real batch (flows.stages.raw_zone: Parquet files, change history
for the snapshot tables, audit.batch_log rows as the commit point), without extract files or validation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb

from flows.stages import raw_zone
from flows.stages.extracts import SPECS, TABLES, ensure_schema


def load_rows(working_db: Path, day: dt.date, rows: Mapping[str, Sequence[Mapping[str, object]]]) -> None:
    """Commit one batch date: `rows` maps each table (CUSTOMER, …; missing = no rows) to dicts by column."""
    working_db = Path(working_db).resolve()
    warehouse = working_db.parent
    con = duckdb.connect(str(working_db))
    try:
        ensure_schema(con, warehouse)
        accepted = {}
        for table in TABLES:
            columns = ", ".join(f"{f.name} {f.sql_type}" for f in SPECS[table])
            con.execute(f"CREATE OR REPLACE TEMP TABLE accepted_{table.lower()} ({columns})")
            for row in rows.get(table, ()):
                names = list(row)
                con.execute(f"INSERT INTO accepted_{table.lower()} ({', '.join(names)}) "
                            f"VALUES ({', '.join(['?'] * len(names))})", [row[n] for n in names])
            accepted[table] = f"SELECT * FROM accepted_{table.lower()}"
        staged = raw_zone.stage_batch(con, warehouse, day, accepted)
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM audit.batch_log WHERE batch_date = ?", [day])
        for table in TABLES:
            count = con.execute(f"SELECT count(*) FROM accepted_{table.lower()}").fetchone()[0]
            con.execute(
                "INSERT INTO audit.batch_log (batch_date, table_name, file_name, records, loaded, quarantined, "
                "status, started_at, finished_at, load_id, raw_file, stored_rows) "
                "VALUES (?, ?, ?, ?, ?, 0, 'LOADED', now(), now(), ?, ?, ?)",
                [day, f"CBS_{table}", f"CBS_{table}_{day:%Y%m%d}.dat", count, count, staged.load_id,
                 *staged.entries[table]])
        raw_zone.apply_staged(con, warehouse, staged)
        con.execute("COMMIT")
        staged.remove_superseded()
        raw_zone.drop_temps(con)
    finally:
        con.close()


def set_batch_status(working_db: Path, day: dt.date, table: str, status: str) -> None:
    """Mark one table's batch_log row of a date (e.g. REJECTED) and re-create the raw views accordingly."""
    working_db = Path(working_db).resolve()
    con = duckdb.connect(str(working_db))
    try:
        con.execute("UPDATE audit.batch_log SET status = ? WHERE batch_date = ? AND table_name = ?",
                    [status, day, table])
        raw_zone.refresh_views(con, working_db.parent)
    finally:
        con.close()
