"""Write-audit-publish: a release replaces published.duckdb atomically, or leaves it byte for byte."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

import flows  # noqa: F401  (no-telemetry environment before Prefect loads)
from flows.lib.publishing import FORBIDDEN_COLUMNS, PUBLISHED_TABLES, PublishFailed, PublishRefused
from flows.publish import publish_flow

AS_OF = "2026-10-31"

WORKING_SQL = """
CREATE SCHEMA main_marts; CREATE SCHEMA gate;
CREATE TABLE main_marts.customer_segment AS
    SELECT m::DATE AS as_of_month, 'P' || lpad(i::VARCHAR, 3, '0') AS cust_id, 'P' AS cust_type,
           '张*' AS cust_name_masked, '110***********1234' AS cert_no_masked, '138****5678' AS mobile_masked,
           CAST(i * 1000.25 AS DECIMAL(18, 2)) AS avg_daily_aum_cny, 'NONCORE' AS value_tier,
           'cib_monthly' AS rule_set, 'cib_monthly/2026.11.1' AS rule_set_version,
           '2026.11.1' AS rules_version
    FROM range(5) AS r(i), (VALUES (DATE '2026-09-30'), (DATE '2026-10-31')) AS months(m);
CREATE TABLE main_marts.customer_tier AS
    SELECT as_of_month, cust_id, rs AS rule_set, value_tier AS tier FROM main_marts.customer_segment,
           (VALUES ('cib_monthly'), ('abc_quarterly')) AS x(rs);
CREATE TABLE main_marts.tier_summary AS
    SELECT as_of_month, rule_set, tier, count(*) AS customers FROM main_marts.customer_tier GROUP BY ALL;
CREATE TABLE main_marts.tier_migration AS
    SELECT as_of_month, rule_set, NULL::VARCHAR AS from_tier, tier AS to_tier, count(*) AS customers
    FROM main_marts.customer_tier GROUP BY ALL;
CREATE TABLE gate.run (gate_run_id VARCHAR, as_of_month DATE, started_at TIMESTAMP, finished_at TIMESTAMP,
    success BOOLEAN, blocking_failures INTEGER);
INSERT INTO gate.run VALUES
    ('gate-ok', DATE '2026-10-31', now()::TIMESTAMP, now()::TIMESTAMP, TRUE, 0),
    ('gate-failed', DATE '2026-10-31', now()::TIMESTAMP, now()::TIMESTAMP, FALSE, 2),
    ('gate-september', DATE '2026-09-30', now()::TIMESTAMP, now()::TIMESTAMP, TRUE, 0);
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    root = tmp_path / "warehouse"
    root.mkdir()
    con = duckdb.connect(str(root / "tiering.duckdb"))
    con.execute(WORKING_SQL)
    con.close()
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def working(warehouse: Path, *statements: str) -> None:
    con = duckdb.connect(str(warehouse / "tiering.duckdb"))
    for sql in statements:
        con.execute(sql)
    con.close()


