"""publish_to_postgres against a real PostgreSQL server: exact copy month by month, read-only role, one
transaction, the full rebuild on a contract change."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from psycopg import errors

from flows.adapters.postgres_publish import (
    RELEASE_TABLES,
    PostgresPublishFailed,
    publish_to_postgres,
    redact_url,
)
from flows.stages.publishing import PUBLISHED_TABLES
from tests.postgres.releases import MONTHS, Releases

pytestmark = pytest.mark.postgres


# --- helpers -------------------------------------------------------------------------------------------


def duckdb_rows(db: Path, table: str) -> tuple[list[str], list[tuple]]:
    """A table of the catalog as PostgreSQL mirrors it (release_months without its file paths)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        result = con.execute(f"SELECT * EXCLUDE (file) FROM main.{table}" if table == "release_months"
                             else f"SELECT * FROM main.{table}")
        return [d[0] for d in result.description], result.fetchall()
    finally:
        con.close()


def postgres_rows(url: str, table: str, schema: str = "tiering") -> tuple[list[str], list[tuple]]:
    with psycopg.connect(url) as con:
        cur = con.execute(f'SELECT * FROM "{schema}"."{table}"')
        return [d.name for d in cur.description], cur.fetchall()


def assert_mirrors(db: Path, url: str) -> None:
    """PostgreSQL holds exactly the catalog's tables: same columns, same rows (as multisets)."""
    for table in RELEASE_TABLES:
        duck_columns, duck = duckdb_rows(db, table)
        pg_columns, pg = postgres_rows(url, table)
        assert pg_columns == duck_columns, table
        assert Counter(pg) == Counter(duck), table


def served_state(url: str) -> dict:
    """Everything a consumer can see, down to the physical row versions (xmin, ctid) of every row."""
    with psycopg.connect(url) as con:
        tables = sorted(r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'tiering'").fetchall())
        return {
            "tables": tables,
            "rows": {t: sorted(con.execute(f'SELECT xmin::text, ctid::text, * FROM tiering."{t}"').fetchall(),
                               key=repr) for t in tables},
            "aum": con.execute("SELECT sum(avg_daily_aum_cny) FROM tiering.customer_segment").fetchone()[0],
        }


def row_versions(url: str) -> dict[tuple[str, dt.date], set[tuple[str, str]]]:
    """(table, month) → the (xmin, ctid) of its rows: a rewritten row gets new ones."""
    versions: dict[tuple[str, dt.date], set[tuple[str, str]]] = {}
    with psycopg.connect(url) as con:
        for table in PUBLISHED_TABLES:
            for month, xmin, ctid in con.execute(
                    f"SELECT as_of_month, xmin::text, ctid::text FROM tiering.{table}").fetchall():
                versions.setdefault((table, month), set()).add((xmin, ctid))
    return versions


def writers(url: str) -> dict[tuple[str, dt.date], str]:
    with psycopg.connect(url) as con:
        return {(t, m): r for t, m, r in con.execute(
            "SELECT table_name, as_of_month, release_id FROM tiering.release_months").fetchall()}


def month_rows(db: Path, table: str, month: dt.date) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table} WHERE as_of_month = ?", [month]).fetchone()[0]
    finally:
        con.close()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A local port that is bound but not listening: a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def waits_on_a_lock(admin_url: str, pid: int, timeout_s: float = 20) -> bool:
    """True once backend `pid` is seen waiting for a lock (pg_stat_activity), False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(admin_url, autocommit=True) as con:
        while time.monotonic() < deadline:
            waiting = con.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                  [pid]).fetchone()
            if waiting and waiting[0]:
                return True
            time.sleep(0.05)
    return False


def login_role(admin_url: str, name: str, password: str, member_of: str | None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f"DROP ROLE IF EXISTS {name}")
        con.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        if member_of:
            con.execute(f"GRANT {member_of} TO {name}")


def as_user(url: str, user: str, password: str) -> str:
    return url.replace("tiering_admin:admin-secret", f"{user}:{password}")


# A consumer's view of the release in ONE statement: latest release, rows, money, writers of the months.
READ = ("SELECT (SELECT release_id FROM tiering.release_log ORDER BY published_at DESC LIMIT 1), "
        "(SELECT count(*) FROM tiering.customer_segment), "
        "(SELECT sum(avg_daily_aum_cny) FROM tiering.customer_segment), "
        "(SELECT sum(customers) FROM tiering.tier_summary), "
        "(SELECT string_agg(release_id, ',' ORDER BY table_name, as_of_month) FROM tiering.release_months)")


def expected_read(db: Path) -> tuple:
    """What READ must return for the release of catalog `db`."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(READ.replace("tiering.", "")).fetchone()
    finally:
        con.close()


