"""Write-audit-publish of month-partitioned releases: a run writes only its months, hard-links the others,
swaps the catalog and the `exports` link atomically, or leaves every catalog, release folder and link as it
was."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import flows  # noqa: F401  (no-telemetry environment before Prefect loads)
from flows.stages import publishing
from flows.stages.publish import publish_flow
from flows.stages.publishing import (
    AML_TABLES,
    FORBIDDEN_COLUMNS,
    PUBLISHED_TABLES,
    ROW_ORDER,
    PublishFailed,
    PublishRefused,
    Release,
    crm_csv_part,
)
from tests.support.isolation import settings_for

AUG, SEP, OCT, NOV = "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30"
FIRST = (AUG, SEP, OCT)  # the first release; NOV is in the working marts but not yet published
GATE = {m: f"gate-{m[:7]}" for m in (AUG, SEP, OCT, NOV)}

# Month m holds customers P000 … P(month(m) - 6): 3 in August, 4 in September, 5 in October, 6 in November,
# so a month read from the wrong file shows the wrong count; the AUM carries the month (exact DECIMAL).
WORKING_SQL = """
CREATE SCHEMA main_marts; CREATE SCHEMA gate;
CREATE TABLE main_marts.customer_segment AS
    SELECT m::DATE AS as_of_month, 'P' || lpad(i::VARCHAR, 3, '0') AS cust_id, 'P' AS cust_type,
           '张*' AS cust_name_masked, '110***********1234' AS cert_no_masked, '138****5678' AS mobile_masked,
           CAST(i * 1000.25 + month(m::DATE) / 100 AS DECIMAL(18, 2)) AS avg_daily_aum_cny,
           CASE WHEN i % 2 = 0 THEN 'NONCORE' ELSE 'GOLD' END AS value_tier,
           'cib_monthly' AS rule_set, 'cib_monthly/2026.11.1' AS rule_set_version,
           '2026.11.1' AS rules_version
    FROM range(6) AS r(i),
         (VALUES ('2026-11-30'), ('2026-10-31'), ('2026-09-30'), ('2026-08-31')) AS months(m)
    WHERE i < month(m::DATE) - 5;
CREATE TABLE main_marts.customer_tier AS
    SELECT as_of_month, cust_id, rs AS rule_set, value_tier AS tier FROM main_marts.customer_segment,
           (VALUES ('cib_monthly'), ('abc_quarterly')) AS x(rs);
CREATE TABLE main_marts.tier_summary AS
    SELECT as_of_month, rule_set, tier, CASE tier WHEN 'GOLD' THEN 2 ELSE 1 END AS tier_rank,
           count(*) AS customers
    FROM main_marts.customer_tier GROUP BY ALL;
CREATE TABLE main_marts.tier_migration AS
    SELECT as_of_month, rule_set, NULL::VARCHAR AS from_tier, tier AS to_tier, count(*) AS customers
    FROM main_marts.customer_tier GROUP BY ALL;
CREATE TABLE main_marts.customer_event AS
    SELECT as_of_month, cust_id, 'NEW' AS event_type, NULL::VARCHAR AS from_value, value_tier AS to_value,
           cust_name_masked, '专属客户经理 + 优先理财通道' AS suggested_action
    FROM main_marts.customer_segment;
CREATE TABLE gate.run (gate_run_id VARCHAR, as_of_month DATE, started_at TIMESTAMP, finished_at TIMESTAMP,
    success BOOLEAN, blocking_failures INTEGER);
INSERT INTO gate.run VALUES
    ('gate-2026-08', DATE '2026-08-31', now()::TIMESTAMP, now()::TIMESTAMP, TRUE, 0),
    ('gate-2026-09', DATE '2026-09-30', now()::TIMESTAMP, now()::TIMESTAMP, TRUE, 0),
    ('gate-2026-10', DATE '2026-10-31', now()::TIMESTAMP, now()::TIMESTAMP, TRUE, 0),
    ('gate-2026-11', DATE '2026-11-30', now()::TIMESTAMP, now()::TIMESTAMP, TRUE, 0),
    ('gate-failed', DATE '2026-10-31', now()::TIMESTAMP, now()::TIMESTAMP, FALSE, 2);
"""

AML_SQL = """
CREATE TABLE main_marts.aml_customer_risk AS
    SELECT as_of_month, cust_id, CASE WHEN cust_id = 'P001' THEN 'HIGH' ELSE 'LOW' END AS aml_level,
           CASE WHEN cust_id = 'P001' THEN 'CASH_LARGE' ELSE '' END AS aml_triggers
    FROM main_marts.customer_segment;
