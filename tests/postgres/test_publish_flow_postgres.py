"""The publish flow with TIERING_PUBLISH_POSTGRES set: the release lands in DuckDB and PostgreSQL alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from flows.cli import _use_postgres

pytestmark = pytest.mark.postgres


def test_cli_option_travels_in_the_environment_not_as_a_parameter(monkeypatch):
    # setenv first so that monkeypatch restores the variable's absence after _use_postgres sets it.
    monkeypatch.setenv("TIERING_PUBLISH_POSTGRES", "")
    _use_postgres("postgresql://pub:secret@127.0.0.1:1/bi")
    from flows.settings import Settings

    settings = Settings.from_env()
    assert settings.publish_postgres == "postgresql://pub:secret@127.0.0.1:1/bi"
    assert "secret" not in repr(settings)


def test_publish_flow_also_publishes_to_postgres(published_warehouse, postgres_url, tmp_path: Path,
                                                 monkeypatch, prefect_harness):
    import psycopg

    from flows.stages.publish import publish_flow
    from tests.support.isolation import settings_for

    _, source, as_of = published_warehouse
    warehouse = tmp_path / "warehouse"
    shutil.copytree(source, warehouse)
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        (gate_run_id,) = con.execute("SELECT gate_run_id FROM gate.run WHERE success AND as_of_month = ? "
                                     "ORDER BY started_at DESC LIMIT 1", [as_of]).fetchone()
    monkeypatch.setenv("TIERING_PUBLISH_POSTGRES", postgres_url)

    release = publish_flow(as_of=as_of, settings=settings_for(warehouse=warehouse), gate_run_id=gate_run_id)

    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        expected = con.execute("SELECT count(*), sum(avg_daily_aum_cny) FROM customer_segment").fetchone()
        writers = con.execute("SELECT table_name, as_of_month, release_id FROM release_months").fetchall()
    with psycopg.connect(postgres_url) as pg:
        released = pg.execute("SELECT release_id FROM tiering.release_log ORDER BY published_at DESC "
                              "LIMIT 1").fetchone()[0]
        copied = pg.execute("SELECT count(*), sum(avg_daily_aum_cny) FROM tiering.customer_segment").fetchone()
        copied_writers = pg.execute("SELECT table_name, as_of_month, release_id FROM tiering.release_months"
                                    ).fetchall()
    assert released == release.release_id
    assert copied == expected  # exact: NUMERIC sum equals the DuckDB DECIMAL sum
    assert sorted(copied_writers) == sorted(writers)  # which release wrote each month, as in the catalog
