"""`tiering status`: loaded, failed and pending batches, read without taking the working database's lock."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import sys

import duckdb

from flows.cli import main
from flows.commands.generate import generate
from flows.commands.status import BUSY, collect_status
from flows.settings import Settings
from flows.stages.extracts import ingest_batches

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]


def test_status_reports_loaded_rejected_and_pending_batches(tmp_path, capsys):
    landing, settings = tmp_path / "landing", Settings.from_env(warehouse=tmp_path / "warehouse")
    generate(landing, 30, DAYS[0], DAYS[-1], seed=3)
    settings.warehouse.mkdir()

    assert collect_status(settings, landing).pending == DAYS  # nothing loaded yet
    ingest_batches(landing, settings.working_db, through=DAYS[0], wait_seconds=0)
    # Day 2 arrives with a data file that no longer matches its control totals.
    dat = landing / "20260102" / "CBS_TXN_20260102.dat"
    dat.write_bytes(dat.read_bytes() + b"X")
    ingest_batches(landing, settings.working_db, through=DAYS[1], wait_seconds=0)

    status = collect_status(settings, landing)
    assert status.loaded["dates"] == 1 and status.loaded["first"] == DAYS[0]
    assert status.pending == DAYS[1:]  # the rejected date is still to be loaded
    assert {b["batch_date"] for b in status.failed_batches} == {DAYS[1]}
    assert all(b["status"] == "REJECTED" for b in status.failed_batches)
    assert status.last_release is None and "nothing published yet" in status.notes

    assert main(["status", "--landing", str(landing), "--warehouse", str(settings.warehouse)]) == 0
    out = capsys.readouterr().out
    assert "loaded: 1 batch dates" in out and "FAILED 2026-01-02" in out and "CBS_TXN_20260102.dat" in out
    assert "pending in landing: 2 — 20260102, 20260103" in out


def _hold(code: str, *args: str) -> subprocess.Popen:
    """Another process running `code` (which prints "ok" once it holds what it takes) with `args`."""
    holder = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ok"
    return holder


def test_status_while_a_run_holds_the_warehouse_claims_nothing_pending(tmp_path, capsys):
    """A served run's first minutes: it holds the warehouse and has not written the working database yet, so
    every landing folder looks unloaded; status must say the batch states are unknown, not list them as pending."""
    settings = Settings.from_env(warehouse=tmp_path / "warehouse")
    landing = tmp_path / "landing"
    generate(landing, 10, DAYS[0], DAYS[0], seed=3)
    holder = _hold("import sys, time; from flows.warehouse_lock import warehouse_lock\n"
                   "with warehouse_lock(sys.argv[1], 'tiering-run flow (2026-01)'):\n"
                   "    print('ok', flush=True); time.sleep(30)", str(settings.warehouse))
    try:
        status = collect_status(settings, landing)
        assert status.pending is None and status.loaded is None and not status.failed_batches
        assert main(["status", "--landing", str(landing), "--warehouse", str(settings.warehouse)]) == 0
        out = capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    assert re.search(r"running now: a run holds the working database \(`tiering-run flow \(2026-01\)`, "
                     rf"pid {holder.pid} on .+, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(Asia/Shanghai, "
                     r"UTC\+08:00\)\): batch states unknown until it finishes", out), out
    assert "pending in landing" not in out
    assert "no working database yet" not in out  # the run may be creating it


def test_status_while_another_process_has_the_working_database_open(tmp_path, capsys):
    """No run, but the working database is open for writing elsewhere (a duckdb shell): unknown, not pending."""
    settings = Settings.from_env(warehouse=tmp_path / "warehouse")
    landing = tmp_path / "landing"
    generate(landing, 10, DAYS[0], DAYS[0], seed=3)
    ingest_batches(landing, settings.working_db, wait_seconds=0)
    holder = _hold("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(30)",
                   str(settings.working_db))
    try:
        status = collect_status(settings, landing)
        assert BUSY in status.notes and status.loaded is None and status.running is None
        assert status.pending is None  # a loaded batch must not be shown as pending
        assert main(["status", "--landing", str(landing), "--warehouse", str(settings.warehouse)]) == 0
        out = capsys.readouterr().out
        assert f"note: {BUSY}" in out and "pending in landing" not in out
    finally:
        holder.kill()
        holder.wait()


def test_status_lists_built_months_and_the_months_a_redelivery_restates(tmp_path, capsys):
    """Two complete months, built; a batch of the first month re-delivered since → both are to build again."""
    from flows.stages.month_plan import record_month_build

    landing, settings = tmp_path / "landing", Settings.from_env(warehouse=tmp_path / "warehouse")
    generate(landing, 20, dt.date(2026, 1, 1), dt.date(2026, 2, 28), seed=5)
    settings.warehouse.mkdir()
    ingest_batches(landing, settings.working_db, wait_seconds=0)
    built_at = dt.datetime.now()
    for month in (dt.date(2026, 1, 31), dt.date(2026, 2, 28)):
        with duckdb.connect(str(settings.working_db), read_only=True) as con:
            loaded = con.execute("select max(finished_at) from audit.batch_log where batch_date <= ?",
                                 [month]).fetchone()[0]
        record_month_build(settings.working_db, month, loaded, "v1", settings.rules_path, False, built_at)
    status = collect_status(settings)
    assert status.built_months == [dt.date(2026, 1, 31), dt.date(2026, 2, 28)]
    assert status.months_to_build == [] and status.raw_bytes > 0

    # 2026-01-20 is re-delivered with one balance changed and replaced with --force.
    dat = landing / "20260120" / "CBS_BALANCE_20260120.dat"
    lines = dat.read_bytes().split(b"\n")
    fields = lines[0].split(b"|")
    fields[2] = b"123.45"
    lines[0] = b"|".join(fields)
    data = b"\n".join(lines)
    dat.write_bytes(data)
    ok = dat.with_suffix(".ok")
    encoding = ok.read_text().strip().split("|")[4]
    records = data.count(b"\n")
    ok.write_text(f"{dat.name}|{records}|{len(data)}|{hashlib.md5(data).hexdigest()}|{encoding}\n")
    report = ingest_batches(landing, settings.working_db, date=dt.date(2026, 1, 20), force=True, wait_seconds=0)
    assert report.batches[0].outcome == "replaced"
    assert collect_status(settings).months_to_build == [dt.date(2026, 1, 31), dt.date(2026, 2, 28)]
    assert main(["status", "--warehouse", str(settings.warehouse)]) == 0
    out = capsys.readouterr().out
    assert "built: 2 month(s), 2026-01 … 2026-02" in out and "to build at the next run: 2026-01, 2026-02" in out