CREATE TABLE main_marts.aml_trigger_transactions AS
    SELECT as_of_month, cust_id, 'CASH_LARGE' AS trigger, 'T' || cust_id AS txn_id,
           (as_of_month::TIMESTAMP) AS txn_time, 'DEP' AS txn_type, CAST(60000 AS DECIMAL(18, 2)) AS amount,
           'CNY' AS currency, CAST(60000.12345678 AS DECIMAL(38, 8)) AS amount_cny,
           NULL::VARCHAR AS counterparty_country
    FROM main_marts.customer_segment WHERE cust_id = 'P001';
"""


@pytest.fixture(autouse=True)
def _no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERING_PUBLISH_POSTGRES", raising=False)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    root = tmp_path / "warehouse"
    root.mkdir()
    con = duckdb.connect(str(root / "tiering.duckdb"))
    con.execute(WORKING_SQL)
    con.close()
    return root


@pytest.fixture
def aml_warehouse(warehouse: Path) -> Path:
    working(warehouse, AML_SQL)
    return warehouse


# ------------------------------------------------------------------------------------------ helpers


def publish(warehouse: Path, *months: str, as_of: str | None = None,
            gate_runs: dict[str, str] | None = None) -> Release:
    """Publish `months` (YYYY-MM-DD) through the Prefect flow, each with its passing gate run unless told
    otherwise."""
    runs = gate_runs if gate_runs is not None else {m: GATE[m] for m in months}
    return publish_flow.fn(date.fromisoformat(as_of or months[-1]), settings_for(warehouse=warehouse),
                           gate_runs={date.fromisoformat(m): run for m, run in runs.items()},
                           months=[date.fromisoformat(m) for m in months])


def working(warehouse: Path, *statements: str) -> None:
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))
    for sql in statements:
        con.execute(sql)
    con.close()


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def marts(warehouse: Path, table: str, months: tuple[str, ...]) -> list[tuple]:
    """The working marts' rows of `months`, in the order the views are read back in."""
    listed = ", ".join(f"DATE '{m}'" for m in months)
    return query(warehouse / "tiering.duckdb", f"SELECT * FROM main_marts.{table} WHERE as_of_month IN ({listed}) "
                                               f"ORDER BY as_of_month, {ROW_ORDER[table]}")


def view(db: Path, table: str) -> list[tuple]:
    return query(db, f"SELECT * FROM main.{table} ORDER BY as_of_month, {ROW_ORDER[table]}")


