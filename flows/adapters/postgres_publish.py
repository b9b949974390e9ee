"""Optional copy of the published release to PostgreSQL for BI tools, month by month, one transaction.

`published.duckdb` stays the release of record (a catalog: one view per table over the current release's
Parquet month partitions, `release_log`, and `release_months`, which release wrote each month). The
schema (default `tiering`) holds the same four tables, `release_log`, and `release_months` (the catalog's,
without the file paths): which release wrote each month PostgreSQL holds. A publication costs the months
it writes, not the months held. In ONE transaction, after taking the schema's advisory lock:

- it compares the catalog's `release_months` with PostgreSQL's, per table and month: a month PostgreSQL
  lacks, or whose writer (release, gate run, time, rows) differs, is replaced (`DELETE … WHERE as_of_month
  = …`, then binary COPY of that month's rows from the DuckDB view, Decimals exact); a month PostgreSQL
  holds that the release no longer has is deleted. A normal release writes its one new month, a
  restatement the restated months, a publication after a failed or skipped one every month missed;
- it checks every month written (or deleted) against DuckDB: row counts (also against `release_months`)
  and the exact sums of every DECIMAL column, syncs `release_log` and `release_months` row by row and
  checks them whole, grants SELECT to the read-only role and commits.

Readers are never blocked and stay MVCC-consistent: plain DELETE/INSERT, no DDL, so every statement (READ
COMMITTED) and every REPEATABLE READ transaction sees one whole release, the old one until the commit, the
new one after it. Any failure rolls everything back: the schema keeps the previous release, row for row.
Concurrent publications to one schema queue on an advisory lock (the second then mirrors its own catalog).

The first publication (none of the tables in the schema), and a contract change (a table's columns or
types in the catalog differ from PostgreSQL's, or a table is missing) take the full path instead: every
table is loaded whole into `<table>__incoming` (exact column types, DECIMAL precision kept, primary keys on
the grain), checked month by month the same way, then the served tables are locked, dropped and the new
ones renamed into place, so consumers never see a half-migrated table. Only this path blocks readers (for
the swap, milliseconds) and waits for their locks: a consumer transaction left open on a table makes it
wait `lock_timeout_s`, then fail cleanly. Its caveat (DDL is not MVCC-safe): a REPEATABLE READ transaction
begun before such a commit that first reads the tables after it sees them empty.

Consumers: the role `tiering_reader` (NOLOGIN, created if missing) gets USAGE on the schema and SELECT
on its tables, nothing else; a BI login is a role granted membership (`GRANT tiering_reader TO bi_x`).
Passwords never appear in messages or logs: the target is always shown redacted.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import duckdb
import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from flows.stages.publishing import PUBLISHED_TABLES

log = logging.getLogger(__name__)

RELEASE_LOG = "release_log"
MONTH_TABLE = "release_months"
RELEASE_TABLES = (*PUBLISHED_TABLES, RELEASE_LOG, MONTH_TABLE)
# The grain of each table (dbt's unique_combination_of_columns); tier_migration has none without NULLs.
PRIMARY_KEYS = {
    "customer_segment": ("as_of_month", "cust_id"),
    "customer_tier": ("as_of_month", "cust_id", "rule_set"),
    "tier_summary": ("as_of_month", "rule_set", "tier"),
    "customer_event": ("as_of_month", "cust_id", "event_type"),
    RELEASE_LOG: ("release_id", "published_at"),  # a rollback logs its target release again
    MONTH_TABLE: ("table_name", "as_of_month"),
}
# Catalog columns PostgreSQL does not mirror: where the month's file lies in the DuckDB warehouse.
MONTH_TABLE_SKIPPED = ("file",)
INCOMING_SUFFIX = "__incoming"
MONTH_INDEX_SUFFIX = "_as_of_month_idx"
SHARED_SCHEMAS = ("public", "pg_catalog", "information_schema")
COPY_BATCH_ROWS = 10_000
# DuckDB type → (PostgreSQL column type as format_type() spells it, COPY binary type). DECIMAL is handled
# apart (precision kept). Spelled as PostgreSQL reports them: a served table is compared column by column.
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
    "TIME": ("time without time zone", "time"),
    "TIMESTAMP": ("timestamp without time zone", "timestamp"),
    "TIMESTAMP WITH TIME ZONE": ("timestamp with time zone", "timestamptz"),
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
    """The release copied to PostgreSQL; `target` is the connection URL with its password redacted.

    `row_counts`: rows of each table in the release (= in PostgreSQL after the commit). `mode`: "first"
    (the schema had none of the tables), "incremental" (months replaced in place) or "rebuild" (contract
    change: every table loaded whole and swapped in). `months_written`: the months whose rows were
    (re)written in at least one table (every month of the release unless "incremental"); `months_deleted`:
    the months PostgreSQL held that the release no longer has; `rows_written`: rows COPYed per table.
    """

    release_id: str
    as_of_month: date
    schema: str
    reader_role: str
    row_counts: dict[str, int]
    target: str
    mode: str = "incremental"
    months_written: tuple[date, ...] = ()
    months_deleted: tuple[date, ...] = ()
    rows_written: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Column:
    name: str
    duckdb_type: str
    pg_type: str  # column type in CREATE TABLE as format_type() shows it, e.g. numeric(18,2)
    copy_type: str  # type name for binary COPY, e.g. numeric

    @property
    def is_decimal(self) -> bool:
        return self.duckdb_type.startswith("DECIMAL")


@dataclass
class _Catalog:
    """What `published.duckdb` says: the current release, the columns of every table, and its months.

    `writers[table][month]` is that month's `release_months` row (PostgreSQL's columns): who wrote it;
    `rows[table][month]` its row count; `month_rows` and `log_rows` the two small tables, as PostgreSQL
    holds them.
    """

    release_id: str
    as_of_month: date
    columns: dict[str, list[_Column]]
    writers: dict[str, dict[date, tuple]]
    rows: dict[str, dict[date, int]]
    month_rows: list[tuple]
    log_rows: list[tuple]


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



def _columns(con: duckdb.DuckDBPyConnection, table: str, skip: tuple[str, ...] = ()) -> list[_Column]:
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                       [table]).fetchall()
    columns = []
    for name, duckdb_type in rows:
        if name in skip:
            continue
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


def _names(columns: list[_Column]) -> list[str]:
    return [c.name for c in columns]


def _select_list(columns: list[_Column]) -> str:
    return ", ".join(_duck_ident(c.name) for c in columns)


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


def _read_catalog(duck: duckdb.DuckDBPyConnection, published_db: Path, steps: _Steps) -> _Catalog:
    """The current release of the catalog, its tables' columns, its `release_months` and `release_log`."""
    with steps.step("read published.duckdb"):
        present = {r[0] for r in duck.execute("SELECT table_name FROM information_schema.tables "
                                              "WHERE table_schema = 'main'").fetchall()}
        missing = [t for t in RELEASE_TABLES if t not in present]
        if missing:
            raise ValueError(f"{published_db.name} lacks {', '.join(missing)} (a catalog of month-partitioned "
                             "releases is expected)")
        release_id, as_of_month = _current_release(duck)
    columns = {}
    for table in RELEASE_TABLES:
        with steps.step("map types", table):
            columns[table] = _columns(duck, table, MONTH_TABLE_SKIPPED if table == MONTH_TABLE else ())
            needed = {"as_of_month"} if table in PUBLISHED_TABLES else set(PRIMARY_KEYS[table])
            if table == MONTH_TABLE:
                needed |= {"release_id", "rows"}
            if lacking := sorted(needed - set(_names(columns[table]))):
                raise ValueError(f"no column {', '.join(lacking)} in published.duckdb")
    with steps.step("read published.duckdb"):
        names = _names(columns[MONTH_TABLE])
        table_at, month_at, rows_at = names.index("table_name"), names.index("as_of_month"), names.index("rows")
        month_rows = duck.execute(f"SELECT {_select_list(columns[MONTH_TABLE])} FROM main.{MONTH_TABLE} "
                                  "ORDER BY table_name, as_of_month").fetchall()
        writers: dict[str, dict[date, tuple]] = {t: {} for t in PUBLISHED_TABLES}
        rows: dict[str, dict[date, int]] = {t: {} for t in PUBLISHED_TABLES}
        for row in month_rows:
            table, month = row[table_at], row[month_at]
            if table not in writers:
                continue
            if month in writers[table]:
                raise ValueError(f"{MONTH_TABLE} lists {table} {month:%Y-%m} twice")
            writers[table][month], rows[table][month] = row, row[rows_at]
        log_rows = duck.execute(f"SELECT {_select_list(columns[RELEASE_LOG])} FROM main.{RELEASE_LOG}"
                                ).fetchall()
    return _Catalog(release_id, as_of_month, columns, writers, rows, month_rows, log_rows)