@pytest.fixture
def releases(tmp_path: Path) -> Releases:
    """A catalog whose first release holds January to March 2026 (written at once)."""
    made = Releases(tmp_path)
    made.publish(*MONTHS[:3])
    return made


@pytest.fixture
def release_db(releases: Releases) -> Path:
    return releases.published_db


# --- the first publication -----------------------------------------------------------------------------


def test_first_publication_copies_the_release_whole_and_exact(releases, postgres_url):
    publication = publish_to_postgres(releases.published_db, postgres_url)

    assert publication.mode == "first"
    assert publication.months_written == MONTHS[:3] and publication.months_deleted == ()
    assert publication.schema == "tiering" and publication.reader_role == "tiering_reader"
    assert "admin-secret" not in publication.target and ":***@" in publication.target
    assert_mirrors(releases.published_db, postgres_url)
    for table in RELEASE_TABLES:
        assert publication.row_counts[table] == len(duckdb_rows(releases.published_db, table)[1]), table
    assert publication.rows_written == publication.row_counts
    assert served_state(postgres_url)["tables"] == sorted(RELEASE_TABLES)  # no __incoming left
    assert set(writers(postgres_url).values()) == {publication.release_id}


def test_money_stays_exact_numeric_and_months_are_indexed(release_db, postgres_url):
    publish_to_postgres(release_db, postgres_url)

    with psycopg.connect(postgres_url) as con:
        types = dict(con.execute(
            "SELECT table_name || '.' || column_name, format_type(a.atttypid, a.atttypmod) "
            "FROM information_schema.columns c JOIN pg_attribute a "
            "ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass "
            "AND a.attname = c.column_name "
            "WHERE c.table_schema = 'tiering'").fetchall())
        pg_total, pg_sample = con.execute(
            "SELECT sum(avg_daily_aum_cny), (SELECT avg_daily_aum_cny FROM tiering.customer_segment "
            "WHERE avg_daily_aum_cny <> round(avg_daily_aum_cny) ORDER BY cust_id, as_of_month LIMIT 1) "
            "FROM tiering.customer_segment").fetchone()
        indexes = dict(con.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'tiering'"
                                   ).fetchall())
    assert types["customer_segment.avg_daily_aum_cny"] == "numeric(18,2)"
    assert types["tier_summary.total_avg_daily_aum_cny"] == "numeric(38,2)"
    assert types["tier_summary.share_of_customers"] == "numeric(9,6)"
    assert types["customer_segment.as_of_month"] == "date"
    assert types["customer_segment.on_watch"] == "boolean"
    assert types["customer_segment.cust_id"] == "text"
    assert types["release_log.published_at"] == "timestamp without time zone"
    assert types["release_log.customer_segment_rows"] == "bigint"
    assert types["release_months.rows"] == "bigint" and "release_months.file" not in types
    con = duckdb.connect(str(release_db), read_only=True)
    duck_total, duck_sample = con.execute(
        "SELECT sum(avg_daily_aum_cny), (SELECT avg_daily_aum_cny FROM customer_segment "
        "WHERE avg_daily_aum_cny <> round(avg_daily_aum_cny) ORDER BY cust_id, as_of_month LIMIT 1) "
        "FROM customer_segment").fetchone()
    con.close()
    assert isinstance(pg_total, Decimal) and pg_total == duck_total
    assert pg_sample == duck_sample and pg_sample.as_tuple().exponent == -2
    # Every month is deleted and checked through an index, whatever the number of months held.
    assert "(as_of_month, cust_id)" in indexes["customer_segment_pkey"]
    assert "(as_of_month, cust_id, rule_set)" in indexes["customer_tier_pkey"]
    assert "(as_of_month, rule_set, tier)" in indexes["tier_summary_pkey"]
    assert "(as_of_month)" in indexes["tier_migration_as_of_month_idx"]
    assert "(table_name, as_of_month)" in indexes["release_months_pkey"]
    assert "(release_id, published_at)" in indexes["release_log_pkey"]


