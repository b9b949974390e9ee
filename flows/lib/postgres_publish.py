"""Optional copy of the published release to PostgreSQL for BI tools: same tables, one transaction.

`published.duckdb` stays the release of record; this copies it whole into a schema (default `tiering`).
In ONE transaction: load every table into `<table>__incoming` with COPY (binary, Decimals exact), check
row counts and the exact sums of every DECIMAL column against DuckDB, then lock the served tables,
drop them, rename the new ones into place and grant SELECT to the read-only role. Readers are never
blocked while the data loads, only during the swap (milliseconds); a statement that arrives then waits
and reads the new release. Any failure rolls everything back: the schema keeps the previous release.
Concurrent publications to one schema queue on an advisory lock. A consumer transaction left open on
a table holds it: the publication waits `lock_timeout_s`, then fails cleanly. Caveat (DDL is not
MVCC-safe): a REPEATABLE READ transaction begun before the commit that first reads the tables after it
sees them empty; READ COMMITTED, the default of BI tools, sees one whole release per statement.

Consumers: the role `tiering_reader` (NOLOGIN, created if missing) gets USAGE on the schema and SELECT
on its tables, nothing else; a BI login is a role granted membership (`GRANT tiering_reader TO bi_x`).
Passwords never appear in messages or logs: the target is always shown redacted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import duckdb
import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from flows.lib.publishing import PUBLISHED_TABLES

log = logging.getLogger(__name__)

RELEASE_TABLES = (*PUBLISHED_TABLES, "release_log")
# The grain of each table (dbt's unique_combination_of_columns); tier_migration has none without NULLs.
PRIMARY_KEYS = {
    "customer_segment": ("as_of_month", "cust_id"),
    "customer_tier": ("as_of_month", "cust_id", "rule_set"),
    "tier_summary": ("as_of_month", "rule_set", "tier"),
    "release_log": ("release_id",),
}
INCOMING_SUFFIX = "__incoming"
SHARED_SCHEMAS = ("public", "pg_catalog", "information_schema")
COPY_BATCH_ROWS = 10_000
# DuckDB type → (PostgreSQL column type, COPY binary type). DECIMAL is handled apart (precision kept).
TYPE_MAP = {
    "VARCHAR": ("text", "text"),
    "BOOLEAN": ("boolean", "bool"),
    "TINYINT": ("smallint", "int2"),
    "SMALLINT": ("smallint", "int2"),
    "UTINYINT": ("smallint", "int2"),
    "INTEGER": ("integer", "int4"),
    "USMALLINT": ("integer", "int4"),
    "BIGINT": ("bigint", "int8"),
    "UINTEGER": ("bigint", "int8"),
    "FLOAT": ("real", "float4"),
    "DOUBLE": ("double precision", "float8"),
    "DATE": ("date", "date"),
    "TIME": ("time", "time"),
    "TIMESTAMP": ("timestamp", "timestamp"),
    "TIMESTAMP WITH TIME ZONE": ("timestamptz", "timestamptz"),
    "UUID": ("uuid", "uuid"),
    "BLOB": ("bytea", "bytea"),
}
# Integers wider than bigint become exact numeric: HUGEINT's range needs 39 digits, UBIGINT's 20.
WIDE_INTEGERS = {"HUGEINT": "numeric(39,0)", "UBIGINT": "numeric(20,0)"}
DECIMAL_TYPE = re.compile(r"DECIMAL\((\d+),(\d+)\)")


class PostgresPublishFailed(RuntimeError):
    """The PostgreSQL copy of the release failed; the schema keeps what it held before."""


@dataclass(frozen=True)
class PostgresPublication:
    """The release copied to PostgreSQL; `target` is the connection URL with its password redacted."""

    release_id: str
    as_of_month: date
    schema: str
    reader_role: str
    row_counts: dict[str, int]
    target: str


@dataclass(frozen=True)
class _Column:
    name: str
    duckdb_type: str
    pg_type: str  # column type in CREATE TABLE, e.g. numeric(18,2)
    copy_type: str  # type name for binary COPY, e.g. numeric

    @property
    def is_decimal(self) -> bool:
        return self.duckdb_type.startswith("DECIMAL")


def _ident(*names: str) -> sql.Identifier:
    """A PostgreSQL identifier, quoted: schema and role names come from settings."""
    return sql.Identifier(*names)


def _duck_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def redact_url(url: str) -> str:
    """The connection URL (or key=value string) with any password replaced by `***`."""
    if re.match(r"postgres(ql)?://", url):
        try:
            parts = urlsplit(url)
            netloc = parts.netloc
            if "@" in netloc:
                userinfo, hosts = netloc.rsplit("@", 1)
                if ":" in userinfo:
                    netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
            query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)],
                              safe="*")
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return "postgresql://<unparsable URL>"
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


def _passwords_in(url: str) -> set[str]:
    """Every spelling of the password the URL carries (raw and percent-decoded), to scrub from messages."""
    found: set[str] = set()
    try:
        password = conninfo_to_dict(url).get("password")
        if password:
            found.add(str(password))
    except Exception:  # noqa: BLE001 - an unparsable URL may still hold a password, looked for below
        pass
    match = re.match(r"postgres(?:ql)?://([^@/]*):([^@/]*)@", url)
    if match and match.group(2):
        found |= {match.group(2), unquote(match.group(2))}
    found |= {m.group(2).strip("'") for m in re.finditer(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", url)}
    return {p for p in found if p}


def _one_line(text: str, url: str) -> str:
    """An error text made safe to show: one line, the URL redacted, no password in any spelling."""
    text = text.replace(url, redact_url(url))
    for password in sorted(_passwords_in(url), key=len, reverse=True):
        text = text.replace(password, "***")
    return " ".join(text.split())


def _connect(url: str) -> psycopg.Connection:
    target = redact_url(url)
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - libpq's parse errors quote the string: scrubbed below
        raise PostgresPublishFailed(f"cannot connect to PostgreSQL at {target}: invalid connection URL "
                                    f"({_one_line(str(exc), url)})") from None
    params.setdefault("connect_timeout", 10)
    params.setdefault("application_name", "tiering-publish")
    try:
        return psycopg.connect(**params, autocommit=True)
    except Exception as exc:  # noqa: BLE001 - every connection failure gets the same redacted message
        # `from None`: the chained libpq error would be printed with the traceback, unscrubbed.
        raise PostgresPublishFailed(f"cannot connect to PostgreSQL at {target}: {_one_line(str(exc), url)}"
                                    ) from None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[_Column]:
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                       [table]).fetchall()
    columns = []
    for name, duckdb_type in rows:
        decimal = DECIMAL_TYPE.fullmatch(duckdb_type)
        if decimal:
            columns.append(_Column(name, duckdb_type, f"numeric({decimal[1]},{decimal[2]})", "numeric"))
        elif duckdb_type in WIDE_INTEGERS:
            # psycopg's binary numeric dumper takes Python ints as they are: exact at any width.
            columns.append(_Column(name, duckdb_type, WIDE_INTEGERS[duckdb_type], "numeric"))
        elif duckdb_type in TYPE_MAP:
            columns.append(_Column(name, duckdb_type, *TYPE_MAP[duckdb_type]))
        else:
            raise ValueError(f"column {name} has DuckDB type {duckdb_type}, which has no PostgreSQL mapping")
    return columns


def _current_release(con: duckdb.DuckDBPyConnection) -> tuple[str, date]:
    row = con.execute("SELECT release_id, as_of_month FROM main.release_log "
                      "ORDER BY published_at DESC LIMIT 1").fetchone()
    if row is None:
        raise ValueError("release_log is empty")
    return row


def _decimal_sums(duck: duckdb.DuckDBPyConnection, cur, schema: str, table: str,
                  columns: list[_Column]) -> tuple[tuple, tuple]:
    """Exact sums of the DECIMAL columns in DuckDB's `table` and PostgreSQL's `<table>__incoming`."""
    money = [c.name for c in columns if c.is_decimal]
    if not money:
        return (), ()
    duck_sums = duck.execute(f"SELECT {', '.join(f'sum({_duck_ident(c)})' for c in money)} "
                             f"FROM main.{_duck_ident(table)}").fetchone()
    pg_sums = cur.execute(sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL("sum({})").format(_ident(c)) for c in money),
        _ident(schema, table + INCOMING_SUFFIX))).fetchone()
    return tuple(duck_sums), tuple(pg_sums)


class _Steps:
    """Names the step and table a failure happened in, for the one-line error."""

    def __init__(self, url: str, schema: str):
        self.url, self.schema = url, schema

    @contextmanager
    def step(self, name: str, table: str | None = None) -> Iterator[None]:
        try:
            yield
        except PostgresPublishFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one redacted line
            where = f"{name} of {self.schema}.{table}" if table else name
            hint = ""
            if isinstance(exc, errors.LockNotAvailable):
                hint = " (a consumer session holds the table: idle in transaction?)"
            elif isinstance(exc, errors.DependentObjectsStillExist):
                hint = " (drop the dependent views, publish, then recreate them)"
            outcome = (f"the outcome is unknown: check {self.schema}.release_log" if name == "commit"
                       else f"{self.schema} keeps its previous release")
            raise PostgresPublishFailed(
                f"PostgreSQL publication to {redact_url(self.url)} failed at {where}: "
                f"{_one_line(str(exc), self.url)}{hint}; {outcome}") from exc


def _load_table(cur, duck: duckdb.DuckDBPyConnection, schema: str, table: str,
                columns: list[_Column], steps: _Steps) -> int:
    """Create `<table>__incoming`, COPY the DuckDB rows into it, check counts and exact sums; row count."""
    incoming = table + INCOMING_SUFFIX
    with steps.step("create table", table):
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_ident(schema, incoming)))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(
            _ident(schema, incoming),
            sql.SQL(", ").join(sql.SQL("{} {}").format(_ident(c.name), sql.SQL(c.pg_type)) for c in columns)))
    with steps.step("copy", table):
        expected = duck.execute(f"SELECT count(*) FROM main.{_duck_ident(table)}").fetchone()[0]
        select = ", ".join(_duck_ident(c.name) for c in columns)
        result = duck.execute(f"SELECT {select} FROM main.{_duck_ident(table)}")
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            _ident(schema, incoming), sql.SQL(", ").join(_ident(c.name) for c in columns))
        written, started = 0, time.monotonic()
        with cur.copy(copy_sql) as copy:
            copy.set_types([c.copy_type for c in columns])
            while batch := result.fetchmany(COPY_BATCH_ROWS):
                for row in batch:
                    copy.write_row(row)
                written += len(batch)
        log.debug("%s: %d rows copied in %.2f s", table, written, time.monotonic() - started)
    with steps.step("verify", table):
        count_sql = sql.SQL("SELECT count(*) FROM {}").format(_ident(schema, incoming))
        loaded = cur.execute(count_sql).fetchone()[0]
        if not expected == written == loaded:
            raise ValueError(f"{loaded} rows loaded, {written} written, {expected} in published.duckdb")
        duck_sums, pg_sums = _decimal_sums(duck, cur, schema, table, columns)
        if pg_sums != duck_sums:
            raise ValueError(f"DECIMAL sums differ: {pg_sums} in PostgreSQL, {duck_sums} in published.duckdb")
    if _has_key_columns(table, columns):
        with steps.step("primary key", table):
            cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                _ident(schema, incoming), sql.SQL(", ").join(_ident(c) for c in PRIMARY_KEYS[table])))
    return expected


def _has_key_columns(table: str, columns: list[_Column]) -> bool:
    return table in PRIMARY_KEYS and set(PRIMARY_KEYS[table]) <= {c.name for c in columns}


def _swap(cur, schema: str, columns: dict[str, list[_Column]], steps: _Steps) -> None:
    """Replace the served tables by the incoming ones; the locks are held until COMMIT."""
    with steps.step("lock"):
        served = [r[0] for r in cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            [schema, list(RELEASE_TABLES)]).fetchall()]
        if served:
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(_ident(schema, t) for t in sorted(served))))
    for table in RELEASE_TABLES:
        with steps.step("swap", table):
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_ident(schema, table)))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                _ident(schema, table + INCOMING_SUFFIX), _ident(table)))
            if _has_key_columns(table, columns[table]):
                cur.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                    _ident(schema, table), _ident(f"{table}{INCOMING_SUFFIX}_pkey"), _ident(f"{table}_pkey")))


def _grant(cur, schema: str, reader_role: str, steps: _Steps) -> None:
    """The reader role gets USAGE on the schema and SELECT on the release tables, nothing more."""
    with steps.step("reader role"):
        exists = cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [reader_role]).fetchone()
        if not exists:
            cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(_ident(reader_role)))
    with steps.step("grants"):
        role = _ident(reader_role)
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC, {}").format(_ident(schema), role))
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            cur.execute(sql.SQL("REVOKE ALL ON ALL {} IN SCHEMA {} FROM PUBLIC, {}").format(
                sql.SQL(kind), _ident(schema), role))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_ident(schema), role))
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(_ident(schema, t) for t in RELEASE_TABLES), role))


def _comment(cur, schema: str, release_id: str, as_of_month: date, steps: _Steps) -> None:
    with steps.step("comments"):
        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(_ident(schema), sql.Literal(
            f"Customer tiering release {release_id} ({as_of_month:%Y-%m}), copied from published.duckdb; "
            "replaced whole by each publication. Read via the reader role.")))
        for table in RELEASE_TABLES:
            cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_ident(schema, table), sql.Literal(
                f"{table} of release {release_id} ({as_of_month:%Y-%m}); see the README, Published tables.")))


def publish_to_postgres(published_db: Path, url: str, *, schema: str = "tiering",
                        reader_role: str = "tiering_reader", lock_timeout_s: float = 60,
                        hook: Callable[[str], None] | None = None) -> PostgresPublication:
    """Replace the release tables in `schema` at `url` by those of `published_db`, in one transaction.

    `lock_timeout_s` bounds the wait for consumers' locks at the swap (0: no limit). `hook` (tests) is
    called with "loaded" once the new tables are loaded (old ones still served), "swapped" before COMMIT.
    """
    published_db = Path(published_db)
    target = redact_url(url)
    if not published_db.exists():
        raise PostgresPublishFailed(f"PostgreSQL publication to {target} failed: {published_db} not found")
    if schema.lower() in SHARED_SCHEMAS:
        # Its grants are revoked and its tables replaced: it must belong to this publication alone.
        raise PostgresPublishFailed(f"schema {schema} is shared: publish to a dedicated one (e.g. tiering)")
    steps = _Steps(url, schema)
    started = time.monotonic()
    with steps.step("read published.duckdb"):
        # Read-only and held open: a publication replacing the file meanwhile leaves this inode intact.
        duck = duckdb.connect(str(published_db), read_only=True)
    try:
        with steps.step("read published.duckdb"):
            present = {r[0] for r in duck.execute("SELECT table_name FROM information_schema.tables "
                                                  "WHERE table_schema = 'main'").fetchall()}
            missing = [t for t in RELEASE_TABLES if t not in present]
            if missing:
                raise ValueError(f"{published_db.name} lacks {', '.join(missing)}")
            release_id, as_of_month = _current_release(duck)
        columns = {}
        for table in RELEASE_TABLES:
            with steps.step("map types", table):
                columns[table] = _columns(duck, table)
        pg = _connect(url)
        try:
            counts: dict[str, int] = {}
            with steps.step("commit"), pg.transaction(), pg.cursor() as cur:
                with steps.step("begin"):
                    cur.execute("SELECT set_config('lock_timeout', %s, true)",
                                [f"{int(lock_timeout_s * 1000)}ms"])
                    # One publisher per schema at a time: the second waits here, then replaces the first.
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"tiering-publish:{schema}"])
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_ident(schema)))
                for table in RELEASE_TABLES:
                    counts[table] = _load_table(cur, duck, schema, table, columns[table], steps)
                if hook:
                    with steps.step("hook loaded"):
                        hook("loaded")
                _swap(cur, schema, columns, steps)
                _grant(cur, schema, reader_role, steps)
                _comment(cur, schema, release_id, as_of_month, steps)
                if hook:
                    with steps.step("hook swapped"):
                        hook("swapped")
        finally:
            pg.close()
    finally:
        duck.close()
    log.info("published release %s (%s) to PostgreSQL %s, schema %s, in %.1f s: %s", release_id,
             f"{as_of_month:%Y-%m}", target, schema, time.monotonic() - started,
             ", ".join(f"{t} {n}" for t, n in counts.items()))
    return PostgresPublication(release_id=release_id, as_of_month=as_of_month, schema=schema,
                               reader_role=reader_role, row_counts=counts, target=target)
