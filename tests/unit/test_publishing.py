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
from flows.lib.publishing import (
    AML_TABLES,
    FORBIDDEN_COLUMNS,
    PUBLISHED_TABLES,
    PublishFailed,
    PublishRefused,
)
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


# --- The confidential AML marts: never in published.duckdb, released to restricted/aml.duckdb together ---

AML_SQL = """
CREATE TABLE main_marts.aml_customer_risk AS
    SELECT as_of_month, cust_id, CASE WHEN cust_id = 'P001' THEN 'HIGH' ELSE 'LOW' END AS aml_level,
           CASE WHEN cust_id = 'P001' THEN 'CASH_LARGE' ELSE '' END AS aml_triggers
    FROM main_marts.customer_segment;
CREATE TABLE main_marts.aml_trigger_transactions AS
    SELECT as_of_month, cust_id, 'CASH_LARGE' AS trigger, 'T' || cust_id AS txn_id,
           (as_of_month::TIMESTAMP) AS txn_time, 'DEP' AS txn_type, CAST(60000 AS DECIMAL(18, 2)) AS amount,
           'CNY' AS currency, CAST(60000 AS DECIMAL(38, 8)) AS amount_cny, NULL::VARCHAR AS counterparty_country
    FROM main_marts.customer_segment WHERE cust_id = 'P001';
"""


@pytest.fixture
def aml_warehouse(warehouse: Path) -> Path:
    working(warehouse, AML_SQL)
    return warehouse


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_aml_marts_go_to_the_restricted_release_only(aml_warehouse: Path) -> None:
    release = publish_flow.fn(str(aml_warehouse), AS_OF, "gate-ok")
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    assert release.restricted_db == restricted
    assert release.restricted_row_counts == {"aml_customer_risk": 10, "aml_trigger_transactions": 2}
    published_tables = {r[0] for r in read_in_new_process(
        aml_warehouse / "published.duckdb", "SELECT table_name FROM information_schema.tables")}
    assert published_tables == {*PUBLISHED_TABLES, "release_log"}
    assert published_tables.isdisjoint(AML_TABLES)
    assert _mode(restricted.parent) == 0o700 and _mode(restricted) == 0o600
    assert not list(restricted.parent.glob("*.tmp*"))
    assert {r[0] for r in read_in_new_process(
        restricted, "SELECT table_name FROM information_schema.tables")} == {*AML_TABLES, "release_log"}
    assert read_in_new_process(restricted, "SELECT count(*) FROM aml_customer_risk") == [[10]]
    log = read_in_new_process(restricted, "SELECT release_id, as_of_month, gate_run_id, "
                                          "aml_customer_risk_rows, aml_trigger_transactions_rows FROM release_log")
    assert log == [[release.release_id, "2026-10-31", "gate-ok", 10, 2]]
    main_log = read_in_new_process(aml_warehouse / "published.duckdb", "SELECT release_id FROM release_log")
    assert main_log == [[release.release_id]]
    assert not {p.stem for p in (aml_warehouse / "exports").iterdir()} & set(AML_TABLES)


def test_second_release_keeps_the_aml_log_and_tightens_modes(aml_warehouse: Path) -> None:
    first = publish_flow.fn(str(aml_warehouse), AS_OF, "gate-ok")
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    restricted.parent.chmod(0o755)  # someone widened it: the next release puts 0700 back
    second = publish_flow.fn(str(aml_warehouse), AS_OF, "gate-ok")
    assert _mode(restricted.parent) == 0o700 and _mode(restricted) == 0o600
    assert read_in_new_process(restricted, "SELECT release_id FROM release_log ORDER BY published_at") == [
        [first.release_id], [second.release_id]]


def test_without_aml_marts_the_restricted_release_is_skipped(warehouse: Path, caplog) -> None:
    with caplog.at_level("INFO"):
        release = publish_flow.fn(str(warehouse), AS_OF, "gate-ok")
    assert release.restricted_db is None and release.restricted_row_counts == {}
    assert not (warehouse / "restricted").exists()
    assert "restricted AML release skipped" in caplog.text


@pytest.mark.parametrize(("breakage", "message"), [
    # The main release fails: the AML release is not replaced either.
    ("DROP TABLE main_marts.tier_migration", "tier_migration"),
    # The AML release fails: the main release is not replaced either.
    ("ALTER TABLE main_marts.aml_customer_risk ADD COLUMN cert_no VARCHAR", "AML release"),
    ("DROP TABLE main_marts.aml_trigger_transactions", "incomplete"),
])
def test_a_failure_leaves_both_releases_byte_for_byte(aml_warehouse: Path, breakage: str, message: str) -> None:
    publish_flow.fn(str(aml_warehouse), AS_OF, "gate-ok")
    published, restricted = aml_warehouse / "published.duckdb", aml_warehouse / "restricted" / "aml.duckdb"
    before = (sha256(published), sha256(restricted))
    exports = {p.name: sha256(p) for p in (aml_warehouse / "exports").iterdir()}
    working(aml_warehouse, breakage)
    with pytest.raises(PublishFailed, match=message):
        publish_flow.fn(str(aml_warehouse), AS_OF, "gate-ok")
    assert (sha256(published), sha256(restricted)) == before
    assert {p.name: sha256(p) for p in (aml_warehouse / "exports").iterdir()} == exports
    assert sorted(p.name for p in restricted.parent.iterdir()) == ["aml.duckdb"]
    assert not (aml_warehouse / "published.duckdb.tmp").exists()


def test_confidential_tables_in_the_main_release_are_refused(tmp_path: Path) -> None:
    from flows.lib.publishing import _verify

    candidate = tmp_path / "published.duckdb.tmp"
    con = duckdb.connect(str(candidate))
    con.execute("CREATE TABLE release_log (release_id VARCHAR); INSERT INTO release_log VALUES ('r1'); "
                "CREATE TABLE aml_customer_risk (cust_id VARCHAR)")
    con.close()
    with pytest.raises(PublishFailed, match="confidential AML tables in the general release: aml_customer_risk"):
        _verify(candidate, {}, "r1")
