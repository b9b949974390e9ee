"""`tiering status`: what is loaded, what failed or waits, and the last gate run and release.

Read-only everywhere: the published database is opened read-only, the working database too, and only
while no run holds the warehouse (its batch states change under a run, so status says they are unknown
rather than guess from the landing folder).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.months import bank_time, month_runs
from flows.settings import Settings
from flows.stages import raw_zone
from flows.stages.extracts import discover_batches
from flows.stages.month_plan import built_and_stale
from flows.warehouse_lock import is_locked, read_owner

UNKNOWN_UNTIL_DONE = ("batch states unknown until it finishes (loaded, failed and pending batches, built months "
                      "and the last gate are shown after the run)")
BUSY = f"working database busy: another process has it open; {UNKNOWN_UNTIL_DONE}"


@dataclass
class Status:
    """The warehouse at a glance; every part is None when its database does not exist yet."""

    warehouse: Path
    loaded: dict | None = None  # dates, first, last, records, quarantined
    failed_batches: list[dict] = field(default_factory=list)  # batch_date, table_name, status, message
    pending: list[dt.date] | None = None  # landing folders not loaded yet (only with a landing folder)
    built_months: list[dt.date] = field(default_factory=list)
    months_to_build: list[dt.date] = field(default_factory=list)  # never built, or restated by new batches
    raw_bytes: int | None = None
    last_gate: dict | None = None
    last_release: dict | None = None
    running: str | None = None  # who holds the warehouse lock and since when, if anyone
    notes: list[str] = field(default_factory=list)


def collect_status(settings: Settings, landing: Path | None = None) -> Status:
    """Gather the status of one warehouse (and, given `landing`, the batches waiting there)."""
    status = Status(settings.warehouse)
    loaded_dates: set[dt.date] | None = set()
    if is_locked(settings.warehouse):
        owner = read_owner(settings.warehouse)
        status.running = (f"`{owner.command}`, pid {owner.pid} on {owner.host}, since {owner.started_at}" if owner
                          else "another process")
        loaded_dates = None  # the run is loading: what it holds now says nothing about what is pending
    elif settings.working_db.exists():
        try:
            with duckdb.connect(str(settings.working_db), read_only=True) as con:
                loaded_dates = _read_working(con, status)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            status.notes.append(BUSY)
            loaded_dates = None  # unknown: the batches waiting in landing cannot be told apart
    else:
        status.notes.append(f"no working database yet at {settings.working_db}: nothing ingested")
    if settings.raw_dir.is_dir():
        status.raw_bytes = sum(raw_zone.stored_bytes(settings.warehouse).values())
    # A landing folder is pending only against known loaded dates: unknown ones must not read as "all pending".
    if landing is not None and loaded_dates is not None:
        status.pending = [d for d in discover_batches(landing) if d not in loaded_dates]
    if settings.published_db.exists():
        with duckdb.connect(str(settings.published_db), read_only=True) as con:
            columns = {c for (c,) in con.execute("select column_name from information_schema.columns "
                                                 "where table_name = 'release_log'").fetchall()}
            # Catalogs published before rollbacks existed have no action column: every row is a publication.
            action = ("action, rolled_back_from" if "action" in columns
                      else "'publish' as action, null as rolled_back_from")
            row = con.execute(f"select release_id, as_of_month, published_at, rules_version, rule_set_version, "
                              f"{action} from release_log order by published_at desc limit 1").fetchone()
        if row:
            status.last_release = dict(zip(("release_id", "as_of_month", "published_at", "rules_version",
                                            "rule_set_version", "action", "rolled_back_from"), row, strict=True))
    else:
        status.notes.append("nothing published yet")
    return status


def _tables(con) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables").fetchall()}


def _read_working(con, status: Status) -> set[dt.date]:
    tables = _tables(con)
    if "audit.batch_log" not in tables:
        return set()
    # A date counts as loaded when all of its tables are; any other state is shown with its message.
    loaded = con.execute(
        "select batch_date, sum(records), sum(quarantined) from audit.batch_log group by batch_date "
        "having bool_and(status = 'LOADED') order by batch_date").fetchall()
    if loaded:
        status.loaded = {"dates": len(loaded), "first": loaded[0][0], "last": loaded[-1][0],
                         "records": sum(r[1] for r in loaded), "quarantined": sum(r[2] for r in loaded)}
    status.failed_batches = [
        dict(zip(("batch_date", "table_name", "status", "message"), row, strict=True))
        for row in con.execute("select batch_date, table_name, status, message from audit.batch_log "
                               "where status <> 'LOADED' order by batch_date, table_name").fetchall()]
    if "audit.month_build" in tables:
        status.built_months, status.months_to_build = built_and_stale(con)
    if "gate.run" in tables:
        row = con.execute("select gate_run_id, as_of_month, finished_at, success, blocking_failures "
                          "from gate.run order by started_at desc limit 1").fetchone()
        if row:
            status.last_gate = dict(zip(("gate_run_id", "as_of_month", "finished_at", "success",
                                         "blocking_failures"), row, strict=True))
    return {r[0] for r in loaded}


def render_status(status: Status) -> list[str]:
    """Plain lines for the terminal."""
    lines = [f"warehouse {status.warehouse}"]
    if status.running:
        lines.append(f"running now: a run holds the working database ({status.running}): {UNKNOWN_UNTIL_DONE}")
    if status.loaded:
        lo = status.loaded
        lines.append(f"loaded: {lo['dates']} batch dates, {lo['first']} … {lo['last']}, {lo['records']} records, "
                     f"{lo['quarantined']} quarantined")
    for batch in status.failed_batches:
        lines.append(f"FAILED {batch['batch_date']} {batch['table_name']} {batch['status']}: {batch['message']}")
    if status.raw_bytes is not None:
        lines.append(f"raw zone: {status.raw_bytes / 1e9:.2f} GB of Parquet")
    if status.built_months:
        b = status.built_months
        lines.append(f"built: {len(b)} month(s), {b[0]:%Y-%m} … {b[-1]:%Y-%m}")
    if status.months_to_build:
        lines.append("to build at the next run: " + month_runs(status.months_to_build)
                     + " (not built yet, or batches loaded since their build: the run restates them)")
    if status.pending is not None:
        shown = ", ".join(f"{d:%Y%m%d}" for d in status.pending[:10])
        more = f" (+{len(status.pending) - 10} more)" if len(status.pending) > 10 else ""
        lines.append(f"pending in landing: {len(status.pending)}" + (f" — {shown}{more}" if shown else ""))
    if status.last_gate:
        g = status.last_gate
        verdict = "passed" if g["success"] else f"FAILED ({g['blocking_failures']} blocking)"
        lines.append(f"last gate: {g['as_of_month']:%Y-%m} {verdict} at {bank_time(g['finished_at'])} "
                     f"({g['gate_run_id']})")
    if status.last_release:
        r = status.last_release
        at = bank_time(r["published_at"])
        how = (f"made current again by a rollback at {at}, replacing {r['rolled_back_from']}"
               if r["action"] == "rollback" else f"published {at}")
        lines.append(f"last release: {r['as_of_month']:%Y-%m} {how} "
                     f"({r['release_id']}, rules {r['rules_version']}, {r['rule_set_version']})")
    lines += [f"note: {n}" for n in status.notes]
    return lines