def hand_made_catalog(db: Path) -> list[tuple]:
    """A catalog with edge values of every mapped DuckDB type (HUGEINT, µs, CJK, NULL …) in two months.

    Its views read tables of the same file (Parquet would store HUGEINT as DOUBLE); release_months says
    release r1 wrote both months. Returns customer_segment's rows.
    """
    con = duckdb.connect(str(db))
    con.execute("""
        CREATE TABLE segment_rows AS SELECT * FROM (VALUES
            (DATE '2026-03-31', '张三 🐉', '9999999999999999.99'::DECIMAL(18,2), 0.1::DOUBLE,
             170141183460469231731687303715884105727::HUGEINT, 9223372036854775807::BIGINT,
             2147483647::INTEGER, true, TIMESTAMP '2026-04-01 08:09:10.123456', 0.000001::DECIMAL(9,6),
             18446744073709551615::UBIGINT, 0.1::FLOAT, 127::TINYINT, 65535::USMALLINT, 4294967295::UINTEGER,
             TIME '23:59:59.999999', TIMESTAMPTZ '2026-01-01 10:00:00+08',
             '5f1c6c1e-8d3a-4a8e-9a53-2f6f5d4b0c11'::UUID, '\\xAA\\x00\\xFF'::BLOB),
            (DATE '2026-02-28', '', -0.01::DECIMAL(18,2), -1e300::DOUBLE, -1::HUGEINT, NULL, NULL, NULL, NULL,
             NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
        ) AS t(as_of_month, name, amount, ratio, huge, big, small, flag, stamped_at, share, unsigned,
               single, tiny, ushort, uint, clock, stamped_tz, id, payload)
    """)
    con.execute("CREATE VIEW customer_segment AS SELECT * FROM segment_rows")
    for table in ("customer_tier", "tier_summary", "tier_migration", "customer_event"):
        con.execute(f"CREATE VIEW {table} AS SELECT DATE '2026-03-31' AS as_of_month, 1::BIGINT AS customers "
                    "WHERE false")
    con.execute("CREATE TABLE release_log AS SELECT 'r1' AS release_id, DATE '2026-03-31' AS as_of_month, "
                "TIMESTAMP '2026-04-01 10:00:00' AS published_at")
    con.execute("CREATE TABLE release_months AS SELECT 'customer_segment' AS table_name, as_of_month, "
                "'r1' AS release_id, 'gate-1' AS gate_run_id, TIMESTAMP '2026-04-01 10:00:00' AS published_at, "
                "count(*) AS rows, 'releases/r1/customer_segment' AS file FROM segment_rows GROUP BY ALL")
    expected = con.execute("SELECT * FROM customer_segment").fetchall()
    con.close()
    return expected