def _served_columns(cur, schema: str) -> dict[str, list[tuple[str, str]]]:
    """The release tables the schema holds, with their columns as (name, format_type) in order."""
    served: dict[str, list[tuple[str, str]]] = {}
    for table, name, pg_type in cur.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p') "
            "ORDER BY c.relname, a.attnum",
            [schema, list(RELEASE_TABLES)]).fetchall():
        served.setdefault(table, []).append((name, pg_type))
    return served


def _contract_changes(served: dict[str, list[tuple[str, str]]], columns: dict[str, list[_Column]]) -> list[str]:
    """The release tables whose PostgreSQL columns (names, order, types) are not the catalog's."""
    return [t for t in RELEASE_TABLES if served.get(t) != [(c.name, c.pg_type) for c in columns[t]]]


def _has_key_columns(table: str, columns: list[_Column]) -> bool:
    return table in PRIMARY_KEYS and set(PRIMARY_KEYS[table]) <= set(_names(columns))


def _needs_month_index(table: str, columns: list[_Column]) -> bool:
    """A published table whose primary key does not lead with as_of_month gets an index on it: a month is
    deleted and checked through an index, whatever the number of months held."""
    return table in PUBLISHED_TABLES and not (
        _has_key_columns(table, columns) and PRIMARY_KEYS[table][0] == "as_of_month")