def read_in_new_process(db: Path, sql: str) -> list:
    """What a consumer that opens the file now (another process, read-only) sees."""
    code = ("import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall(), default=str))")
    out = subprocess.run([sys.executable, "-c", code, str(db), sql], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(warehouse: Path) -> dict[str, tuple]:
    """Everything publication owns, byte for byte: catalogs, every file and folder under releases/ and
    restricted/ (with modes), the exports link's target; the working database is left out."""
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(warehouse):  # does not follow the exports link
        for name in [*dirs, *files]:
            path = Path(folder) / name
            key = str(path.relative_to(warehouse))
            if key.startswith("tiering.duckdb"):
                continue
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            elif path.is_dir():
                state[key] = ("dir", mode)
            else:
                state[key] = ("file", mode, sha256(path))
    return state


def part(table: str, month: str) -> str:
    return f"{table}/as_of_month={month}/data.parquet"


def release_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------------------ the release


def test_first_release_holds_the_marts_month_by_month_without_personal_data(warehouse: Path) -> None:
    release = publish(warehouse, *FIRST)
    published = warehouse / "published.duckdb"
    assert release.published_db == published and release.as_of_month == date(2026, 10, 31)
    assert release.months_published == [date.fromisoformat(m) for m in FIRST] and release.restated_months == []
    assert release.gate_run_id == GATE[OCT]
    assert release.row_counts == {t: len(marts(warehouse, t, FIRST)) for t in PUBLISHED_TABLES}
    assert release.row_counts["customer_segment"] == 3 + 4 + 5
    assert (release.rules_version, release.rule_set, release.rule_set_version) == (
        "2026.11.1", "cib_monthly", "cib_monthly/2026.11.1")

    # The catalog: one view per table, the release log and the month manifest, nothing else.
    objects = dict(query(published, "SELECT table_name, table_type FROM information_schema.tables"))
    assert objects == {**dict.fromkeys(PUBLISHED_TABLES, "VIEW"), "release_log": "BASE TABLE",
                       "release_months": "BASE TABLE"}
    for table in PUBLISHED_TABLES:
        assert view(published, table) == marts(warehouse, table, FIRST), table
    columns = {r[0] for r in query(published, "SELECT lower(column_name) FROM information_schema.columns")}
    assert columns.isdisjoint(FORBIDDEN_COLUMNS) and "cust_name_masked" in columns
    log = query(published, "SELECT release_id, as_of_month, gate_run_id, rules_version, rule_set, "
                           "rule_set_version, customer_segment_rows, customer_tier_rows, months_published, "
                           "restated_months FROM release_log")
    assert log == [(release.release_id, date(2026, 10, 31), GATE[OCT], "2026.11.1", "cib_monthly",
                    "cib_monthly/2026.11.1", 12, 24, "2026-08-31,2026-09-30,2026-10-31", None)]

    # The release folder: one Parquet file per table and month, as_of_month only in the path, rows in
    # ROW_ORDER, no personal data.
    folder = warehouse / "releases" / release.release_id
    assert release.release_dir == folder
    assert release_files(folder) == ({part(t, m) for t in PUBLISHED_TABLES for m in FIRST}
                                     | {str(crm_csv_part(date.fromisoformat(m))) for m in FIRST})
    for table in PUBLISHED_TABLES:
        for month in FIRST:
            file = folder / part(table, month)
            names = [r[0] for r in duckdb.sql(
                f"DESCRIBE SELECT * FROM read_parquet('{file}', hive_partitioning = false)").fetchall()]
            assert "as_of_month" not in names and set(names).isdisjoint(FORBIDDEN_COLUMNS)
            in_file = duckdb.sql(f"SELECT * FROM read_parquet('{file}', hive_partitioning = false)").fetchall()
            assert in_file == [row[1:] for row in marts(warehouse, table, (month,))], (table, month)
    # Nothing temporary is left behind.
    assert sorted(p.name for p in warehouse.iterdir()) == [
        "exports", "published.duckdb", "releases", "tiering.duckdb"]
    assert [p.name for p in (warehouse / "releases").iterdir()] == [release.release_id]


READER = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
def state():
    return [con.execute("SELECT * FROM customer_segment ORDER BY as_of_month, cust_id").fetchall(),
            con.execute("SELECT release_id FROM release_log").fetchall()]
print(json.dumps(state(), default=str), flush=True)
sys.stdin.readline()
print(json.dumps(state(), default=str), flush=True)
"""


def restate_september_and_add_a_customer(warehouse: Path) -> None:
    working(warehouse,
            "UPDATE main_marts.customer_segment SET avg_daily_aum_cny = avg_daily_aum_cny + 1 "
            f"WHERE as_of_month = '{SEP}'",
            "INSERT INTO main_marts.customer_segment SELECT * REPLACE ('P999' AS cust_id) "
            f"FROM main_marts.customer_segment WHERE cust_id = 'P001' AND as_of_month = '{SEP}'")


def test_readers_of_the_old_catalog_keep_the_old_release_while_a_new_one_is_published(warehouse: Path) -> None:
    first = publish(warehouse, *FIRST)
    published = warehouse / "published.duckdb"
    # A consumer (BI tool, notebook: another process) has the catalog open while the next release is out.
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        old = json.loads(reader.stdout.readline())
        assert len(old[0]) == 12 and old[1] == [[first.release_id]]
        restate_september_and_add_a_customer(warehouse)
        second = publish(warehouse, SEP, NOV)
        out, err = reader.communicate("\n", timeout=60)
    finally:
        reader.kill()
    # The open connection still sees the whole old release (restated month included), consistently.
    assert reader.returncode == 0, err
    assert json.loads(out) == old
    # A consumer opening the file now gets the new release, with the log of both.
    assert read_in_new_process(published, "SELECT count(*) FROM customer_segment") == [[3 + 5 + 5 + 6]]
    assert read_in_new_process(published, "SELECT release_id FROM release_log ORDER BY published_at") == [
        [first.release_id], [second.release_id]]
    assert view(published, "customer_segment") == marts(warehouse, "customer_segment", (AUG, SEP, OCT, NOV))


def test_a_reader_in_the_publishing_process_keeps_the_old_release_and_the_new_one_survives(
        warehouse: Path) -> None:
    publish(warehouse, *FIRST)
    published = warehouse / "published.duckdb"
    reader = duckdb.connect(str(published), read_only=True)
    try:
        old = reader.execute("SELECT * FROM customer_segment ORDER BY as_of_month, cust_id").fetchall()
        restate_september_and_add_a_customer(warehouse)
        second = publish(warehouse, SEP, NOV)
        assert reader.execute("SELECT * FROM customer_segment ORDER BY as_of_month, cust_id").fetchall() == old
    finally:
        reader.close()
    assert second.release_dir.is_dir()
    assert view(published, "customer_segment") == marts(warehouse, "customer_segment", (AUG, SEP, OCT, NOV))


@pytest.mark.parametrize(("gate_run_id", "reason"), [
    ("gate-unknown", "not found"),
    ("gate-failed", "failed"),
    ("gate-2026-09", "validated 2026-09, not 2026-10"),
])
def test_publication_is_refused_without_a_passing_gate_for_the_month(
        warehouse: Path, gate_run_id: str, reason: str) -> None:
    publish(warehouse, AUG, SEP)
    before = snapshot(warehouse)
    with pytest.raises(PublishRefused, match=reason):
        publish_flow.fn(date.fromisoformat(OCT), settings_for(warehouse=warehouse), gate_run_id)
    assert snapshot(warehouse) == before


@pytest.mark.parametrize(("gate_runs", "reason"), [
    # Every month needs its own passing gate run, not only the month the release is named after.
    ({SEP: GATE[SEP], NOV: GATE[NOV]}, "gate run  not found"),
    ({SEP: GATE[SEP], OCT: "gate-failed", NOV: GATE[NOV]}, "gate run gate-failed for 2026-10 failed"),
    ({SEP: GATE[NOV], OCT: GATE[OCT], NOV: GATE[NOV]}, "validated 2026-11, not 2026-09"),
])
def test_a_restatement_is_refused_unless_every_month_passed_its_gate(
        warehouse: Path, gate_runs: dict[str, str], reason: str) -> None:
    publish(warehouse, *FIRST)
    before = snapshot(warehouse)
    with pytest.raises(PublishRefused, match=reason):
        publish(warehouse, SEP, OCT, NOV, gate_runs=gate_runs)
    assert snapshot(warehouse) == before


def test_refused_without_any_gate_run_and_nothing_is_created(warehouse: Path) -> None:
    working(warehouse, "DROP TABLE gate.run")
    with pytest.raises(PublishRefused, match="not found in gate.run"):
        publish(warehouse, OCT)
    assert sorted(p.name for p in warehouse.iterdir()) == ["tiering.duckdb"]


@pytest.mark.parametrize(("breakage", "message", "months"), [
    ("DROP TABLE main_marts.tier_migration", "tier_migration", (SEP, NOV)),
    # Every month rewritten (a personal-data column in the new month only is refused: test below).
    ("ALTER TABLE main_marts.customer_segment ADD COLUMN cust_name VARCHAR", "unmasked personal data",
     (AUG, SEP, OCT, NOV)),
    (f"DELETE FROM main_marts.customer_segment WHERE as_of_month = '{NOV}'", "no customer_segment rows for 2026-11",
     (SEP, NOV)),
    (f"UPDATE main_marts.customer_segment SET rule_set = 'abc_quarterly' "
     f"WHERE as_of_month = '{NOV}' AND cust_id = 'P001'", "expected one", (SEP, NOV)),
])
def test_failed_publication_leaves_everything_byte_for_byte(
        warehouse: Path, breakage: str, message: str, months: tuple[str, ...]) -> None:
    first = publish(warehouse, *FIRST)
    published = warehouse / "published.duckdb"
    before, rows = snapshot(warehouse), view(published, "customer_segment")
    assert before["exports"] == ("link", f"releases/{first.release_id}")
    working(warehouse, breakage)
    with pytest.raises(PublishFailed, match=message):
        publish(warehouse, *months)
    assert snapshot(warehouse) == before
    assert view(published, "customer_segment") == rows
    assert [r[0] for r in query(published, "SELECT release_id FROM release_log")] == [first.release_id]


@pytest.mark.parametrize(("table", "column"), [("customer_segment", "cust_name"),
                                               ("aml_customer_risk", "cert_no")])
def test_a_personal_data_column_in_the_new_month_only_is_refused(
        aml_warehouse: Path, table: str, column: str) -> None:
    publish(aml_warehouse, *FIRST)
    before = snapshot(aml_warehouse)
    working(aml_warehouse, f"ALTER TABLE main_marts.{table} ADD COLUMN {column} VARCHAR DEFAULT 'x'")
    with pytest.raises(PublishFailed, match="unmasked personal data"):
        publish(aml_warehouse, NOV)
    assert snapshot(aml_warehouse) == before


@pytest.mark.parametrize("with_aml", [False, True], ids=["main", "main-and-aml"])
def test_a_failure_after_the_release_folder_was_named_leaves_no_trace(
        warehouse: Path, monkeypatch: pytest.MonkeyPatch, with_aml: bool) -> None:
    if with_aml:
        working(warehouse, AML_SQL)
    first = publish(warehouse, *FIRST)
    before = snapshot(warehouse)
    folders = [warehouse / "releases", *([warehouse / "restricted" / "releases"] if with_aml else [])]
    seen: dict[str, set[str]] = {}
    real_check = publishing._check_catalog

    def check_then_fail(tmp: Path, counts: dict, release_id: str, what: str, confidential: tuple = ()) -> None:
        real_check(tmp, counts, release_id, what, confidential)
        if what == ("AML release" if with_aml else "release"):  # the last check before the catalogs move
            seen.update({str(f.relative_to(warehouse)): {p.name for p in f.iterdir()} for f in folders})
            seen["release_id"] = {release_id}
            raise OSError("disk full")

    monkeypatch.setattr(publishing, "_check_catalog", check_then_fail)
    with pytest.raises(PublishFailed, match="publication of 2026-11 failed, published.duckdb unchanged: disk full"):
        publish(warehouse, NOV)
    # The new release's folders had their final names when the failure came ...
    (new_id,) = seen.pop("release_id")
    assert seen == {str(f.relative_to(warehouse)): {first.release_id, new_id} for f in folders}
    # ... and nothing of them is left.
    after = snapshot(warehouse)
    assert after == before
    assert not [key for key in after if new_id in key]


# ------------------------------------------------------------------------------------------ new months, restatements


def test_a_new_month_is_written_and_every_other_month_is_hard_linked(warehouse: Path) -> None:
    first = publish(warehouse, *FIRST)
    old_folder = warehouse / "releases" / first.release_id
    old_files = {f: (sha256(old_folder / f), (old_folder / f).stat().st_mtime_ns) for f in release_files(old_folder)}
    second = publish(warehouse, NOV)
    new_folder = warehouse / "releases" / second.release_id
    assert second.months_published == [date(2026, 11, 30)] and second.restated_months == []
    crm = {m: str(crm_csv_part(date.fromisoformat(m))) for m in (*FIRST, NOV)}
    assert release_files(new_folder) == ({part(t, m) for t in PUBLISHED_TABLES for m in (*FIRST, NOV)}
                                         | set(crm.values()))
    for table in PUBLISHED_TABLES:
        for month in FIRST:  # carried: the very same file as in the previous release
            new, old = (new_folder / part(table, month)).stat(), (old_folder / part(table, month)).stat()
            assert (new.st_ino, new.st_dev) == (old.st_ino, old.st_dev), (table, month)
        written = new_folder / part(table, NOV)
        assert written.stat().st_nlink == 1  # a new file, in this release only
    for month in FIRST:  # the CRM feed's CSV of a carried month is carried too
        new, old = (new_folder / crm[month]).stat(), (old_folder / crm[month]).stat()
        assert (new.st_ino, new.st_dev) == (old.st_ino, old.st_dev), month
    # The CRM CSV: UTF-8 with a BOM (Excel, 纷享销客 and Zoho read the Chinese), header, the month's rows.
    raw = (warehouse / "exports" / crm[NOV]).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and not raw[3:].startswith(b"\xef\xbb\xbf")
    with open(warehouse / "exports" / crm[NOV], encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["cust_name_masked"] for r in rows} == {"张*"}
    assert rows[0]["suggested_action"] == "专属客户经理 + 优先理财通道" and rows[0]["event_type"] == "NEW"
    # The previous release is untouched, byte for byte and not even rewritten.
    assert {f: (sha256(old_folder / f), (old_folder / f).stat().st_mtime_ns)
            for f in release_files(old_folder)} == old_files
    published = warehouse / "published.duckdb"
    for table in PUBLISHED_TABLES:
        assert view(published, table) == marts(warehouse, table, (*FIRST, NOV)), table
    assert second.row_counts["customer_segment"] == 3 + 4 + 5 + 6
    log = query(published, "SELECT release_id, as_of_month, gate_run_id, customer_segment_rows, months_published, "
                           "restated_months FROM release_log ORDER BY published_at")
    assert log == [
        (first.release_id, date(2026, 10, 31), GATE[OCT], 12, "2026-08-31,2026-09-30,2026-10-31", None),
        (second.release_id, date(2026, 11, 30), GATE[NOV], 18, "2026-11-30", None)]


def test_restating_an_old_month_writes_a_new_file_and_logs_it(warehouse: Path) -> None:
    first = publish(warehouse, *FIRST)
    old_folder = warehouse / "releases" / first.release_id
    old_september = sha256(old_folder / part("customer_segment", SEP))
    working(warehouse, "UPDATE main_marts.customer_segment SET avg_daily_aum_cny = 7.77 "
                       f"WHERE as_of_month = '{SEP}' AND cust_id = 'P002'")
    second = publish(warehouse, SEP, NOV)
    new_folder = warehouse / "releases" / second.release_id
    assert second.months_published == [date(2026, 9, 30), date(2026, 11, 30)]
    assert second.restated_months == [date(2026, 9, 30)]
    for table in PUBLISHED_TABLES:
        new, old = new_folder / part(table, SEP), old_folder / part(table, SEP)
        assert new.stat().st_ino != old.stat().st_ino and new.stat().st_nlink == 1, table
        assert (new_folder / part(table, AUG)).stat().st_ino == (old_folder / part(table, AUG)).stat().st_ino
        assert (new_folder / part(table, OCT)).stat().st_ino == (old_folder / part(table, OCT)).stat().st_ino
    assert sha256(old_folder / part("customer_segment", SEP)) == old_september  # the old release keeps its month
    published = warehouse / "published.duckdb"
    assert query(published, f"SELECT avg_daily_aum_cny FROM customer_segment WHERE as_of_month = '{SEP}' "
                            "AND cust_id = 'P002'") == [(Decimal("7.77"),)]
    log = query(published, "SELECT release_id, as_of_month, gate_run_id, months_published, restated_months "
                           "FROM release_log ORDER BY published_at")
    assert log[1] == (second.release_id, date(2026, 11, 30), GATE[NOV], "2026-09-30,2026-11-30", "2026-09-30")
    # Republishing months the current release holds, named after an earlier month: all restated.
    third = publish(warehouse, AUG, SEP, as_of=SEP)
    assert third.restated_months == [date(2026, 8, 31), date(2026, 9, 30)] and third.gate_run_id == GATE[SEP]
    assert query(published, "SELECT as_of_month, months_published, restated_months FROM release_log "
                            "WHERE release_id = ?", [third.release_id]) == [
        (date(2026, 9, 30), "2026-08-31,2026-09-30", "2026-08-31,2026-09-30")]


def test_release_months_names_the_writer_of_each_month(warehouse: Path) -> None:
    first = publish(warehouse, *FIRST)
    second = publish(warehouse, SEP, NOV)  # restates September
    published = warehouse / "published.duckdb"
    at = dict(query(published, "SELECT release_id, published_at FROM release_log"))
    manifest = query(published, "SELECT table_name, as_of_month, release_id, gate_run_id, published_at, rows, file "
                                "FROM release_months ORDER BY table_name, as_of_month")
    writers = {AUG: first, SEP: second, OCT: first, NOV: second}
    expected = []
    for table in sorted(PUBLISHED_TABLES):
        for month, writer in sorted(writers.items()):
            expected.append((table, date.fromisoformat(month), writer.release_id, GATE[month],
                             at[writer.release_id], len(marts(warehouse, table, (month,))),
                             f"releases/{second.release_id}/{part(table, month)}"))
    assert manifest == expected
    for *_, file in manifest:  # every file named is one the current release's views read
        assert (warehouse / file).is_file()


def test_views_show_as_of_month_first_and_exact_decimals(aml_warehouse: Path) -> None:
    publish(aml_warehouse, *FIRST)
    published = aml_warehouse / "published.duckdb"
    for table in PUBLISHED_TABLES:
        described = query(published, f"DESCRIBE {table}")
        in_marts = query(aml_warehouse / "tiering.duckdb", f"DESCRIBE main_marts.{table}")
        assert described[0][:2] == ("as_of_month", "DATE"), table
        assert [r[0] for r in described] == [r[0] for r in in_marts], table
    types = dict(r[:2] for r in query(published, "DESCRIBE customer_segment"))
    assert types["avg_daily_aum_cny"] == "DECIMAL(18,2)"
    assert query(published, "SELECT sum(avg_daily_aum_cny) FROM customer_segment") == [(Decimal("19005.85"),)]
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    aml_types = query(restricted, "DESCRIBE aml_trigger_transactions")
    assert aml_types[0][:2] == ("as_of_month", "DATE")
    assert dict(r[:2] for r in aml_types)["amount_cny"] == "DECIMAL(38,8)"
    assert query(restricted, "SELECT DISTINCT amount_cny FROM aml_trigger_transactions") == [
        (Decimal("60000.12345678"),)]


def test_exports_link_points_to_the_current_release_as_a_hive_dataset(warehouse: Path) -> None:
    import pyarrow.dataset as ds

    first = publish(warehouse, *FIRST)
    link = warehouse / "exports"
    assert link.is_symlink() and os.readlink(link) == f"releases/{first.release_id}"  # relative
    second = publish(warehouse, NOV)
    assert os.readlink(link) == f"releases/{second.release_id}"
    assert link.resolve() == second.release_dir.resolve()
    assert second.exports == {t: link / t for t in PUBLISHED_TABLES}
    assert not list(warehouse.glob(".exports*"))
    published = warehouse / "published.duckdb"
    for table in PUBLISHED_TABLES:
        through_link = duckdb.sql(
            f"SELECT * FROM read_parquet('{link / table}/*/*.parquet', hive_partitioning = true, "
            "hive_types = {'as_of_month': DATE})").fetchall()
        in_view = query(published, f"SELECT * EXCLUDE (as_of_month), as_of_month FROM {table}")
        assert sorted(through_link, key=repr) == sorted(in_view, key=repr), table
    # Another reader (pyarrow, as Spark or pandas would) sees the same dataset from exports/<table>.
    dataset = ds.dataset(str(link / "customer_segment"), format="parquet", partitioning="hive")
    assert dataset.count_rows() == 18
    assert sorted(str(m) for m in dataset.to_table().column("as_of_month").unique().to_pylist()) == [
        AUG, SEP, OCT, NOV]


def test_release_folders_older_than_the_previous_are_removed(aml_warehouse: Path) -> None:
    releases, restricted_releases = aml_warehouse / "releases", aml_warehouse / "restricted" / "releases"
    first = publish(aml_warehouse, AUG, SEP)
    second = publish(aml_warehouse, OCT)
    assert {p.name for p in releases.iterdir()} == {first.release_id, second.release_id}
    assert {p.name for p in restricted_releases.iterdir()} == {first.release_id, second.release_id}
    third = publish(aml_warehouse, NOV)
    assert {p.name for p in releases.iterdir()} == {second.release_id, third.release_id}
    assert {p.name for p in restricted_releases.iterdir()} == {second.release_id, third.release_id}
    # The months the first release wrote live on in the newer folders (hard links outlive the folder).
    published, restricted = aml_warehouse / "published.duckdb", aml_warehouse / "restricted" / "aml.duckdb"
    for table in PUBLISHED_TABLES:
        assert view(published, table) == marts(aml_warehouse, table, (AUG, SEP, OCT, NOV)), table
    for table in AML_TABLES:
        assert view(restricted, table) == marts(aml_warehouse, table, (AUG, SEP, OCT, NOV)), table
    assert query(published, "SELECT count(*) FROM release_log") == [(3,)]


def test_a_catalog_of_the_old_single_file_layout_is_not_overwritten(warehouse: Path) -> None:
    published = warehouse / "published.duckdb"
    con = duckdb.connect(str(published))
    con.execute("CREATE TABLE customer_segment (cust_id VARCHAR); CREATE TABLE release_log (release_id VARCHAR)")
    con.close()
    before = snapshot(warehouse)
    with pytest.raises(PublishFailed, match="old single-file layout"):
        publish(warehouse, OCT)
    assert snapshot(warehouse) == before


# --- The confidential AML marts: never in published.duckdb, released to restricted/ together ---


def test_aml_marts_go_to_the_restricted_release_only(aml_warehouse: Path) -> None:
    release = publish(aml_warehouse, *FIRST)
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    assert release.restricted_db == restricted
    assert release.restricted_row_counts == {"aml_customer_risk": 12, "aml_trigger_transactions": 3}
    # Not in the main catalog, release folder or exports.
    published_tables = {r[0] for r in read_in_new_process(
        aml_warehouse / "published.duckdb", "SELECT table_name FROM information_schema.tables")}
    assert published_tables == {*PUBLISHED_TABLES, "release_log", "release_months"}
    assert {p.name for p in (aml_warehouse / "exports").iterdir()} == {*PUBLISHED_TABLES, publishing.CRM_DIR}
    assert {p.name for p in release.release_dir.iterdir()} == {*PUBLISHED_TABLES, publishing.CRM_DIR}
    # The restricted release: same id, its own folder, 0700 folders and 0600 files all the way down.
    folder = aml_warehouse / "restricted" / "releases" / release.release_id
    assert release_files(folder) == {part(t, m) for t in AML_TABLES for m in FIRST}
    assert _mode(restricted.parent) == 0o700 and _mode(restricted) == 0o600
    for path in restricted.parent.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert not list(restricted.parent.glob("*.tmp*")) and not list(folder.parent.glob(".tmp-*"))
    assert {r[0] for r in read_in_new_process(restricted, "SELECT table_name FROM information_schema.tables")} == {
        *AML_TABLES, "release_log", "release_months"}
    for table in AML_TABLES:
        assert view(restricted, table) == marts(aml_warehouse, table, FIRST), table
    log = query(restricted, "SELECT release_id, as_of_month, gate_run_id, aml_customer_risk_rows, "
                            "aml_trigger_transactions_rows, months_published, restated_months FROM release_log")
    assert log == [(release.release_id, date(2026, 10, 31), GATE[OCT], 12, 3, "2026-08-31,2026-09-30,2026-10-31",
                    None)]
    assert query(restricted, "SELECT DISTINCT release_id, file LIKE 'restricted/releases/' || release_id || '/%' "
                             "FROM release_months") == [(release.release_id, True)]
    main_log = read_in_new_process(aml_warehouse / "published.duckdb", "SELECT release_id FROM release_log")
    assert main_log == [[release.release_id]]


def test_second_release_carries_the_aml_log_links_old_months_and_tightens_modes(aml_warehouse: Path) -> None:
    first = publish(aml_warehouse, *FIRST)
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    restricted.parent.chmod(0o755)  # someone widened it: the next release puts 0700 back
    second = publish(aml_warehouse, SEP, NOV)
    assert _mode(restricted.parent) == 0o700 and _mode(restricted) == 0o600
    assert read_in_new_process(restricted, "SELECT release_id FROM release_log ORDER BY published_at") == [
        [first.release_id], [second.release_id]]
    assert query(restricted, "SELECT months_published, restated_months FROM release_log WHERE release_id = ?",
                 [second.release_id]) == [("2026-09-30,2026-11-30", "2026-09-30")]
    old, new = (aml_warehouse / "restricted" / "releases" / r.release_id for r in (first, second))
    for table in AML_TABLES:
        assert (new / part(table, AUG)).stat().st_ino == (old / part(table, AUG)).stat().st_ino
        assert (new / part(table, OCT)).stat().st_ino == (old / part(table, OCT)).stat().st_ino
        assert (new / part(table, SEP)).stat().st_ino != (old / part(table, SEP)).stat().st_ino
        assert view(restricted, table) == marts(aml_warehouse, table, (AUG, SEP, OCT, NOV)), table
    writers = dict(((t, str(m)), r) for t, m, r in query(restricted, "SELECT table_name, as_of_month, release_id "
                                                                     "FROM release_months"))
    assert writers[("aml_customer_risk", AUG)] == first.release_id
    assert writers[("aml_customer_risk", SEP)] == second.release_id


def test_without_aml_marts_the_restricted_release_is_skipped(warehouse: Path, caplog) -> None:
    with caplog.at_level("INFO"):
        release = publish(warehouse, *FIRST)
    assert release.restricted_db is None and release.restricted_row_counts == {}
    assert not (warehouse / "restricted").exists()
    assert "restricted AML release skipped" in caplog.text


@pytest.mark.parametrize(("breakage", "message"), [
    # The main release fails: the AML release is not replaced either.
    ("DROP TABLE main_marts.tier_migration", "tier_migration"),
    # The AML release fails: the main release is not replaced either.
    ("ALTER TABLE main_marts.aml_customer_risk ADD COLUMN cert_no VARCHAR", "unmasked personal data.*aml_customer_risk"),
    ("DROP TABLE main_marts.aml_trigger_transactions", "incomplete"),
])
def test_a_failure_leaves_both_releases_byte_for_byte(aml_warehouse: Path, breakage: str, message: str) -> None:
    first = publish(aml_warehouse, *FIRST)
    before = snapshot(aml_warehouse)
    assert before["restricted/aml.duckdb"][0] == "file"
    assert f"restricted/releases/{first.release_id}/{part('aml_customer_risk', OCT)}" in before
    working(aml_warehouse, breakage)
    with pytest.raises(PublishFailed, match=message):
        publish(aml_warehouse, AUG, SEP, OCT, NOV)
    assert snapshot(aml_warehouse) == before
    assert not (aml_warehouse / "published.duckdb.tmp").exists()


def test_a_failure_replacing_the_main_catalog_leaves_the_aml_release_as_it_was(
        aml_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(aml_warehouse, *FIRST)
    before = snapshot(aml_warehouse)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "published.duckdb":
            raise OSError("I/O error")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PublishFailed, match="I/O error"):
        publish(aml_warehouse, NOV)
    monkeypatch.undo()
    assert snapshot(aml_warehouse) == before
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    assert view(restricted, "aml_customer_risk") == marts(aml_warehouse, "aml_customer_risk", FIRST)


@pytest.mark.parametrize(("ddl", "name"), [
    ("CREATE TABLE aml_customer_risk (cust_id VARCHAR)", "aml_customer_risk"),
    ("CREATE VIEW AML_Trigger_Transactions AS SELECT 1 AS cust_id", "AML_Trigger_Transactions"),
])
def test_confidential_tables_in_the_main_release_are_refused(tmp_path: Path, ddl: str, name: str) -> None:
    candidate = tmp_path / "published.duckdb.tmp"
    con = duckdb.connect(str(candidate))
    con.execute("CREATE TABLE release_log (release_id VARCHAR); INSERT INTO release_log VALUES ('r1')")
    con.execute(ddl)
    con.close()
    # The same catalog passes as an AML catalog, and is refused as the general release.
    publishing._check_catalog(candidate, {}, "r1", "AML release")
    with pytest.raises(PublishFailed, match=f"confidential AML tables in the general release: {name}$"):
        publishing._check_catalog(candidate, {}, "r1", "release", confidential=AML_TABLES)