def test_every_mapped_type_round_trips(tmp_path, postgres_url):
    db = tmp_path / "published.duckdb"
    expected = hand_made_catalog(db)

    publication = publish_to_postgres(db, postgres_url, schema="bi tiering", reader_role="bi-reader")

    assert publication.row_counts == {"customer_segment": 2, "customer_tier": 0, "tier_summary": 0,
                                      "tier_migration": 0, "customer_event": 0, "release_log": 1,
                                      "release_months": 2}
    _columns, rows = postgres_rows(postgres_url, "customer_segment", schema="bi tiering")

    def as_float32(row: tuple) -> tuple:
        # real arrives as text "0.1", DuckDB hands over 0.10000000149011612: the same 4-byte float.
        single = row[11] if row[11] is None else struct.unpack("f", struct.pack("f", row[11]))[0]
        return (*row[:11], single, *row[12:])

    assert Counter(map(as_float32, rows)) == Counter(map(as_float32, expected))
    first = next(r for r in rows if r[1] == "张三 🐉")
    assert first[4] == Decimal("170141183460469231731687303715884105727") and first[3] == 0.1
    assert first[2].as_tuple().exponent == -2 and first[9] == Decimal("0.000001")
    assert first[16] == dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC) and first[18] == b"\xaa\x00\xff"

    # Release r2 rewrites March: the incremental path copies and checks every type the same way.
    con = duckdb.connect(str(db))
    con.execute("UPDATE segment_rows SET amount = amount - 0.01 WHERE as_of_month = DATE '2026-03-31'")
    con.execute("INSERT INTO release_log VALUES ('r2', DATE '2026-03-31', TIMESTAMP '2026-04-02 10:00:00')")
    con.execute("UPDATE release_months SET release_id = 'r2' WHERE as_of_month = DATE '2026-03-31'")
    expected = con.execute("SELECT * FROM customer_segment").fetchall()
    con.close()

    second = publish_to_postgres(db, postgres_url, schema="bi tiering", reader_role="bi-reader")

    assert second.mode == "incremental" and second.months_written == (dt.date(2026, 3, 31),)
    assert second.rows_written == {"customer_segment": 1, "customer_tier": 0, "tier_summary": 0,
                                   "tier_migration": 0, "customer_event": 0, "release_log": 1,
                                   "release_months": 1}
    _columns, rows = postgres_rows(postgres_url, "customer_segment", schema="bi tiering")
    assert Counter(map(as_float32, rows)) == Counter(map(as_float32, expected))


# --- month by month ------------------------------------------------------------------------------------


def test_publishing_the_same_release_twice_rewrites_nothing(release_db, postgres_url):
    first = publish_to_postgres(release_db, postgres_url)
    before = served_state(postgres_url)
    second = publish_to_postgres(release_db, postgres_url)

    assert second.mode == "incremental" and second.months_written == () and second.months_deleted == ()
    assert set(second.rows_written.values()) == {0}
    assert (second.release_id, second.row_counts) == (first.release_id, first.row_counts)
    assert served_state(postgres_url) == before  # same rows, same row versions


def test_a_new_month_touches_only_that_month(releases, postgres_url):
    first = publish_to_postgres(releases.published_db, postgres_url)
    before = row_versions(postgres_url)
    release = releases.publish(MONTHS[3])

    publication = publish_to_postgres(releases.published_db, postgres_url)

    assert publication.mode == "incremental" and publication.release_id == release.release_id
    assert publication.months_written == (MONTHS[3],) and publication.months_deleted == ()
    assert publication.rows_written == {
        **{t: month_rows(releases.published_db, t, MONTHS[3]) for t in PUBLISHED_TABLES},
        "release_log": 1, "release_months": len(PUBLISHED_TABLES)}
    after = row_versions(postgres_url)
    for table in PUBLISHED_TABLES:
        for month in MONTHS[:3]:
            assert after[(table, month)] == before[(table, month)], (table, month)  # not rewritten
        assert (table, MONTHS[3]) not in before and after[(table, MONTHS[3])]
    assert {m: r for (t, m), r in writers(postgres_url).items() if t == "customer_segment"} == {
        MONTHS[0]: first.release_id, MONTHS[1]: first.release_id, MONTHS[2]: first.release_id,
        MONTHS[3]: release.release_id}
    assert_mirrors(releases.published_db, postgres_url)


def test_a_restatement_replaces_exactly_the_restated_months(releases, postgres_url):
    publish_to_postgres(releases.published_db, postgres_url)
    releases.publish(MONTHS[3])
    publish_to_postgres(releases.published_db, postgres_url)
    before, aum_before = row_versions(postgres_url), served_state(postgres_url)["aum"]
    restatement = releases.publish(*MONTHS[1:4], version=2)  # February re-delivered: Feb … Apr rebuilt
    assert restatement.restated_months == list(MONTHS[1:4])

    publication = publish_to_postgres(releases.published_db, postgres_url)

    assert publication.months_written == MONTHS[1:4] and publication.months_deleted == ()
    after = row_versions(postgres_url)
    for table in PUBLISHED_TABLES:
        assert after[(table, MONTHS[0])] == before[(table, MONTHS[0])], table
        for month in MONTHS[1:4]:
            assert not after[(table, month)] & before[(table, month)], (table, month)  # every row rewritten
    assert served_state(postgres_url)["aum"] != aum_before
    assert_mirrors(releases.published_db, postgres_url)
    with psycopg.connect(postgres_url) as con:
        restated = con.execute("SELECT restated_months FROM tiering.release_log WHERE release_id = %s",
                               [restatement.release_id]).fetchone()[0]
    assert restated == "2026-02-28,2026-03-31,2026-04-30"


