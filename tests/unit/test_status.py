"""`tiering status`: loaded, failed and pending batches, read without taking the working database's lock."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import duckdb

from flows.cli import main
from flows.generate import generate
from flows.lib.extracts import ingest_batches
from flows.lib.status import BUSY, collect_status
from flows.settings import Settings

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


def test_status_while_a_pipeline_holds_the_working_database(tmp_path):
    settings = Settings.from_env(warehouse=tmp_path)
    duckdb.connect(str(settings.working_db)).close()
    # Another process holds the write lock, as a running pipeline would.
    holder = subprocess.Popen([sys.executable, "-c",
                               "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
                               "time.sleep(30)", str(settings.working_db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        status = collect_status(settings)
        assert BUSY in status.notes and status.loaded is None
    finally:
        holder.kill()
        holder.wait()