def read_in_new_process(db: Path, sql: str) -> list:
    """What a consumer that opens the file now (another process, read-only) sees."""
    code = ("import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall(), default=str))")
    out = subprocess.run([sys.executable, "-c", code, str(db), sql], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def test_publish_writes_release_log_exports_and_no_personal_data(warehouse: Path) -> None:
    release = publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    published = warehouse / "published.duckdb"
    assert release.published_db == published and release.as_of_month == date(2026, 10, 31)
    assert release.row_counts == {"customer_segment": 10, "customer_tier": 20, "tier_summary": 4,
                                  "tier_migration": 4}
    assert (release.rules_version, release.rule_set, release.rule_set_version) == (
        "2026.11.1", "cib_monthly", "cib_monthly/2026.11.1")
    assert not (warehouse / "published.duckdb.tmp").exists()
    con = duckdb.connect(str(published), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert tables == {*PUBLISHED_TABLES, "release_log"}
        for table, count in release.row_counts.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == count
        log = con.execute("SELECT release_id, as_of_month, gate_run_id, rule_set, customer_segment_rows "
                          "FROM release_log").fetchall()
        assert log == [(release.release_id, date(2026, 10, 31), "gate-ok", "cib_monthly", 10)]
        columns = {r[0] for r in con.execute("SELECT lower(column_name) FROM information_schema.columns")
                   .fetchall()}
        assert columns.isdisjoint(FORBIDDEN_COLUMNS)
    finally:
        con.close()
    for table in PUBLISHED_TABLES:
        path = warehouse / "exports" / f"{table}.parquet"
        assert release.exports[table] == path
        exported = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
        assert exported == release.row_counts[table]
    assert not list((warehouse / "exports").glob("*.tmp"))


def test_readers_of_the_old_release_keep_it_while_a_new_one_is_published(warehouse: Path) -> None:
    first = publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    published = warehouse / "published.duckdb"
    reader = duckdb.connect(str(published), read_only=True)
    try:
        assert reader.execute("SELECT count(*) FROM customer_segment").fetchone()[0] == 10
        working(warehouse, "INSERT INTO main_marts.customer_segment SELECT * REPLACE ('P999' AS cust_id) "
                           "FROM main_marts.customer_segment "
                           "WHERE cust_id = 'P001' AND as_of_month = '2026-10-31'")
        second = publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
        # The open reader still sees the whole old release, consistently.
        assert reader.execute("SELECT count(*) FROM customer_segment").fetchone()[0] == 10
        assert reader.execute("SELECT release_id FROM release_log").fetchall() == [(first.release_id,)]
    finally:
        reader.close()
    # A consumer opening the file now gets the new release, with the log of both.
    assert read_in_new_process(published, "SELECT count(*) FROM customer_segment") == [[11]]
    assert read_in_new_process(published, "SELECT release_id FROM release_log ORDER BY published_at") == [
        [first.release_id], [second.release_id]]


@pytest.mark.parametrize(("gate_run_id", "reason"), [
    ("gate-unknown", "not found"),
    ("gate-failed", "failed"),
    ("gate-september", "validated 2026-09"),
])
def test_publication_is_refused_without_a_passing_gate_for_the_month(
        warehouse: Path, gate_run_id: str, reason: str) -> None:
    publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    before = sha256(warehouse / "published.duckdb")
    with pytest.raises(PublishRefused, match=reason):
        publish_flow.fn(str(warehouse), AS_OF, gate_run_id)
    assert sha256(warehouse / "published.duckdb") == before


def test_refused_without_any_gate_run_and_nothing_is_created(warehouse: Path) -> None:
    working(warehouse, "DROP TABLE gate.run")
    with pytest.raises(PublishRefused):
        publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    assert not (warehouse / "published.duckdb").exists()


@pytest.mark.parametrize(("breakage", "message"), [
    ("DROP TABLE main_marts.tier_migration", "tier_migration"),
    ("ALTER TABLE main_marts.customer_segment ADD COLUMN cust_name VARCHAR", "unmasked personal data"),
    ("INSERT INTO main_marts.customer_segment (as_of_month, cust_id, cust_type) "
     "VALUES (DATE '2026-11-30', 'P001', 'P')", "not at the gated month"),
])
def test_failed_publication_leaves_the_release_byte_for_byte(
        warehouse: Path, breakage: str, message: str) -> None:
    publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    published = warehouse / "published.duckdb"
    exports = {p.name: sha256(p) for p in (warehouse / "exports").iterdir()}
    before = sha256(published)
    working(warehouse, breakage)
    with pytest.raises(PublishFailed, match=message):
        publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    assert sha256(published) == before
    assert {p.name: sha256(p) for p in (warehouse / "exports").iterdir()} == exports
    assert not (warehouse / "published.duckdb.tmp").exists()
