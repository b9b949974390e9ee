"""Rollback of the published release: make a kept earlier release current again (`tiering rollback`).

A release's files are immutable and the folders of the current and the previous release are kept
(flows/stages/publishing.py), so rolling back writes no Parquet: it builds a new catalog over the target
release's files and swaps it in the way a publication does.

- Refused, with one line and nothing changed, when the target is not in `release_log`, is already current,
  its folder (or, if it had an AML release, its restricted folder) was removed, or it was built with
  another rules version than the rules file the pipeline applies now (unless `force`).
- `published.duckdb.tmp`: one view per table over the target's files, `release_months` as it was when the
  target was current (each month's writer derived from `release_log`), `release_log` = every row so far
  plus an audit row: the target's release_id and figures, `action` 'rollback', `rolled_back_from` the
  release it replaces, `published_at` the time of the rollback. The target is then the latest row: the
  current release for every reader (`tiering status`, the gate's drift check, the next publication).
- Verified (row counts through the views = the target's release_log counts = its files' Parquet row
  counts; no personal data, no confidential table), then `restricted/aml.duckdb` (same steps for the AML
  release), `published.duckdb` and the `exports` link are replaced in that order. Each old catalog is kept
  aside (hard link) until the last swap succeeded, so a failure at any step puts everything back byte for
  byte.
- Nothing is deleted: the release rolled back from keeps its folder, so `rollback --to` it undoes the
  rollback; the next publication keeps the target (then previous) and drops the older ones as usual.

The working database is not touched: the next `tiering run` plans from what it built (see the README).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from flows.months import SHANGHAI, bank_time
from flows.settings import EXPORTS_LINK, PUBLISHED_DB, RELEASES_DIR, Settings
from flows.sql_literals import sql_text
from flows.stages.publishing import (
    ACTION_PUBLISH,
    ACTION_ROLLBACK,
    AML_RELEASE_LOG_DDL,
    AML_TABLES,
    DATA_FILE,
    PUBLISHED_TABLES,
    RELEASE_LOG_DDL,
    RESTRICTED_FILE_MODE,
    PublishFailed,
    PublishRefused,
    _build_catalog,
    _check_catalog,
    _prepare_restricted_dir,
    _remove,
    _restrict_tree_modes,
    _Written,
    exports_target,
)

log = logging.getLogger(__name__)


class RollbackRefused(PublishRefused):
    """The rollback is not allowed (unknown release, already current, files removed, other rules version);
    nothing was changed."""


class RollbackFailed(PublishFailed):
    """Building, verifying or swapping in the rolled-back catalog failed; everything was left as it was."""


@dataclass(frozen=True)
class RollbackResult:
    """The release made current again, what it replaced, and where consumers see it."""

    release_id: str
    rolled_back_from: str
    as_of_month: date
    rules_version: str
    active_rules_version: str
    # True when the target's rules version differs from the active one (allowed by force=True).
    forced: bool
    rolled_back_at: datetime
    row_counts: dict[str, int]
    published_db: Path
    release_dir: Path
    exports: Path
    # The restricted AML catalog when its release was rolled back too (None: left as it was).
    restricted_db: Path | None = None
    restricted_row_counts: dict[str, int] = field(default_factory=dict)
    restricted_note: str | None = None

    @property
    def summary(self) -> str:
        """One line for a human: what is current now, what it replaced, rows, exports, AML."""
        rules = f"rules {self.rules_version}"
        if self.forced:
            rules += f", forced: the active rules are {self.active_rules_version}"
        counts = ", ".join(f"{t} {n}" for t, n in self.row_counts.items())
        aml = (f"; restricted AML release rolled back too ({self.restricted_db})" if self.restricted_db
               else f"; {self.restricted_note}" if self.restricted_note else "")
        return (f"rolled back to release {self.release_id} ({self.as_of_month:%Y-%m}, {rules}) from release "
                f"{self.rolled_back_from} at {bank_time(self.rolled_back_at)}: {counts} rows; "
                f"{EXPORTS_LINK} -> {RELEASES_DIR}/{self.release_id}{aml}")


# ------------------------------------------------------------------------------------------ reading the catalog


@dataclass
class _Catalog:
    """A catalog's release_log (oldest first, `action` filled in) and release_months."""

    log: list[dict]
    manifest: list[dict]

    @property
    def current(self) -> dict | None:
        return self.log[-1] if self.log else None

    def publication(self, release_id: str) -> dict | None:
        return next((r for r in self.log if r["release_id"] == release_id and r["action"] == ACTION_PUBLISH),
                    None)