def _copy_rows(cur, schema: str, target: str, columns: list[_Column], batches: Iterable[list]) -> int:
    """Binary COPY of `batches` of rows (in `columns`' order) into `schema.target`; rows written."""
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        _ident(schema, target), sql.SQL(", ").join(_ident(c.name) for c in columns))
    written = 0
    with cur.copy(copy_sql) as copy:
        copy.set_types([c.copy_type for c in columns])
        for batch in batches:
            for row in batch:
                copy.write_row(row)
            written += len(batch)
    return written


def _copy_month(cur, duck: duckdb.DuckDBPyConnection, schema: str, target: str, table: str,
                columns: list[_Column], month: date) -> int:
    """COPY one month of DuckDB's view `table` (its Parquet partition: the filter prunes the others)."""
    started = time.monotonic()
    result = duck.execute(f"SELECT {_select_list(columns)} FROM main.{_duck_ident(table)} "
                          "WHERE as_of_month = ?", [month])
    written = _copy_rows(cur, schema, target, columns, iter(lambda: result.fetchmany(COPY_BATCH_ROWS), []))
    log.debug("%s %s: %d rows copied in %.2f s", table, f"{month:%Y-%m}", written, time.monotonic() - started)
    return written


def _month_stats(duck: duckdb.DuckDBPyConnection, cur, schema: str, target: str, table: str,
                 columns: list[_Column], months: list[date]) -> tuple[dict[date, tuple], dict[date, tuple]]:
    """Per month: (row count, exact sum of every DECIMAL column) in DuckDB's `table` and in `schema.target`."""
    money = [c.name for c in columns if c.is_decimal]
    duck_rows = duck.execute(
        f"SELECT as_of_month, {', '.join(['count(*)', *(f'sum({_duck_ident(c)})' for c in money)])} "
        f"FROM main.{_duck_ident(table)} WHERE as_of_month IN ({', '.join('?' * len(months))}) "
        "GROUP BY as_of_month", months).fetchall()
    pg_rows = cur.execute(sql.SQL("SELECT as_of_month, {} FROM {} WHERE as_of_month = ANY(%s) "
                                  "GROUP BY as_of_month").format(
        sql.SQL(", ").join([sql.SQL("count(*)"), *(sql.SQL("sum({})").format(_ident(c)) for c in money)]),
        _ident(schema, target)), [months]).fetchall()
    return {r[0]: tuple(r[1:]) for r in duck_rows}, {r[0]: tuple(r[1:]) for r in pg_rows}