def test_a_skipped_publication_is_caught_up(releases, postgres_url):
    first = publish_to_postgres(releases.published_db, postgres_url)
    before = row_versions(postgres_url)
    april = releases.publish(MONTHS[3])  # its PostgreSQL publication failed, or was not configured yet
    may = releases.publish(MONTHS[4])

    publication = publish_to_postgres(releases.published_db, postgres_url)

    assert publication.release_id == may.release_id
    assert publication.months_written == MONTHS[3:5]
    assert publication.rows_written["release_log"] == 2
    after = row_versions(postgres_url)
    assert all(after[key] == versions for key, versions in before.items())
    assert {r for (t, m), r in writers(postgres_url).items()} == {first.release_id, april.release_id,
                                                                  may.release_id}
    assert_mirrors(releases.published_db, postgres_url)


def test_months_the_release_no_longer_has_are_deleted(releases, postgres_url, tmp_path):
    older = releases.snapshot(tmp_path / "older.duckdb")
    releases.publish(MONTHS[3])
    publish_to_postgres(releases.published_db, postgres_url)
    before = row_versions(postgres_url)

    # Publishing the older catalog again (a second publisher queued behind) makes PostgreSQL mirror it.
    publication = publish_to_postgres(older, postgres_url)

    assert publication.months_written == () and publication.months_deleted == (MONTHS[3],)
    after = row_versions(postgres_url)
    assert {month for _table, month in after} == set(MONTHS[:3])
    assert all(after[key] == before[key] for key in after)
    assert_mirrors(older, postgres_url)


# --- consumers -----------------------------------------------------------------------------------------


def test_reader_role_can_select_and_nothing_else(release_db, postgres_url):
    publish_to_postgres(release_db, postgres_url)
    login_role(postgres_url, "bi_analyst", "bi-pw", member_of="tiering_reader")
    login_role(postgres_url, "stranger", "stranger-pw", member_of=None)

    with psycopg.connect(as_user(postgres_url, "bi_analyst", "bi-pw"), autocommit=True) as con:
        for table in RELEASE_TABLES:
            con.execute(f"SELECT count(*) FROM tiering.{table}").fetchone()
        forbidden = [
            "INSERT INTO tiering.tier_migration (as_of_month) VALUES (DATE '2026-01-31')",
            "UPDATE tiering.customer_segment SET value_tier = 'X'",
            "DELETE FROM tiering.release_log",
            "DELETE FROM tiering.release_months",
            "TRUNCATE tiering.tier_summary",
            "DROP TABLE tiering.customer_tier",
            "ALTER TABLE tiering.customer_tier ADD COLUMN x int",
            "CREATE TABLE tiering.mine (x int)",
            "CREATE VIEW tiering.mine AS SELECT 1 AS x",
        ]
        for statement in forbidden:
            with pytest.raises(errors.InsufficientPrivilege):
                con.execute(statement)
        # A GRANT by a non-owner only warns "no privileges were granted": the stranger stays out below.
        con.execute("GRANT SELECT ON tiering.customer_segment TO stranger")
    with psycopg.connect(as_user(postgres_url, "stranger", "stranger-pw"), autocommit=True) as con:
        with pytest.raises(errors.InsufficientPrivilege):
            con.execute("SELECT count(*) FROM tiering.customer_segment")


def test_a_reader_is_never_blocked_and_sees_one_release_per_statement(releases, postgres_url):
    publish_to_postgres(releases.published_db, postgres_url)
    old = expected_read(releases.published_db)
    releases.publish(MONTHS[3])
    new = expected_read(releases.published_db)
    reader = psycopg.connect(postgres_url, autocommit=True)  # READ COMMITTED, one statement: as BI tools
    reader.execute("SET lock_timeout = '2s'")  # a blocked read would fail here, not wait
    seen: dict[str, tuple] = {}

    def hook(step: str) -> None:
        seen[step] = reader.execute(READ).fetchone()

    publish_to_postgres(releases.published_db, postgres_url, hook=hook)

    assert seen == {"loaded": old, "before commit": old}
    assert reader.execute(READ).fetchone() == new
    reader.close()


