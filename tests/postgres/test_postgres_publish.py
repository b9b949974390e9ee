"""publish_to_postgres against a real PostgreSQL server: exact copy, read-only role, atomic replacement."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from psycopg import errors

from flows.lib.postgres_publish import (
    RELEASE_TABLES,
    PostgresPublishFailed,
    publish_to_postgres,
    redact_url,
)

pytestmark = pytest.mark.postgres


# --- helpers -------------------------------------------------------------------------------------------


def duckdb_rows(db: Path, table: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        result = con.execute(f"SELECT * FROM main.{table}")
        return [d[0] for d in result.description], result.fetchall()
    finally:
        con.close()


def postgres_rows(url: str, table: str, schema: str = "tiering") -> tuple[list[str], list[tuple]]:
    with psycopg.connect(url) as con:
        cur = con.execute(f'SELECT * FROM "{schema}"."{table}"')
        return [d.name for d in cur.description], cur.fetchall()


def served_state(url: str) -> dict:
    """What a consumer sees: the tables in the schema, their counts, the release log and the money total."""
    with psycopg.connect(url) as con:
        tables = sorted(r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'tiering'").fetchall())
        return {
            "tables": tables,
            "counts": {t: con.execute(f'SELECT count(*) FROM tiering."{t}"').fetchone()[0] for t in tables},
            "release_log": con.execute("SELECT * FROM tiering.release_log ORDER BY published_at").fetchall(),
            "aum": con.execute("SELECT sum(avg_daily_aum_cny) FROM tiering.customer_segment").fetchone()[0],
        }


def current_release_id(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT release_id FROM release_log ORDER BY published_at DESC LIMIT 1"
                           ).fetchone()[0]
    finally:
        con.close()


def next_release(source: Path, target: Path, *, poison_table: str | None = None) -> Path:
    """A copy of `source` made into another release: fewer customer_segment rows, a new release_log row.

    `poison_table` puts a NUL character in one text value of that table: PostgreSQL text cannot hold
    it, so its COPY fails (after the tables before it loaded fine).
    """
    shutil.copy(source, target)
    con = duckdb.connect(str(target))
    try:
        con.execute("DELETE FROM customer_segment WHERE cust_id LIKE '%3'")
        con.execute("UPDATE customer_segment SET avg_daily_aum_cny = avg_daily_aum_cny + 0.01")
        last = con.execute("SELECT * FROM release_log ORDER BY published_at DESC LIMIT 1").fetchone()
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RELEASE_TABLES[:4]]
        con.execute("INSERT INTO release_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [str(uuid.uuid4()), last[1], last[2] + dt.timedelta(hours=1), *last[3:7], *counts])
        if poison_table:
            column = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                 "AND data_type = 'VARCHAR' ORDER BY ordinal_position LIMIT 1",
                                 [poison_table]).fetchone()[0]
            con.execute(f"UPDATE {poison_table} SET {column} = {column} || chr(0) "
                        f"WHERE rowid = (SELECT min(rowid) FROM {poison_table})")
    finally:
        con.close()
    return target


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


# --- the copy ------------------------------------------------------------------------------------------


def test_release_is_copied_whole_and_exact(release_db, postgres_url):
    publication = publish_to_postgres(release_db, postgres_url)

    assert publication.release_id == current_release_id(release_db)
    assert publication.schema == "tiering" and publication.reader_role == "tiering_reader"
    assert "admin-secret" not in publication.target and ":***@" in publication.target
    for table in RELEASE_TABLES:
        duck_columns, duck = duckdb_rows(release_db, table)
        pg_columns, pg = postgres_rows(postgres_url, table)
        assert pg_columns == duck_columns, table
        assert publication.row_counts[table] == len(pg) == len(duck), table
        # Whole tables as multisets of Python values: Decimal, date, datetime, bool, int, str, None.
        assert Counter(pg) == Counter(duck), table
    assert served_state(postgres_url)["tables"] == sorted(RELEASE_TABLES)


def test_money_stays_exact_numeric(release_db, postgres_url):
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
    assert types["customer_segment.avg_daily_aum_cny"] == "numeric(18,2)"
    assert types["tier_summary.total_avg_daily_aum_cny"] == "numeric(38,2)"
    assert types["tier_summary.share_of_customers"] == "numeric(9,6)"
    assert types["customer_segment.as_of_month"] == "date"
    assert types["customer_segment.on_watch"] == "boolean"
    assert types["customer_segment.cust_id"] == "text"
    assert types["release_log.published_at"] == "timestamp without time zone"
    assert types["release_log.customer_segment_rows"] == "bigint"
    con = duckdb.connect(str(release_db), read_only=True)
    duck_total, duck_sample = con.execute(
        "SELECT sum(avg_daily_aum_cny), (SELECT avg_daily_aum_cny FROM customer_segment "
        "WHERE avg_daily_aum_cny <> round(avg_daily_aum_cny) ORDER BY cust_id, as_of_month LIMIT 1) "
        "FROM customer_segment").fetchone()
    con.close()
    assert isinstance(pg_total, Decimal) and pg_total == duck_total
    assert pg_sample == duck_sample and pg_sample.as_tuple().exponent == -2


def test_every_mapped_type_round_trips(tmp_path, postgres_url):
    """A hand-made release with edge values of every mapped DuckDB type (HUGEINT, µs, CJK, NULL …)."""
    db = tmp_path / "published.duckdb"
    con = duckdb.connect(str(db))
    con.execute("""
        CREATE TABLE customer_segment AS SELECT * FROM (VALUES
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
    for table in ("customer_tier", "tier_summary", "tier_migration"):
        con.execute(f"CREATE TABLE {table} (as_of_month DATE, customers BIGINT)")
    con.execute("CREATE TABLE release_log AS SELECT 'r1' AS release_id, DATE '2026-03-31' AS as_of_month, "
                "TIMESTAMP '2026-04-01 10:00:00' AS published_at")
    expected = con.execute("SELECT * FROM customer_segment").fetchall()
    con.close()

    publication = publish_to_postgres(db, postgres_url, schema="bi tiering", reader_role="bi-reader")

    assert publication.row_counts == {"customer_segment": 2, "customer_tier": 0, "tier_summary": 0,
                                      "tier_migration": 0, "release_log": 1}
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


def test_publishing_the_same_release_twice_is_harmless(release_db, postgres_url):
    first = publish_to_postgres(release_db, postgres_url)
    before = served_state(postgres_url)
    second = publish_to_postgres(release_db, postgres_url)

    assert second == first
    assert served_state(postgres_url) == before  # no leftover __incoming tables, same rows


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


def test_republication_replaces_the_release_atomically(release_db, postgres_url, tmp_path):
    old = publish_to_postgres(release_db, postgres_url)
    new_db = next_release(release_db, tmp_path / "published.duckdb")
    new_id, new_rows = current_release_id(new_db), len(duckdb_rows(new_db, "customer_segment")[1])
    assert new_rows < old.row_counts["customer_segment"]
    # A consumer session opened before the publication, reading in one statement, as BI tools do.
    reader = psycopg.connect(postgres_url, autocommit=True)
    read = ("SELECT (SELECT release_id FROM tiering.release_log ORDER BY published_at DESC LIMIT 1), "
            "(SELECT count(*) FROM tiering.customer_segment), "
            "to_regclass('tiering.customer_segment__incoming')")
    assert reader.execute(read).fetchone() == (old.release_id, old.row_counts["customer_segment"], None)
    seen: dict[str, tuple] = {}

    def read_in_thread():
        seen["during commit"] = reader.execute(read).fetchone()

    blocked = threading.Thread(target=read_in_thread)

    def hook(step: str) -> None:
        if step == "loaded":
            # The new tables are loaded but not committed: the reader is not blocked and sees the old release.
            reader.execute("SET lock_timeout = '2s'")
            seen["loaded"] = reader.execute(read).fetchone()
            reader.execute("SET lock_timeout = 0")
        elif step == "swapped":
            # Swapped, not committed: a reader's statement waits for the commit instead of seeing a mix.
            blocked.start()
            seen["blocked before commit"] = waits_on_a_lock(postgres_url, reader.info.backend_pid)

    new = publish_to_postgres(new_db, postgres_url, hook=hook)
    blocked.join(timeout=30)

    assert new.release_id == new_id and new.row_counts["customer_segment"] == new_rows
    assert seen["loaded"] == (old.release_id, old.row_counts["customer_segment"], None)
    assert seen["blocked before commit"] is True
    assert seen["during commit"] == (new_id, new_rows, None)
    assert reader.execute(read).fetchone() == (new_id, new_rows, None)
    reader.close()


@pytest.mark.parametrize("failure", ["copy", "before commit"])
def test_a_failed_publication_leaves_the_previous_one_untouched(release_db, postgres_url, tmp_path, failure):
    publish_to_postgres(release_db, postgres_url)
    before = served_state(postgres_url)
    login_role(postgres_url, "bi_before_failure", "pw", member_of="tiering_reader")
    if failure == "copy":
        # customer_segment and customer_tier load first; tier_summary's COPY then fails.
        broken = next_release(release_db, tmp_path / "published.duckdb", poison_table="tier_summary")
        hook = None
    else:
        broken = next_release(release_db, tmp_path / "published.duckdb")

        def hook(step: str) -> None:
            if step == "swapped":
                raise RuntimeError("power cut")

    with pytest.raises(PostgresPublishFailed) as failed:
        publish_to_postgres(broken, postgres_url, hook=hook)

    message = str(failed.value)
    assert "\n" not in message and "admin-secret" not in message
    if failure == "copy":
        assert "failed at copy of tiering.tier_summary" in message and "0x00" in message
    else:
        assert "failed at hook swapped: power cut" in message
    assert message.endswith("tiering keeps its previous release")
    assert served_state(postgres_url) == before
    with psycopg.connect(as_user(postgres_url, "bi_before_failure", "pw")) as con:
        logged = con.execute("SELECT count(*) FROM tiering.release_log").fetchone()[0]
    assert logged == len(before["release_log"])


def test_a_consumer_holding_a_table_makes_publication_give_up_cleanly(release_db, postgres_url, tmp_path):
    publish_to_postgres(release_db, postgres_url)
    before = served_state(postgres_url)
    idle = psycopg.connect(postgres_url)  # a transaction left open after a read keeps its lock
    idle.execute("SELECT count(*) FROM tiering.tier_summary").fetchone()

    held = r"failed at lock: canceling statement due to lock timeout \(a consumer session holds the table"
    with pytest.raises(PostgresPublishFailed, match=held):
        publish_to_postgres(next_release(release_db, tmp_path / "published.duckdb"), postgres_url,
                            lock_timeout_s=0.5)
    idle.rollback()
    assert served_state(postgres_url) == before
    assert publish_to_postgres(tmp_path / "published.duckdb", postgres_url).release_id == current_release_id(
        tmp_path / "published.duckdb")
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