def _check_months(duck: duckdb.DuckDBPyConnection, cur, schema: str, target: str, table: str,
                  columns: list[_Column], expected: dict[date, int], written: dict[date, int]) -> None:
    """Each month written (or deleted: 0 rows expected) has the same rows in PostgreSQL as in DuckDB and in
    `release_months`, and the same exact DECIMAL sums."""
    months = sorted(expected)
    if not months:
        return
    duck_stats, pg_stats = _month_stats(duck, cur, schema, target, table, columns, months)
    empty = (0, *[None] * sum(c.is_decimal for c in columns))
    for month in months:
        in_duck, in_pg = duck_stats.get(month, empty), pg_stats.get(month, empty)
        if not expected[month] == written[month] == in_duck[0] == in_pg[0]:
            raise ValueError(f"{month:%Y-%m}: {in_pg[0]} rows loaded, {written[month]} written, {in_duck[0]} in "
                             f"published.duckdb, {expected[month]} in its {MONTH_TABLE}")
        if in_pg[1:] != in_duck[1:]:
            raise ValueError(f"{month:%Y-%m}: DECIMAL sums differ: {in_pg[1:]} in PostgreSQL, {in_duck[1:]} "
                             "in published.duckdb")


def _check_rows(cur, schema: str, target: str, columns: list[_Column], rows: list[tuple]) -> None:
    """A small table (release_log, release_months) holds exactly `rows`."""
    held = cur.execute(sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(_ident(c.name) for c in columns), _ident(schema, target))).fetchall()
    if Counter(held) != Counter(rows):
        raise ValueError(f"{len(held)} rows in PostgreSQL are not the {len(rows)} of published.duckdb")


# ------------------------------------------------------------------------------------------ month by month


@dataclass
class _Written:
    months: set[date] = field(default_factory=set)
    deleted: set[date] = field(default_factory=set)
    rows: dict[str, int] = field(default_factory=dict)


def _held_months(cur, schema: str, columns: list[_Column]) -> dict[str, dict[date, tuple]]:
    """PostgreSQL's `release_months`: per table and month, the row naming the release that wrote it."""
    names = _names(columns)
    table_at, month_at = names.index("table_name"), names.index("as_of_month")
    held: dict[str, dict[date, tuple]] = {}
    for row in cur.execute(sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(_ident(n) for n in names), _ident(schema, MONTH_TABLE))).fetchall():
        held.setdefault(row[table_at], {})[row[month_at]] = row
    return held


def _sync_table(cur, duck: duckdb.DuckDBPyConnection, schema: str, table: str, catalog: _Catalog,
                held: dict[date, tuple], written: _Written, steps: _Steps) -> None:
    """Replace the months of `table` whose writer differs or that PostgreSQL lacks; delete the months the
    release no longer has; check them all against DuckDB."""
    columns, wanted = catalog.columns[table], catalog.writers[table]
    write = sorted(m for m, writer in wanted.items() if held.get(m) != writer)
    drop = sorted(m for m in held if m not in wanted)
    written.rows[table] = 0
    if not write and not drop:
        return
    with steps.step("delete", table):
        cur.execute(sql.SQL("DELETE FROM {} WHERE as_of_month = ANY(%s)").format(_ident(schema, table)),
                    [write + drop])
    rows: dict[date, int] = dict.fromkeys(drop, 0)
    for month in write:
        with steps.step("copy", f"{table} ({month:%Y-%m})"):
            rows[month] = _copy_month(cur, duck, schema, table, table, columns, month)
    with steps.step("verify", table):
        expected = dict.fromkeys(drop, 0) | {m: catalog.rows[table][m] for m in write}
        _check_months(duck, cur, schema, table, table, columns, expected, rows)
    written.months.update(write)
    written.deleted.update(drop)
    written.rows[table] = sum(rows.values())


