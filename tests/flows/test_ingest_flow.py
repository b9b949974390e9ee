"""The `ingest` Prefect flow, run for real on a temporary Prefect server."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from flows.settings import Settings
from flows.stages.extracts import IngestError
from flows.stages.ingest import ingest_flow
from tests.support.batches import write_batch
from tests.support.isolation import settings_for

D = dt.date(2025, 3, 31)


def no_wait(warehouse) -> Settings:
    """The warehouse's settings without the bounded wait for late .ok files."""
    return settings_for(warehouse=warehouse, ok_wait_seconds=0)


def test_flow_loads_good_batches_and_fails_naming_a_bad_one(prefect_harness, tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    write_batch(landing, D)
    report = ingest_flow(landing=str(landing), settings=no_wait(warehouse), through=D)
    assert [(b.batch_date, b.outcome) for b in report.batches] == [(D, "loaded")]
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.cbs_balance").fetchone() == (5,)

    write_batch(landing, D + dt.timedelta(days=1), ok_override={"TXN": {"md5": "0" * 32}})
    state = ingest_flow(landing=str(landing), settings=no_wait(warehouse), return_state=True)
    assert state.is_failed() and issubclass(IngestError, RuntimeError)
    with pytest.raises(IngestError, match=r"2025-04-01 rejected: CBS_TXN_20250401\.dat: control totals"):
        state.result()
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT DISTINCT status FROM audit.batch_log WHERE batch_date = ?", [D + dt.timedelta(days=1)]
        ).fetchall() == [("REJECTED",)]
        assert con.execute("SELECT count(*) FROM raw.cbs_balance").fetchone() == (5,)


def test_flow_reports_batches_done_of_n_and_logs_each_batch_as_it_loads(prefect_harness, tmp_path, caplog):
    from flows.reports import progress

    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    days = [D + dt.timedelta(days=i) for i in range(3)]
    for day in days:
        write_batch(landing, day)
    reports: list[tuple[str, int, int | None]] = []
    with caplog.at_level("INFO"), progress.reporting_to(lambda *report: reports.append(report)):
        ingest_flow(landing=str(landing), settings=no_wait(warehouse))
    assert reports == [("ingest batches", n, 3) for n in range(4)]
    loaded = [r.getMessage() for r in caplog.records if " loaded: " in r.getMessage()]
    assert [line[:10] for line in loaded] == [f"{d:%Y-%m-%d}" for d in days]
