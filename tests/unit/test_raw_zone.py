"""The Parquet raw zone (flows.stages.raw_zone) through real ingests: real extract files, Parquet files and DuckDB.

Snapshot tables are stored as change history; whatever order dates are loaded or replaced in, the state
rebuilt for every loaded date must be exactly the snapshot delivered for it, and the files on disk exactly
the ones audit.batch_log names.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from flows.stages import raw_zone
from flows.stages.extracts import SPECS, IngestReport, ingest_batches
from flows.stages.raw_zone import RawZoneError, state_at_sql
from tests.support.batches import sample_rows, tag, write_batch

SNAPSHOTS = ("CUSTOMER", "ACCOUNT", "LOAN")
KEY = {"CUSTOMER": "cust_id", "ACCOUNT": "acct_id", "LOAN": "loan_id"}
DAYS = [dt.date(2025, 3, 29) + dt.timedelta(days=i) for i in range(5)]
REPO = Path(__file__).resolve().parents[2]

C004 = ["C004", "C", "新材料有限公司", "20", "91110000200000000Y", None, None, None, None, None, None, "C", "B003",
        "20250330", "L", "A"]
L002 = ["L002", "C001", "A003", "CON", "50000.00", "50000.00", "CNY", "0", "1", "20300101"]


def history(i: int) -> dict[str, list]:
    """Day i of a customer history (all rows valid, every day a full snapshot):

    day 0: the sample batch; day 1: C001's risk level L → M, new customer C004, A005 closed, L001 repaid in
    part; day 2: C003 and its account A005 gone, the loan unchanged; day 3: C003 and A005 back as on day 0,
    L001 gone and L002 new; day 4: the same snapshots as day 3.
    """
    day = DAYS[i]
    rows = sample_rows(day)
    customers = {r[0]: r for r in rows["CUSTOMER"]}
    accounts = {r[0]: r for r in rows["ACCOUNT"]}
    if i >= 1:
        customers["C001"][14] = "M"
        rows["CUSTOMER"].append(list(C004))
    if i == 1:
        accounts["A005"][5:7] = [tag(day), "C"]
    if i in (1, 2):
        rows["LOAN"][0][5] = "490000.00"
    if i == 2:
        rows["CUSTOMER"] = [r for r in rows["CUSTOMER"] if r[0] != "C003"]
        rows["ACCOUNT"] = [r for r in rows["ACCOUNT"] if r[0] != "A005"]
        rows["BALANCE"] = [r for r in rows["BALANCE"] if r[0] != "A005"]
    if i >= 3:
        rows["LOAN"] = [list(L002)]
    return rows


def typed(table: str, row: list) -> tuple:
    """A spec-format row as the typed record raw should hold (empty field = NULL)."""
    out = []
    for f, value in zip(SPECS[table], row, strict=True):
        if value is None or value == "":
            out.append(None)
        elif f.kind == "date":
            out.append(dt.datetime.strptime(value, "%Y%m%d").date())
        elif f.kind == "ts":
            out.append(dt.datetime.strptime(value, "%Y%m%d%H%M%S"))
        elif f.kind in ("money", "rate"):
            out.append(Decimal(value))
        elif f.kind == "int":
            out.append(int(value))
        else:
            out.append(value)
    return tuple(out)


def snapshot_of(rows: dict[str, list], table: str) -> set[tuple]:
    return {typed(table, r) for r in rows[table]}


# ------------------------------------------------------------------------------------------ helpers


def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def db(tmp_path: Path) -> Path:
    return tmp_path / "wh" / "tiering.duckdb"


def deliver(tmp_path: Path, *days: int) -> None:
    """Write the batches of DAYS[i] (with history(i)) into the landing folder."""
    for i in days:
        write_batch(landing(tmp_path), DAYS[i], history(i))


def ingest(tmp_path: Path, **kwargs) -> IngestReport:
    kwargs.setdefault("wait_seconds", 0)
    return ingest_batches(landing(tmp_path), db(tmp_path), **kwargs)


def query(tmp_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db(tmp_path)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def state(tmp_path: Path, table: str, day: dt.date) -> set[tuple]:
    rows = query(tmp_path, state_at_sql(table, day))
    assert len(rows) == len(set(rows)), (table, day)  # one row per key, never twice
    return set(rows)


def raw_state(tmp_path: Path, table: str) -> set[tuple]:
    names = ", ".join(f.name for f in SPECS[table])
    return set(query(tmp_path, f"SELECT {names} FROM raw_state.{raw_zone.table_name(table)}"))


def versions(tmp_path: Path, table: str) -> list[tuple]:
    key = KEY[table]
    return query(tmp_path, f"SELECT {key}, valid_from, valid_to FROM raw.cbs_{table.lower()}_versions ORDER BY ALL")


def changes(tmp_path: Path, table: str, day: dt.date) -> list[tuple]:
    """(key, is_deleted) of the change file of one date, as the view shows it."""
    key = KEY[table]
    return query(tmp_path, f"SELECT {key}, is_deleted FROM raw.cbs_{table.lower()}_changes WHERE batch_date = ? "
                           "ORDER BY ALL", [day])


def logged_file(tmp_path: Path, table: str, day: dt.date) -> tuple[str, int]:
    ((raw_file, stored_rows),) = query(
        tmp_path, "SELECT raw_file, stored_rows FROM audit.batch_log WHERE batch_date = ? AND table_name = ? "
                  "AND status = 'LOADED'", [day, f"CBS_{table}"])
    return raw_file, stored_rows


def rows_in(tmp_path: Path, raw_file: str) -> int:
    return query(tmp_path, "SELECT count(*) FROM read_parquet(?)", [str(tmp_path / "wh" / raw_file)])[0][0]


def files_on_disk(tmp_path: Path) -> list[str]:
    root = tmp_path / "wh"
    return sorted(str(p.relative_to(root)) for p in (root / "raw").rglob("*.parquet"))


def tree(tmp_path: Path) -> dict[str, tuple[int, int]]:
    """Every path under the raw zone (folders too) with size and modification time."""
    root = tmp_path / "wh" / "raw"
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def assert_consistent(tmp_path: Path, delivered: dict[dt.date, dict[str, list]]) -> None:
    """The state of every loaded date is what was delivered for it; raw_state is the latest one; every
    logged file exists and holds its stored_rows; no other Parquet file is left on disk."""
    latest = max(delivered)
    with duckdb.connect(str(db(tmp_path)), read_only=True) as con:
        for day, rows in delivered.items():
            for table in SNAPSHOTS:
                found = con.execute(state_at_sql(table, day)).fetchall()
                assert len(found) == len(set(found)) and set(found) == snapshot_of(rows, table), (day, table)
            balances = con.execute("SELECT * EXCLUDE (batch_date) FROM raw.cbs_balance WHERE batch_date = ?",
                                   [day]).fetchall()
            assert sorted(balances) == sorted(typed("BALANCE", r) for r in rows["BALANCE"]), day
        for table in SNAPSHOTS:
            names = ", ".join(f.name for f in SPECS[table])
            found = con.execute(f"SELECT {names} FROM raw_state.{raw_zone.table_name(table)}").fetchall()
            assert set(found) == snapshot_of(delivered[latest], table), table
        logged = con.execute("SELECT raw_file, stored_rows FROM audit.batch_log WHERE status = 'LOADED'").fetchall()
        assert files_on_disk(tmp_path) == sorted(f for f, _ in logged)
        for raw_file, stored_rows in logged:
            in_file = con.execute("SELECT count(*) FROM read_parquet(?)", [str(tmp_path / "wh" / raw_file)])
            assert in_file.fetchone() == (stored_rows,), raw_file


# ------------------------------------------------------------------------------------------ history


def test_snapshot_tables_are_stored_as_change_history(tmp_path):
    delivered = {day: history(i) for i, day in enumerate(DAYS)}
    for day, rows in delivered.items():
        write_batch(landing(tmp_path), day, rows)
    report = ingest(tmp_path)
    assert [(b.outcome, b.quarantined) for b in report.batches] == [("loaded", 0)] * len(DAYS)

    d0, d1, d2, d3, d4 = DAYS
    assert [changes(tmp_path, "CUSTOMER", d) for d in DAYS] == [
        [("C001", False), ("C002", False), ("C003", False)],  # the first snapshot, whole
        [("C001", False), ("C004", False)],  # a changed attribute, a new key
        [("C003", True)],  # the key disappeared: a tombstone
        [("C003", False)],  # … and came back
        [],  # nothing changed
    ]
    assert [changes(tmp_path, "ACCOUNT", d) for d in DAYS] == [
        [(f"A00{n}", False) for n in range(1, 6)], [("A005", False)], [("A005", True)], [("A005", False)], []
    ]
    assert [changes(tmp_path, "LOAN", d) for d in DAYS] == [
        [("L001", False)], [("L001", False)], [], [("L001", True), ("L002", False)], []
    ]
    # A tombstone carries the last known values; a changed row its new ones.
    c003 = [r for r in delivered[d1]["CUSTOMER"] if r[0] == "C003"][0]
    assert query(tmp_path, "SELECT * EXCLUDE (batch_date, is_deleted) FROM raw.cbs_customer_changes "
                           "WHERE is_deleted") == [typed("CUSTOMER", c003)]
    assert query(tmp_path, "SELECT close_date, status FROM raw.cbs_account_changes WHERE batch_date = ?",
                 [d1]) == [(d1, "C")]
    assert query(tmp_path, "SELECT outstanding FROM raw.cbs_loan_changes WHERE batch_date = ?",
                 [d1]) == [(Decimal("490000.00"),)]

    # SCD2: a version is valid from its date until the next change of its key (exclusive), NULL while current.
    assert versions(tmp_path, "CUSTOMER") == [
        ("C001", d0, d1), ("C001", d1, None), ("C002", d0, None), ("C003", d0, d2), ("C003", d3, None),
        ("C004", d1, None),
    ]
    assert versions(tmp_path, "ACCOUNT") == [
        ("A001", d0, None), ("A002", d0, None), ("A003", d0, None), ("A004", d0, None),
        ("A005", d0, d1), ("A005", d1, d2), ("A005", d3, None),
    ]
    assert versions(tmp_path, "LOAN") == [("L001", d0, d1), ("L001", d1, d3), ("L002", d3, None)]
    assert query(tmp_path, "SELECT kyc_risk_level FROM raw.cbs_customer_versions WHERE cust_id = 'C001' "
                           "ORDER BY valid_from") == [("L",), ("M",)]

    # The unchanged day's change files exist, hold no rows, and say so in batch_log.
    for table in SNAPSHOTS:
        raw_file, stored_rows = logged_file(tmp_path, table, d4)
        assert (stored_rows, rows_in(tmp_path, raw_file)) == (0, 0), table
        assert (tmp_path / "wh" / raw_file).is_file()
    assert query(tmp_path, "SELECT batch_date, sum(stored_rows) FROM audit.batch_log "
                           "WHERE table_name = 'CBS_CUSTOMER' GROUP BY ALL ORDER BY 1") == [
        (d0, 3), (d1, 2), (d2, 1), (d3, 1), (d4, 0)]
    # Facts keep every accepted record of every day.
    assert query(tmp_path, "SELECT batch_date, count(*) FROM raw.cbs_balance GROUP BY ALL ORDER BY 1") == [
        (d, len(delivered[d]["BALANCE"])) for d in DAYS]

    assert_consistent(tmp_path, delivered)
    # A day without a batch has the state of the last loaded day before it; before the first, nothing.
    assert state(tmp_path, "CUSTOMER", d4 + dt.timedelta(days=10)) == snapshot_of(delivered[d4], "CUSTOMER")
    assert state(tmp_path, "CUSTOMER", d0 - dt.timedelta(days=1)) == set()


def test_late_batch_rediffs_the_next_loaded_date(tmp_path):
    d0, d1, d2, d3 = DAYS[:4]
    delivered = {day: history(i) for i, day in enumerate(DAYS[:4])}
    for day in (d0, d2):
        write_batch(landing(tmp_path), day, delivered[day])
    ingest(tmp_path)
    assert changes(tmp_path, "CUSTOMER", d2) == [("C001", False), ("C003", True), ("C004", False)]  # vs d0
    before = {t: logged_file(tmp_path, t, d2)[0] for t in SNAPSHOTS}
    facts_before = query(tmp_path, "SELECT table_name, raw_file FROM audit.batch_log WHERE batch_date = ? "
                                   "AND table_name NOT IN ('CBS_CUSTOMER', 'CBS_ACCOUNT', 'CBS_LOAN') ORDER BY 1",
                         [d2])

    write_batch(landing(tmp_path), d1, delivered[d1])  # arrives after d2 was loaded
    report = ingest(tmp_path)
    assert [(b.batch_date, b.outcome) for b in report.batches] == [(d0, "unchanged"), (d1, "loaded"),
                                                                    (d2, "unchanged")]
    # d1 is diffed against d0, and d2's change file is re-diffed against d1 (its old file is deleted).
    assert changes(tmp_path, "CUSTOMER", d1) == [("C001", False), ("C004", False)]
    assert changes(tmp_path, "CUSTOMER", d2) == [("C003", True)]
    assert changes(tmp_path, "ACCOUNT", d2) == [("A005", True)]
    assert changes(tmp_path, "LOAN", d2) == []
    for table in SNAPSHOTS:
        raw_file, stored_rows = logged_file(tmp_path, table, d2)
        assert raw_file != before[table] and not (tmp_path / "wh" / before[table]).exists(), table
        assert raw_file.startswith(f"raw/cbs_{table.lower()}/batch_date={d2}/"), table
        assert rows_in(tmp_path, raw_file) == stored_rows == len(changes(tmp_path, table, d2)), table
    # The later date's facts are not touched; the late date's facts are there.
    assert query(tmp_path, "SELECT table_name, raw_file FROM audit.batch_log WHERE batch_date = ? "
                           "AND table_name NOT IN ('CBS_CUSTOMER', 'CBS_ACCOUNT', 'CBS_LOAN') ORDER BY 1",
                 [d2]) == facts_before
    loaded = {d: delivered[d] for d in (d0, d1, d2)}
    assert_consistent(tmp_path, loaded)  # raw_state stays the latest date's (d2), not the late one's

    # The everyday case after a late batch: a new latest date diffs against raw_state.
    write_batch(landing(tmp_path), d3, delivered[d3])
    ingest(tmp_path, date=d3)
    assert changes(tmp_path, "CUSTOMER", d3) == [("C003", False)]
    assert_consistent(tmp_path, delivered)


def test_late_batch_before_every_loaded_date(tmp_path):
    d0, d1, d2 = DAYS[:3]
    delivered = {day: history(i) for i, day in enumerate(DAYS[:3])}
    for day in (d1, d2):
        write_batch(landing(tmp_path), day, delivered[day])
    ingest(tmp_path)
    assert len(changes(tmp_path, "CUSTOMER", d1)) == 4  # first loaded date: stored whole
    write_batch(landing(tmp_path), d0, delivered[d0])
    ingest(tmp_path, date=d0)
    assert changes(tmp_path, "CUSTOMER", d1) == [("C001", False), ("C004", False)]
    assert_consistent(tmp_path, delivered)


def test_force_replacement_of_the_latest_and_of_a_middle_date(tmp_path):
    d0, d1, d2, d3 = DAYS[:4]
    delivered = {day: history(i) for i, day in enumerate(DAYS[:3])}
    for day, rows in delivered.items():
        write_batch(landing(tmp_path), day, rows)
    ingest(tmp_path)
    old_files = set(files_on_disk(tmp_path))

    # The latest date is restated: C002's risk level H, C004 never existed, A001 closed.
    latest = history(2)
    latest["CUSTOMER"] = [r for r in latest["CUSTOMER"] if r[0] != "C004"]
    next(r for r in latest["CUSTOMER"] if r[0] == "C002")[14] = "H"
    latest["ACCOUNT"][0][5:7] = [tag(d2), "C"]
    write_batch(landing(tmp_path), d2, latest)
    refused = ingest(tmp_path, date=d2).batches[0]
    assert refused.outcome == "refused" and set(files_on_disk(tmp_path)) == old_files
    assert ingest(tmp_path, date=d2, force=True).batches[0].outcome == "replaced"
    delivered[d2] = latest
    assert changes(tmp_path, "CUSTOMER", d2) == [("C002", False), ("C003", True), ("C004", True)]
    assert_consistent(tmp_path, delivered)  # raw_state is the new d2 snapshot
    replaced = set(old_files) - set(files_on_disk(tmp_path))
    assert len(replaced) == 6 and all(f"batch_date={d2}" in f for f in replaced)  # all 6 files of d2, only

    # A middle date is restated: C001 kept its risk level L on d1, C004 not yet there.
    middle = history(1)
    next(r for r in middle["CUSTOMER"] if r[0] == "C001")[14] = "L"
    middle["CUSTOMER"] = [r for r in middle["CUSTOMER"] if r[0] != "C004"]
    write_batch(landing(tmp_path), d1, middle)
    d2_facts = query(tmp_path, "SELECT table_name, raw_file FROM audit.batch_log WHERE batch_date = ? "
                               "AND table_name IN ('CBS_BALANCE', 'CBS_TXN', 'CBS_FX_RATE') ORDER BY 1", [d2])
    before = set(files_on_disk(tmp_path))
    assert ingest(tmp_path, date=d1, force=True).batches[0].outcome == "replaced"
    delivered[d1] = middle
    assert changes(tmp_path, "CUSTOMER", d1) == []  # same customers as d0
    assert changes(tmp_path, "CUSTOMER", d2) == [("C001", False), ("C002", False), ("C003", True)]  # re-diffed
    assert versions(tmp_path, "CUSTOMER") == [
        ("C001", d0, d2), ("C001", d2, None), ("C002", d0, d2), ("C002", d2, None), ("C003", d0, d2),
    ]
    assert_consistent(tmp_path, delivered)
    gone = before - set(files_on_disk(tmp_path))
    # Superseded: the 6 files of d1 and the change files of d2's snapshot tables (re-diffed); d2's facts stay.
    assert len(gone) == 9
    assert sorted(f for f in gone if f"batch_date={d2}" in f) == sorted(
        f for f in before if f"batch_date={d2}" in f and any(f"cbs_{t.lower()}/" in f for t in SNAPSHOTS))
    assert query(tmp_path, "SELECT table_name, raw_file FROM audit.batch_log WHERE batch_date = ? "
                           "AND table_name IN ('CBS_BALANCE', 'CBS_TXN', 'CBS_FX_RATE') ORDER BY 1", [d2]) == d2_facts

    # Loading on from there uses raw_state, which must be the restated d2.
    write_batch(landing(tmp_path), d3, history(3))
    ingest(tmp_path, date=d3)
    delivered[d3] = history(3)
    assert changes(tmp_path, "CUSTOMER", d3) == [("C002", False), ("C003", False), ("C004", False)]
    assert_consistent(tmp_path, delivered)


# ------------------------------------------------------------------------------------------ commit protocol


@pytest.mark.parametrize("fail_at", ["writing a file", "committing"])
def test_a_failed_load_leaves_no_file_and_views_never_name_uncommitted_ones(tmp_path, monkeypatch, fail_at):
    d0, d1, d2 = DAYS[:3]
    deliver(tmp_path, 0, 2)
    ingest(tmp_path)
    committed = files_on_disk(tmp_path)
    views = query(tmp_path, "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'raw' ORDER BY 1")
    write_batch(landing(tmp_path), d1, history(1))  # late: its load also rewrites d2's change files
    seen = {}

    if fail_at == "writing a file":
        original = raw_zone._copy
        copies = []

        def copy(con, select_sql, target):
            copies.append(target)
            if len(copies) == 4:  # after the customer file, d2's re-diffed customer file and the account file
                seen["written"] = sorted(set(files_on_disk(tmp_path)) - set(committed))
                raise OSError("disk full")
            return original(con, select_sql, target)

        monkeypatch.setattr(raw_zone, "_copy", copy)
    else:
        original = raw_zone.apply_staged

        def apply_staged(con, warehouse, staged):
            original(con, warehouse, staged)  # batch_log rows written, views re-created: not committed yet
            seen["written"] = [p for p in staged.written if p.exists()]
            # Another connection to the same database sees the committed state only.
            with duckdb.connect(str(db(tmp_path).resolve())) as other:
                seen["views"] = other.execute("SELECT view_name, sql FROM duckdb_views() "
                                              "WHERE schema_name = 'raw' ORDER BY 1").fetchall()
                seen["load_ids"] = other.execute("SELECT DISTINCT load_id FROM audit.batch_log").fetchall()
                seen["customers"] = other.execute(state_at_sql("CUSTOMER", d1)).fetchall()
            seen["load_id"] = staged.load_id
            raise OSError("disk full")

        monkeypatch.setattr(raw_zone, "apply_staged", apply_staged)

    (result,) = [b for b in ingest(tmp_path).batches if b.batch_date == d1]
    assert result.outcome == "rejected" and "rolled back" in result.message and "disk full" in result.message
    if fail_at == "writing a file":
        assert len(seen["written"]) == 3 and sum(f"batch_date={d2}" in f for f in seen["written"]) == 1
    else:
        assert len(seen["written"]) == 6 + 3  # the batch's files and d2's re-diffed snapshot files
        assert seen["views"] == views
        assert all(seen["load_id"] not in sql for _, sql in seen["views"])
        assert (seen["load_id"],) not in seen["load_ids"]
        assert set(seen["customers"]) == snapshot_of(history(0), "CUSTOMER")  # d1 not visible: d0's state
    assert files_on_disk(tmp_path) == committed
    assert query(tmp_path, "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'raw' ORDER BY 1") == views
    assert query(tmp_path, "SELECT DISTINCT status FROM audit.batch_log WHERE batch_date = ?", [d1]) == [
        ("REJECTED",)]
    assert_consistent(tmp_path, {d0: history(0), d2: history(2)})

    monkeypatch.undo()  # the same batch loads once the failure is gone
    assert ingest(tmp_path, date=d1).batches[0].outcome == "loaded"
    assert_consistent(tmp_path, {d: history(i) for i, d in enumerate(DAYS[:3])})


CRASH = """
import datetime as dt, os, sys
from flows.stages import extracts, raw_zone