def _sync_rows(cur, schema: str, table: str, columns: list[_Column], rows: list[tuple], steps: _Steps) -> int:
    """Make a small table (release_log, release_months) hold exactly `rows`, touching only the rows that
    differ (by primary key); rows inserted."""
    names = _names(columns)
    key_at = [names.index(k) for k in PRIMARY_KEYS[table]]

    def key(row: tuple) -> tuple:
        return tuple(row[i] for i in key_at)

    with steps.step("sync", table):
        held = {key(r): r for r in cur.execute(sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(_ident(n) for n in names), _ident(schema, table))).fetchall()}
        wanted = {key(r): r for r in rows}
        stale = [k for k, row in held.items() if wanted.get(k) != row]
        new = [row for k, row in wanted.items() if held.get(k) != row]
        if stale:
            cur.executemany(sql.SQL("DELETE FROM {} WHERE {}").format(
                _ident(schema, table), sql.SQL(" AND ").join(
                    sql.SQL("{} = %s").format(_ident(k)) for k in PRIMARY_KEYS[table])), stale)
        if new:
            _copy_rows(cur, schema, table, columns, [new])
    with steps.step("verify", table):
        _check_rows(cur, schema, table, columns, rows)
    return len(new)


def _publish_months(cur, duck: duckdb.DuckDBPyConnection, schema: str, catalog: _Catalog,
                    steps: _Steps) -> _Written:
    """The incremental path: the served tables are changed in place, month by month."""
    written = _Written()
    with steps.step("read", MONTH_TABLE):
        held = _held_months(cur, schema, catalog.columns[MONTH_TABLE])
    for table in PUBLISHED_TABLES:
        _sync_table(cur, duck, schema, table, catalog, held.get(table, {}), written, steps)
    written.rows[RELEASE_LOG] = _sync_rows(cur, schema, RELEASE_LOG, catalog.columns[RELEASE_LOG],
                                           catalog.log_rows, steps)
    written.rows[MONTH_TABLE] = _sync_rows(cur, schema, MONTH_TABLE, catalog.columns[MONTH_TABLE],
                                           catalog.month_rows, steps)
    return written


# ------------------------------------------------------------------------------------------ whole (first, rebuild)


def _load_incoming(cur, duck: duckdb.DuckDBPyConnection, schema: str, table: str, catalog: _Catalog,
                   written: _Written, steps: _Steps) -> None:
    """Create `<table>__incoming`, load it whole (a published table month by month), check it, add keys."""
    incoming, columns = table + INCOMING_SUFFIX, catalog.columns[table]
    with steps.step("create table", table):
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_ident(schema, incoming)))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(
            _ident(schema, incoming),
            sql.SQL(", ").join(sql.SQL("{} {}").format(_ident(c.name), sql.SQL(c.pg_type)) for c in columns)))
        cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_ident(schema, incoming), sql.Literal(
            f"{table} of the customer tiering releases, copied from published.duckdb; "
            + ("which release wrote each month: release_months. " if table in PUBLISHED_TABLES else "")
            + "See the README, Published tables.")))
    if table in PUBLISHED_TABLES:
        rows: dict[date, int] = {}
        for month in sorted(catalog.writers[table]):
            with steps.step("copy", f"{table} ({month:%Y-%m})"):
                rows[month] = _copy_month(cur, duck, schema, incoming, table, columns, month)
        with steps.step("verify", table):
            _check_months(duck, cur, schema, incoming, table, columns, catalog.rows[table], rows)
            total = duck.execute(f"SELECT count(*) FROM main.{_duck_ident(table)}").fetchone()[0]
            if total != sum(rows.values()):
                raise ValueError(f"{total} rows in published.duckdb, {sum(rows.values())} in the months its "
                                 f"{MONTH_TABLE} lists")
        written.months.update(rows)
        written.rows[table] = sum(rows.values())
    else:
        small = catalog.log_rows if table == RELEASE_LOG else catalog.month_rows
        with steps.step("copy", table):
            written.rows[table] = _copy_rows(cur, schema, incoming, columns, [small])
        with steps.step("verify", table):
            _check_rows(cur, schema, incoming, columns, small)
    with steps.step("primary key", table):
        if _has_key_columns(table, columns):
            cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                _ident(schema, incoming), sql.SQL(", ").join(_ident(c) for c in PRIMARY_KEYS[table])))
        if _needs_month_index(table, columns):
            cur.execute(sql.SQL("CREATE INDEX {} ON {} (as_of_month)").format(
                _ident(incoming + MONTH_INDEX_SUFFIX), _ident(schema, incoming)))


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
            if _needs_month_index(table, columns[table]):
                cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    _ident(schema, table + INCOMING_SUFFIX + MONTH_INDEX_SUFFIX),
                    _ident(table + MONTH_INDEX_SUFFIX)))