def test_a_repeatable_read_reader_sees_a_whole_release_throughout(releases, postgres_url):
    publish_to_postgres(releases.published_db, postgres_url)
    old = expected_read(releases.published_db)
    releases.publish(MONTHS[3])
    releases.publish(*MONTHS[1:4], version=2)  # a new month, then a restatement: both published at once
    new = expected_read(releases.published_db)
    assert new[0] != old[0] and new[2] != old[2]
    early = psycopg.connect(postgres_url)  # reads before the publication starts
    early.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    late = psycopg.connect(postgres_url)  # takes its snapshot mid-publication, reads only after the commit
    late.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    assert early.execute(READ).fetchone() == old
    seen: list[tuple] = []

    def hook(step: str) -> None:
        seen.append(early.execute(READ).fetchone())
        if step == "loaded":
            late.execute("SELECT 1").fetchone()

    publish_to_postgres(releases.published_db, postgres_url, hook=hook)

    assert seen == [old, old]
    assert early.execute(READ).fetchone() == old  # after the commit, still the release it began with
    assert late.execute(READ).fetchone() == old  # not empty tables: no DDL, nothing to trip over
    for con in (early, late):
        con.commit()
        assert con.execute(READ).fetchone() == new
        con.close()


def test_a_consumer_idle_in_transaction_does_not_hold_up_a_monthly_publication(releases, postgres_url):
    publish_to_postgres(releases.published_db, postgres_url)
    idle = psycopg.connect(postgres_url)  # a transaction left open after a read keeps its lock
    idle.execute("SELECT count(*) FROM tiering.customer_segment").fetchone()
    release = releases.publish(MONTHS[3])

    publication = publish_to_postgres(releases.published_db, postgres_url, lock_timeout_s=0.5)

    assert publication.release_id == release.release_id and publication.months_written == (MONTHS[3],)
    idle.rollback()
    idle.close()


# --- failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["copy", "verify", "before commit"])
def test_a_failed_publication_leaves_postgres_exactly_as_before(releases, postgres_url, tmp_path, failure):
    publish_to_postgres(releases.published_db, postgres_url)
    before = served_state(postgres_url)
    login_role(postgres_url, "bi_before_failure", "pw", member_of="tiering_reader")
    hook = None
    if failure == "copy":
        # March restated and April new: customer_segment and customer_tier are synced, tier_summary's
        # COPY of April then fails (its March already deleted and copied again).
        releases.build(MONTHS[2], version=2)
        releases.build(MONTHS[3], version=2)
        releases.poison("tier_summary", MONTHS[3], "tier")
        releases.publish(MONTHS[2], MONTHS[3])
        broken = releases.published_db
    elif failure == "verify":
        releases.publish(MONTHS[2], MONTHS[3], version=2)
        broken = releases.snapshot(tmp_path / "inconsistent.duckdb")
        con = duckdb.connect(str(broken))
        con.execute("UPDATE release_months SET rows = rows + 1 WHERE table_name = 'customer_tier' "
                    "AND as_of_month = DATE '2026-04-30'")
        con.close()
    else:
        releases.publish(MONTHS[2], MONTHS[3], version=2)
        broken = releases.published_db

        def hook(step: str) -> None:
            if step == "before commit":
                raise RuntimeError("power cut")

    with pytest.raises(PostgresPublishFailed) as failed:
        publish_to_postgres(broken, postgres_url, hook=hook)

    message = str(failed.value)
    assert "\n" not in message and "admin-secret" not in message
    if failure == "copy":
        assert "failed at copy of tiering.tier_summary (2026-04)" in message and "0x00" in message
    elif failure == "verify":
        assert ("failed at verify of tiering.customer_tier: 2026-04: 120 rows loaded, 120 written, 120 in "
                "published.duckdb, 121 in its release_months") in message
    else:
        assert "failed at hook before commit: power cut" in message
    assert message.endswith("tiering keeps its previous release")
    assert served_state(postgres_url) == before  # same rows, same row versions: nothing committed
    with psycopg.connect(as_user(postgres_url, "bi_before_failure", "pw")) as con:
        logged = con.execute("SELECT count(*) FROM tiering.release_log").fetchone()[0]
    assert logged == len(before["rows"]["release_log"])
    if failure == "before commit":  # the next publication catches up
        assert publish_to_postgres(releases.published_db, postgres_url).months_written == MONTHS[2:4]