def crash(*args, **kwargs):
    os._exit(9)  # the process dies with the batch's files written and its transaction open

raw_zone.apply_staged = crash
extracts.ingest_batches(sys.argv[1], sys.argv[2], date=dt.date.fromisoformat(sys.argv[3]), wait_seconds=0)
"""


def test_orphans_of_a_crashed_load_are_removed_by_the_next_ingest(tmp_path):
    d0, d1, d2 = DAYS[:3]
    deliver(tmp_path, 0, 2)
    ingest(tmp_path)
    committed = files_on_disk(tmp_path)
    write_batch(landing(tmp_path), d1, history(1))
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), str(landing(tmp_path)),
                              str(db(tmp_path)), d1.isoformat()], cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert crashed.returncode == 9, crashed.stderr
    orphans = sorted(set(files_on_disk(tmp_path)) - set(committed))
    assert len(orphans) == 6 + 3 and set(committed) <= set(files_on_disk(tmp_path))
    # A stray file in a committed partition (e.g. a copy left by a crash after a replacement) is an orphan too.
    stray = tmp_path / "wh" / committed[0]
    shutil.copy(stray, stray.with_name("part-0123456789abcdef.parquet"))
    assert query(tmp_path, "SELECT count(*) FROM audit.batch_log WHERE batch_date = ?", [d1]) == [(0,)]
    for day, rows in {d0: history(0), d2: history(2)}.items():  # the crash changed no state
        for table in SNAPSHOTS:
            assert state(tmp_path, table, day) == snapshot_of(rows, table)

    report = ingest(tmp_path, date=d2)  # any ingest cleans up first, even one that loads nothing
    assert report.batches[0].outcome == "unchanged"
    assert files_on_disk(tmp_path) == committed
    assert ingest(tmp_path, date=d1).batches[0].outcome == "loaded"
    assert_consistent(tmp_path, {d: history(i) for i, d in enumerate(DAYS[:3])})


def test_rejected_or_refused_batches_change_nothing_on_disk(tmp_path):
    d0, d1, d2 = DAYS[:3]
    deliver(tmp_path, 0, 1)
    ingest(tmp_path)
    before = tree(tmp_path)
    logged = query(tmp_path, "SELECT * FROM audit.batch_log ORDER BY ALL")
    state_before = {t: raw_state(tmp_path, t) for t in SNAPSHOTS}

    changed = history(1)
    changed["CUSTOMER"] = changed["CUSTOMER"][:1] + changed["CUSTOMER"][2:]
    # A loaded date re-delivered with a broken control file, a new date with one, and a changed re-delivery
    # without --force (refused).
    write_batch(landing(tmp_path), d1, changed, ok_override={"TXN": {"md5": "0" * 32}})
    write_batch(landing(tmp_path), d2, history(2), ok_override={"CUSTOMER": {"records": 1}})
    assert [b.outcome for b in ingest(tmp_path, force=True).batches] == ["unchanged", "rejected", "rejected"]
    write_batch(landing(tmp_path), d1, changed)
    assert ingest(tmp_path, date=d1).batches[0].outcome == "refused"

    assert tree(tmp_path) == before  # no file written, deleted or touched, no partition folder made
    assert query(tmp_path, "SELECT * FROM audit.batch_log WHERE status = 'LOADED' ORDER BY ALL") == logged
    assert {t: raw_state(tmp_path, t) for t in SNAPSHOTS} == state_before
    assert_consistent(tmp_path, {d0: history(0), d1: history(1)})


def test_a_warehouse_of_the_old_layout_is_refused(tmp_path):
    (tmp_path / "wh").mkdir()
    with duckdb.connect(str(db(tmp_path))) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.cbs_customer (batch_date DATE, cust_id VARCHAR)")
    write_batch(landing(tmp_path), DAYS[0])
    with pytest.raises(RawZoneError, match="cbs_customer"):
        ingest(tmp_path)
    assert not (tmp_path / "wh" / "raw").exists()
    assert query(tmp_path, "SELECT count(*) FROM raw.cbs_customer") == [(0,)]  # left as found