def _rebuild(cur, duck: duckdb.DuckDBPyConnection, schema: str, catalog: _Catalog, steps: _Steps) -> _Written:
    """The full path (first publication, contract change): every table loaded whole into `__incoming`."""
    written = _Written()
    for table in RELEASE_TABLES:
        _load_incoming(cur, duck, schema, table, catalog, written, steps)
    return written


# ------------------------------------------------------------------------------------------ consumers


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
    # The schema only: a table comment would lock its table against autovacuum (tables get theirs once).
    with steps.step("comments"):
        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(_ident(schema), sql.Literal(
            f"Customer tiering, release {release_id} ({as_of_month:%Y-%m}), copied from published.duckdb "
            f"month by month: {MONTH_TABLE} says which release wrote each month. Read via the reader role.")))


def publish_to_postgres(published_db: Path, url: str, *, schema: str = "tiering",
                        reader_role: str = "tiering_reader", lock_timeout_s: float = 60,
                        hook: Callable[[str], None] | None = None) -> PostgresPublication:
    """Bring the release tables in `schema` at `url` to the release of `published_db`, in one transaction.

    Incremental (only the months whose writer differs, see the module docstring) when the schema's tables
    have the catalog's columns; whole, with a swap, the first time or after a contract change.
    `lock_timeout_s` bounds every wait for a lock, consumers' at the swap above all (0: no limit). `hook`
    (tests) is called with "loaded" once every table is written and checked (nothing swapped, granted or
    committed yet), and "before commit".
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
            duck.execute("SET enable_progress_bar = false")
        catalog = _read_catalog(duck, published_db, steps)
        pg = _connect(url)
        try:
            with steps.step("commit"), pg.transaction(), pg.cursor() as cur:
                with steps.step("begin"):
                    cur.execute("SELECT set_config('lock_timeout', %s, true)",
                                [f"{int(lock_timeout_s * 1000)}ms"])
                    # One publisher per schema at a time: the second waits here, then mirrors its catalog.
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"tiering-publish:{schema}"])
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_ident(schema)))
                with steps.step("read the schema"):
                    served = _served_columns(cur, schema)
                changed = _contract_changes(served, catalog.columns)
                mode = "first" if not served else "rebuild" if changed else "incremental"
                if mode == "rebuild":
                    log.info("PostgreSQL schema %s: %s differ from published.duckdb (contract change): "
                             "every table is rebuilt", schema, ", ".join(changed))
                if mode == "incremental":
                    written = _publish_months(cur, duck, schema, catalog, steps)
                else:
                    written = _rebuild(cur, duck, schema, catalog, steps)
                if hook:
                    with steps.step("hook loaded"):
                        hook("loaded")
                if mode != "incremental":
                    _swap(cur, schema, catalog.columns, steps)
                _grant(cur, schema, reader_role, steps)
                _comment(cur, schema, catalog.release_id, catalog.as_of_month, steps)
                if hook:
                    with steps.step("hook before commit"):
                        hook("before commit")
        finally:
            pg.close()
    finally:
        duck.close()
    counts = {t: sum(catalog.rows[t].values()) for t in PUBLISHED_TABLES}
    counts |= {RELEASE_LOG: len(catalog.log_rows), MONTH_TABLE: len(catalog.month_rows)}
    months = tuple(sorted(written.months))
    log.info("published release %s (%s) to PostgreSQL %s, schema %s, %s, in %.1f s: months written %s%s; "
             "rows written %s", catalog.release_id, f"{catalog.as_of_month:%Y-%m}", target, schema, mode,
             time.monotonic() - started, ", ".join(f"{m:%Y-%m}" for m in months) or "none",
             f", deleted {', '.join(f'{m:%Y-%m}' for m in sorted(written.deleted))}" if written.deleted else "",
             ", ".join(f"{t} {n}" for t, n in written.rows.items()))
    return PostgresPublication(release_id=catalog.release_id, as_of_month=catalog.as_of_month, schema=schema,
                               reader_role=reader_role, row_counts=counts, target=target, mode=mode,
                               months_written=months, months_deleted=tuple(sorted(written.deleted)),
                               rows_written=written.rows)