# --- a contract change: the full rebuild -----------------------------------------------------------------


def change_the_contract(releases: Releases, postgres_url: str, how: str) -> None:
    """A catalog (or a PostgreSQL schema) whose columns are not the other's."""
    if how == "new column":  # added to a mart, every month republished
        releases.working("ALTER TABLE main_marts.customer_segment ADD COLUMN segment_note VARCHAR "
                         "DEFAULT 'note'")
        releases.publish(*MONTHS[:3])
    elif how == "new column from a new month":  # the catalog's view shows NULL for the months before
        releases.working("ALTER TABLE main_marts.customer_segment ADD COLUMN segment_note VARCHAR "
                         "DEFAULT 'note'")
        releases.publish(MONTHS[3])
    elif how == "other type":
        with psycopg.connect(postgres_url) as con:  # as an older contract had it
            con.execute("ALTER TABLE tiering.tier_summary ALTER COLUMN share_of_customers TYPE numeric(12,6)")
        releases.publish(MONTHS[3])
    else:  # the schema of the previous version: no release_months
        with psycopg.connect(postgres_url) as con:
            con.execute("DROP TABLE tiering.release_months")
        releases.publish(MONTHS[3])


@pytest.mark.parametrize("how", ["new column", "new column from a new month", "other type", "previous version"])
def test_a_contract_change_rebuilds_every_table(releases, postgres_url, how):
    publish_to_postgres(releases.published_db, postgres_url)
    change_the_contract(releases, postgres_url, how)

    publication = publish_to_postgres(releases.published_db, postgres_url)

    assert publication.mode == "rebuild"
    assert set(publication.months_written) == {m for t, m in writers(postgres_url)}
    assert_mirrors(releases.published_db, postgres_url)
    assert served_state(postgres_url)["tables"] == sorted(RELEASE_TABLES)
    again = publish_to_postgres(releases.published_db, postgres_url)
    assert again.mode == "incremental" and again.months_written == ()


def test_a_rebuild_swaps_the_tables_in_atomically(releases, postgres_url):
    publish_to_postgres(releases.published_db, postgres_url)
    old = expected_read(releases.published_db)
    change_the_contract(releases, postgres_url, "new column")
    new = expected_read(releases.published_db)
    reader = psycopg.connect(postgres_url, autocommit=True)  # READ COMMITTED, one statement: as BI tools
    read = READ + ", to_regclass('tiering.customer_segment__incoming')"
    seen: dict[str, tuple] = {}

    def read_in_thread():
        seen["during commit"] = reader.execute(read).fetchone()

    blocked = threading.Thread(target=read_in_thread)

    def hook(step: str) -> None:
        if step == "loaded":
            # The new tables are loaded but not swapped: the reader is not blocked and sees the old release.
            reader.execute("SET lock_timeout = '2s'")
            seen["loaded"] = reader.execute(read).fetchone()
            reader.execute("SET lock_timeout = 0")
        else:
            # Swapped, not committed: a reader's statement waits for the commit instead of seeing a mix.
            blocked.start()
            seen["blocked before commit"] = waits_on_a_lock(postgres_url, reader.info.backend_pid)

    publication = publish_to_postgres(releases.published_db, postgres_url, hook=hook)
    blocked.join(timeout=30)

    assert publication.mode == "rebuild" and old != new
    assert seen["loaded"] == (*old, None)
    assert seen["blocked before commit"] is True
    assert seen["during commit"] == (*new, None)
    assert reader.execute(read).fetchone() == (*new, None)
    reader.close()