def _records(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _read_catalog(catalog: Path, what: str) -> _Catalog:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
        if not {"release_log", "release_months"} <= tables:
            raise RollbackRefused(f"{catalog} is not a catalog of month-partitioned releases: {what} cannot be "
                                  "rolled back")
        log_rows = _records(con, "SELECT * FROM main.release_log ORDER BY published_at")
        manifest = _records(con, "SELECT * FROM main.release_months")
    finally:
        con.close()
    for row in log_rows:  # a catalog published before release_log had `action` holds publications only
        row["action"] = row.get("action") or ACTION_PUBLISH
        row.setdefault("rolled_back_from", None)
        row.setdefault("month_gate_runs", None)
    return _Catalog(log_rows, manifest)


def _months(text: str | None) -> set[date]:
    return {date.fromisoformat(m) for m in (text or "").split(",") if m}


def _writer(catalog: _Catalog, release_id: str, month: date) -> dict | None:
    """The release_log publication that wrote `month` of `release_id`'s files: the release itself if it
    published the month, else the writer in the release that was current when it was published (the
    latest release_log row before its publication, a rollback row naming the release it made current)."""
    while True:
        row = catalog.publication(release_id)
        if row is None:
            return None
        if month in _months(row["months_published"]):
            return row
        before = [r for r in catalog.log if r["published_at"] < row["published_at"]]
        if not before:
            return None
        release_id = before[-1]["release_id"]


def _logged_gate_runs(text: str | None) -> dict[date, str]:
    """release_log.month_gate_runs: `<YYYY-MM-DD>=<gate run>,…`."""
    pairs = (item.split("=", 1) for item in (text or "").split(",") if "=" in item)
    return {date.fromisoformat(month): gate for month, gate in pairs}


def _gate_runs(*catalogs: _Catalog) -> dict[tuple[str, date], str]:
    """(writer release, month) -> gate run, from the months the current catalogs still list."""
    found: dict[tuple[str, date], str] = {}
    for catalog in catalogs:
        for row in catalog.manifest:
            if row.get("gate_run_id"):
                found.setdefault((row["release_id"], row["as_of_month"]), row["gate_run_id"])
    return found


# ------------------------------------------------------------------------------------------ the target release


def _release_files(folder: Path, tables: tuple[str, ...], release_id: str) -> dict[str, dict[date, Path]]:
    """The target release's files per table and month, as publication names them."""
    files: dict[str, dict[date, Path]] = {}
    for table in tables:
        for path in sorted((folder / table).glob(f"as_of_month=*/{DATA_FILE}")):
            month = date.fromisoformat(path.parent.name.split("=", 1)[1])
            files.setdefault(table, {})[month] = path
        if not files.get(table):
            raise RollbackRefused(f"release {release_id}'s folder {folder} has no {table} files: "
                                  "cannot roll back to it")
    return files


def _file_rows(files: dict[str, dict[date, Path]], duckdb_config: dict[str, str] | None) -> dict[Path, int]:
    """Rows of every file, from the Parquet footers (no data is read)."""
    paths = [p for by_month in files.values() for p in by_month.values()]
    con = duckdb.connect(config=dict(duckdb_config or {}))
    try:
        rows = con.execute(f"SELECT file_name, num_rows FROM parquet_file_metadata("
                           f"[{', '.join(sql_text(str(p)) for p in paths)}])").fetchall()
    finally:
        con.close()
    return {Path(name): int(count) for name, count in rows}


def _manifest(catalog: _Catalog, gate_runs: dict[tuple[str, date], str], release_id: str,
              files: dict[str, dict[date, Path]], rows: dict[Path, int], warehouse: Path) -> list[tuple]:
    """release_months as it was when `release_id` was current: each month's writer, its gate run (as a
    current catalog names it, else as the writer's release_log row does: `month_gate_runs`, or for a row
    older than that column its `gate_run_id` if the month is the one it was named after, else NULL), its
    time, the file's rows and path."""
    manifest = []
    for table, by_month in files.items():
        for month, path in sorted(by_month.items()):
            writer = _writer(catalog, release_id, month)
            if writer is None:
                raise RollbackFailed(f"release_log does not say which release wrote {table} {month:%Y-%m} of "
                                     f"release {release_id}: cannot roll back to it")
            gate = (gate_runs.get((writer["release_id"], month))
                    or _logged_gate_runs(writer.get("month_gate_runs")).get(month)
                    or (writer["gate_run_id"] if writer["as_of_month"] == month else None))
            manifest.append((table, month, writer["release_id"], gate, writer["published_at"], rows[path],
                             str(path.relative_to(warehouse))))
    return manifest


def _expected_counts(target: dict, tables: tuple[str, ...], files: dict[str, dict[date, Path]],
                     rows: dict[Path, int], release_id: str, what: str) -> dict[str, int]:
    """The target's row counts per table, as its release_log row says; its files must hold as many."""
    expected = {}
    for table in tables:
        logged, in_files = target[f"{table}_rows"], sum(rows[p] for p in files[table].values())
        if logged != in_files:
            raise RollbackFailed(f"{what} {release_id}'s {table} files hold {in_files} rows, its release_log "
                                 f"row says {logged}: cannot roll back to it")
        expected[table] = int(logged)
    return expected


@dataclass
class _Plan:
    """One catalog to rebuild: where, from which catalog and files, with which audit row."""

    db: Path
    what: str
    tables: tuple[str, ...]
    log_ddl: str
    log_row: list
    files: dict[str, dict[date, Path]]
    manifest: list[tuple]
    expected: dict[str, int]
    folder: Path

    @property
    def tmp(self) -> Path:
        return self.db.with_name(self.db.name + ".tmp")

    @property
    def backup(self) -> Path:
        return self.db.with_name(self.db.name + ".previous")

    def leftovers(self) -> list[Path]:
        return [self.tmp, self.tmp.with_name(self.tmp.name + ".wal")]


def _build(plan: _Plan, release_id: str, at: datetime, confidential: tuple[str, ...] = ()) -> dict[str, int]:
    counts = _build_catalog(plan.tmp, _Written(plan.folder, plan.files), plan.tables, plan.log_ddl,
                            plan.log_row, plan.db, plan.manifest)
    if counts != plan.expected:
        raise RollbackFailed(f"{plan.what} views show {counts}, expected {plan.expected}")
    _check_catalog(plan.tmp, counts, release_id, plan.what, confidential=confidential, logged_at=at)
    con = duckdb.connect(str(plan.tmp), read_only=True)
    try:
        current = con.execute("SELECT release_id, action FROM main.release_log "
                              "ORDER BY published_at DESC LIMIT 2").fetchall()
    finally:
        con.close()
    if current[0] != (release_id, ACTION_ROLLBACK) or (len(current) > 1 and current[1][0] == release_id):
        raise RollbackFailed(f"{plan.what} release_log would not make {release_id} current: {current}")
    return counts


# ------------------------------------------------------------------------------------------ rollback


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def rollback_release(settings: Settings, release_id: str, active_rules_version: str, *,
                     force: bool = False) -> RollbackResult:
    """Make the kept release `release_id` current again in the warehouse's `published.duckdb`, the `exports`
    link and (when it had one) the restricted AML catalog: atomically, audited in release_log.

    Raises RollbackRefused (nothing changed: unknown release, already current, files removed, built with a
    rules version other than `active_rules_version` and not `force`) or RollbackFailed (nothing changed:
    the catalog could not be built, verified or swapped in).
    """
    warehouse, duckdb_config = settings.warehouse, settings.duckdb_config()
    published_db, restricted_db = settings.published_db, settings.restricted_db
    releases_dir, restricted_releases = settings.releases_dir, settings.restricted_releases_dir
    if not published_db.exists():
        raise RollbackRefused(f"nothing is published in {warehouse}: there is no release to roll back to")
    main = _read_catalog(published_db, "the release")
    current = main.current
    target = main.publication(release_id)
    if target is None or current is None:
        raise RollbackRefused(f"unknown release {release_id}: it is not in {PUBLISHED_DB}'s release_log")
    if current["release_id"] == release_id:
        raise RollbackRefused(f"release {release_id} ({target['as_of_month']:%Y-%m}) is already current: "
                              "nothing to roll back")
    folder = releases_dir / release_id
    if not folder.is_dir():
        raise RollbackRefused(f"release {release_id}'s files were removed (only the current and previous "
                              "releases are kept): cannot roll back to it")
    forced = target["rules_version"] != active_rules_version
    if forced and not force:
        raise RollbackRefused(f"release {release_id} was built with rules version {target['rules_version']}, "
                              f"the active rules file is version {active_rules_version}: use --force to roll "
                              "back to it anyway")

    # The restricted AML release goes back too when the target had one; a target without one leaves it.
    aml: _Catalog | None = None
    restricted_note = None
    try:
        aml = _read_catalog(restricted_db, "the AML release") if restricted_db.exists() else None
    except (duckdb.IOException, PermissionError) as exc:
        raise RollbackRefused(f"restricted AML catalog {restricted_db} is not readable by this user (AML staff "
                              f"only): a rollback moves both releases ({_first_line(exc)})") from exc
    if aml is not None:
        aml_target = aml.publication(release_id)
        if aml_target is None:
            restricted_note = (f"release {release_id} has no restricted AML release: {restricted_db} left at "
                               f"{aml.current['release_id'] if aml.current else 'none'}")
            aml = None
        elif aml.current is not None and aml.current["release_id"] == release_id:
            restricted_note = f"restricted AML release already at {release_id}"
            aml = None
        elif not (restricted_releases / release_id).is_dir():
            raise RollbackRefused(f"release {release_id}'s restricted AML files were removed (only the current "
                                  "and previous releases are kept): cannot roll back to it")

    at = datetime.now(SHANGHAI).replace(tzinfo=None)
    latest = max(r["published_at"] for c in (main, aml) if c for r in c.log)
    if at <= latest:  # the audit row must be the latest one: a clock set back does not reorder the log
        at = latest + timedelta(microseconds=1)
    gate_runs = _gate_runs(main, *([aml] if aml else []))
    plans: list[_Plan] = []
    try:
        files = _release_files(folder, PUBLISHED_TABLES, release_id)
        rows = _file_rows(files, duckdb_config)
        expected = _expected_counts(target, PUBLISHED_TABLES, files, rows, release_id, "release")
        main_plan = _Plan(
            published_db, "release", PUBLISHED_TABLES, RELEASE_LOG_DDL,
            [release_id, target["as_of_month"], at, target["rules_version"], target["rule_set"],
             target["rule_set_version"], target["gate_run_id"], *(expected[t] for t in PUBLISHED_TABLES),
             None, None, ACTION_ROLLBACK, current["release_id"], None],
            files, _manifest(main, gate_runs, release_id, files, rows, warehouse), expected, folder)
        if aml is not None:
            aml_target, aml_folder = aml.publication(release_id), restricted_releases / release_id
            aml_files = _release_files(aml_folder, AML_TABLES, release_id)
            aml_rows = _file_rows(aml_files, duckdb_config)
            aml_expected = _expected_counts(aml_target, AML_TABLES, aml_files, aml_rows, release_id,
                                            "AML release")
            aml_plan = _Plan(
                restricted_db, "AML release", AML_TABLES, AML_RELEASE_LOG_DDL,
                [release_id, aml_target["as_of_month"], at, aml_target["rules_version"],
                 aml_target["gate_run_id"], *(aml_expected[t] for t in AML_TABLES), None, None,
                 ACTION_ROLLBACK, aml.current["release_id"] if aml.current else None, None],
                aml_files, _manifest(aml, gate_runs, release_id, aml_files, aml_rows, warehouse), aml_expected,
                aml_folder)
            plans.append(aml_plan)
        plans.append(main_plan)  # restricted first, as publication does
    except (RollbackRefused, RollbackFailed):
        raise
    except Exception as exc:
        raise RollbackFailed(f"rollback to release {release_id} failed, {PUBLISHED_DB} unchanged: "
                             f"{_first_line(exc)}") from exc

    link = settings.exports_dir
    link_tmp = link.with_name(f".{link.name}.tmp")
    if link.exists() and not link.is_symlink():
        raise RollbackRefused(f"{link} is not a link (a warehouse of an older layout): cannot roll back")
    scratch = [*(p for plan in plans for p in (*plan.leftovers(), plan.backup)), link_tmp]
    _remove(*scratch)
    counts: dict[str, dict[str, int]] = {}
    swapped: list[_Plan] = []
    try:
        for plan in plans:
            if plan.what == "AML release":
                _prepare_restricted_dir(settings.restricted_dir)
            counts[plan.what] = _build(plan, release_id, at,
                                       confidential=AML_TABLES if plan.what == "release" else ())
            if plan.what == "AML release":
                os.chmod(plan.tmp, RESTRICTED_FILE_MODE)
        for plan in plans:
            if plan.leftovers()[1].exists():
                raise RollbackFailed(f"{plan.leftovers()[1]} left behind: the catalog was not checkpointed")
        os.symlink(exports_target(settings, release_id), link_tmp)
        # Everything is built and verified: restricted, main, then the exports link. Each old catalog is
        # kept aside (a hard link) until the last swap succeeded, to be put back if one does not.
        for plan in plans:
            os.link(plan.db, plan.backup)
            os.replace(plan.tmp, plan.db)
            swapped.append(plan)
        os.replace(link_tmp, link)
    except Exception as exc:
        for plan in reversed(swapped):
            os.replace(plan.backup, plan.db)
        _remove(*scratch)
        if isinstance(exc, RollbackFailed | RollbackRefused):
            raise
        raise RollbackFailed(f"rollback to release {release_id} failed, {PUBLISHED_DB} unchanged: "
                             f"{_first_line(exc)}") from exc
    _remove(*scratch)
    if aml is not None:
        _restrict_tree_modes(restricted_releases)
    result = RollbackResult(
        release_id=release_id, rolled_back_from=current["release_id"], as_of_month=target["as_of_month"],
        rules_version=target["rules_version"], active_rules_version=active_rules_version, forced=forced,
        rolled_back_at=at, row_counts=counts["release"], published_db=published_db, release_dir=folder,
        exports=link, restricted_db=restricted_db if aml is not None else None,
        restricted_row_counts=counts.get("AML release", {}), restricted_note=restricted_note)
    log.info("%s", result.summary)
    return result