@pytest.mark.parametrize("failure", ["copy", "before commit"])
def test_a_failed_rebuild_leaves_the_previous_tables(releases, postgres_url, failure):
    publish_to_postgres(releases.published_db, postgres_url)
    before = served_state(postgres_url)
    hook = None
    if failure == "copy":
        releases.poison("tier_migration", MONTHS[1], "to_tier")
    else:
        def hook(step: str) -> None:
            if step == "before commit":
                raise RuntimeError("power cut")
    change_the_contract(releases, postgres_url, "new column")

    with pytest.raises(PostgresPublishFailed) as failed:
        publish_to_postgres(releases.published_db, postgres_url, hook=hook)

    message = str(failed.value)
    assert "\n" not in message and "admin-secret" not in message
    if failure == "copy":
        assert "failed at copy of tiering.tier_migration (2026-02)" in message
    else:
        assert "failed at hook before commit: power cut" in message
    assert served_state(postgres_url) == before  # no __incoming table, the old columns, the old rows


def test_a_consumer_holding_a_table_makes_a_rebuild_give_up_cleanly(releases, postgres_url):
    publish_to_postgres(releases.published_db, postgres_url)
    before = served_state(postgres_url)
    idle = psycopg.connect(postgres_url)  # a transaction left open after a read keeps its lock
    idle.execute("SELECT count(*) FROM tiering.tier_summary").fetchone()
    change_the_contract(releases, postgres_url, "new column")

    held = r"failed at lock: canceling statement due to lock timeout \(a consumer session holds the table"
    with pytest.raises(PostgresPublishFailed, match=held):
        publish_to_postgres(releases.published_db, postgres_url, lock_timeout_s=0.5)
    idle.rollback()
    assert served_state(postgres_url) == before
    assert publish_to_postgres(releases.published_db, postgres_url).mode == "rebuild"
    idle.close()


# --- connection errors ---------------------------------------------------------------------------------


def test_unreachable_server_gives_one_line_without_password(release_db):
    with refusing_port() as port:
        url = f"postgresql://tiering_admin:Very%2FSecret-1@127.0.0.1:{port}/tiering"
        with pytest.raises(PostgresPublishFailed) as failed:
            publish_to_postgres(release_db, url)
    message = str(failed.value)
    redacted = f"postgresql://tiering_admin:***@127.0.0.1:{port}/tiering"
    assert message.startswith(f"cannot connect to PostgreSQL at {redacted}: ")
    assert "\n" not in message and "Secret" not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_wrong_password_gives_one_line_without_password(release_db, postgres_server):
    url = postgres_server.url(password="not-the-password")
    with pytest.raises(PostgresPublishFailed) as failed:
        publish_to_postgres(release_db, url)
    message = str(failed.value)
    assert "password authentication failed" in message
    assert "not-the-password" not in message and "\n" not in message


def test_malformed_url_does_not_echo_the_password(release_db):
    with pytest.raises(PostgresPublishFailed) as failed:
        publish_to_postgres(release_db, "host=127.0.0.1 password=hunter2 port")
    assert "hunter2" not in str(failed.value)
    assert str(failed.value).startswith("cannot connect to PostgreSQL at host=127.0.0.1 password=*** port: ")


def test_a_catalog_of_the_old_single_file_layout_is_refused(tmp_path, postgres_url):
    db = tmp_path / "published.duckdb"
    con = duckdb.connect(str(db))
    for table in (*PUBLISHED_TABLES, "release_log"):
        con.execute(f"CREATE TABLE {table} (as_of_month DATE, release_id VARCHAR, published_at TIMESTAMP)")
    con.close()
    with pytest.raises(PostgresPublishFailed, match="published.duckdb lacks release_months"):
        publish_to_postgres(db, postgres_url)


@pytest.mark.parametrize(("url", "redacted"), [
    ("postgresql://u:p%40ss@db.example:5432/bi?sslmode=require",
     "postgresql://u:***@db.example:5432/bi?sslmode=require"),
    ("postgres://u@db/bi?password=x&application_name=a",
     "postgres://u@db/bi?password=***&application_name=a"),
    ("postgresql://db.example/bi", "postgresql://db.example/bi"),
    ("host=db user=u password='a b' dbname=bi", "host=db user=u password=*** dbname=bi"),
])
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted
