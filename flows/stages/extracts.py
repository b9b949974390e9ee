"""Core-banking extracts → raw: batch discovery, control files, decoding, validation and loading.

The input contract is the CBS extract specification; the output contract is the raw and audit
schemas of docs/ARCHITECTURE.md. Everything here is a plain function so tests can call it directly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from flows.faults import crash_point
from flows.overrides import ensure_snapshot_table
from flows.sql_literals import sql_text
from flows.stages import raw_zone

TABLES = ("CUSTOMER", "ACCOUNT", "BALANCE", "TXN", "LOAN", "FX_RATE")
# References need their targets validated first: FX rates before every table that carries a currency.
VALIDATION_ORDER = ("FX_RATE", "CUSTOMER", "ACCOUNT", "BALANCE", "TXN", "LOAN")
FAILED_OUTCOMES = ("refused", "rejected", "incomplete")
_CHUNK_ROWS = 122_880
ENCODINGS = {"GBK": "gbk", "UTF-8": "utf-8", "UTF8": "utf-8"}

_SQL_TYPES = {
    "str": "VARCHAR",
    "code": "VARCHAR",
    "date": "DATE",
    "ts": "TIMESTAMP",
    "money": "DECIMAL(18,2)",
    "rate": "DECIMAL(18,6)",
    "int": "INTEGER",
}
# Digit limits keep every accepted value inside its DECIMAL/INTEGER type, so casts never overflow.
_NUMBER_PATTERNS = {
    "money": r"[0-9]{1,16}(\.[0-9]{1,2})?",
    "rate": r"[0-9]{1,12}(\.[0-9]{1,6})?",
    "int": r"[0-9]{1,9}",
}


class IngestError(RuntimeError):
    """Raised by the ingest flow when at least one batch was refused, rejected or incomplete."""


class _BatchFailure(Exception):
    """A whole batch cannot be loaded; carries the outcome and the one-line reason."""

    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass(frozen=True)
class Field:
    """One field of a data file: its name, kind (str, code, date, ts, money, rate, int) and rules."""

    name: str
    kind: str = "str"
    required: bool = True
    codes: tuple[str, ...] = ()
    pattern: str | None = None
    max_len: int | None = None
    positive: bool = False

    @property
    def sql_type(self) -> str:
        return _SQL_TYPES[self.kind]


_CURRENCY = r"[A-Z]{3}"
_P_ONLY = ("birth_date", "gender", "education", "occupation", "monthly_income")

SPECS: dict[str, tuple[Field, ...]] = {
    "CUSTOMER": (
        Field("cust_id", max_len=20),
        Field("cust_type", "code", codes=("P", "C", "I", "F")),
        Field("cust_name", required=False),
        Field("cert_type", "code", codes=("01", "02", "20")),
        Field("cert_no", required=False),
        Field("mobile", required=False),
        # P-only fields: their presence depends on cust_type, checked per row below.
        Field("birth_date", "date", required=False),
        Field("gender", "code", required=False, codes=("M", "F")),
        Field("education", "code", required=False, codes=("1", "2", "3", "4")),
        Field(
            "occupation",
            "code",
            required=False,
            codes=("ACC", "LAW", "DOC", "TEA", "CIV", "ENG", "OTH"),
        ),
        Field("monthly_income", "money", required=False),
        Field(
            "industry_code",
            "code",
            required=False,
            codes=tuple(chr(c) for c in range(ord("A"), ord("T") + 1)),
        ),
        Field("branch_id", required=False),
        Field("open_date", "date"),
        Field("kyc_risk_level", "code", codes=("L", "M", "H")),
        Field("status", "code", codes=("A", "D", "C")),
    ),
    "ACCOUNT": (
        Field("acct_id", max_len=32),
        Field("cust_id", max_len=20),
        Field("product_type", "code", codes=("CASA", "TD", "WM", "FUND", "INS", "GOLD", "LOAN", "CARD")),
        Field("currency", "code", pattern=_CURRENCY),
        Field("open_date", "date"),
        Field("close_date", "date", required=False),
        Field("status", "code", codes=("A", "C")),
    ),
    "BALANCE": (
        Field("acct_id", max_len=32),
        Field("bal_date", "date"),
        Field("balance", "money"),
        Field("currency", "code", pattern=_CURRENCY),
    ),
    "TXN": (
        Field("txn_id"),
        Field("acct_id", max_len=32),
        Field("txn_time", "ts"),
        Field(
            "txn_type",
            "code",
            codes=("DEP", "WDL", "TRI", "TRO", "PAY", "SAL", "FEE", "INT", "XBI", "XBO"),
        ),
        Field("amount", "money", positive=True),
        Field("currency", "code", pattern=_CURRENCY),
        Field("channel", "code", codes=("BR", "ATM", "MB", "IB", "POS", "SYS")),
        Field("cash_flag", "code", codes=("Y", "N")),
        Field("counterparty_country", "code", required=False, pattern=r"[A-Z]{2}"),
    ),
    "LOAN": (
        Field("loan_id"),
        Field("cust_id", max_len=20),
        Field("acct_id", max_len=32),
        Field("loan_type", "code", codes=("MTG", "CON", "BIZ", "CRD")),
        Field("principal", "money"),
        Field("outstanding", "money"),
        Field("currency", "code", pattern=_CURRENCY),
        Field("dpd", "int"),
        Field("five_class", "code", codes=("1", "2", "3", "4", "5")),
        Field("maturity_date", "date"),
    ),
    "FX_RATE": (
        Field("currency", "code", pattern=_CURRENCY),
        Field("rate_date", "date"),
        Field("cny_per_unit", "rate", positive=True),
    ),
}
KEYS = {
    "CUSTOMER": "cust_id",
    "ACCOUNT": "acct_id",
    "BALANCE": "acct_id",
    "TXN": "txn_id",
    "LOAN": "loan_id",
    "FX_RATE": "currency",
}


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class TableCounts:
    """Records read from one data file, and how many were loaded or quarantined."""

    records: int
    loaded: int
    quarantined: int


@dataclass
class BatchResult:
    """What happened to one batch date: outcome, a one-line message and per-table counts."""

    batch_date: dt.date
    outcome: str
    message: str = ""
    tables: dict[str, TableCounts] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.tables.values())

    @property
    def loaded(self) -> int:
        return sum(c.loaded for c in self.tables.values())

    @property
    def quarantined(self) -> int:
        return sum(c.quarantined for c in self.tables.values())

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES

    def summary_line(self) -> str:
        """One line for logs: date, outcome, totals and the message if any."""
        line = (
            f"{self.batch_date:%Y-%m-%d} {self.outcome}: {self.records} records, "
            f"{self.loaded} loaded, {self.quarantined} quarantined"
        )
        return f"{line} — {self.message}" if self.message else line


@dataclass
class IngestReport:
    """The results of one ingest call, one per batch date, in date order."""

    batches: list[BatchResult] = field(default_factory=list)

    @property
    def failed(self) -> list[BatchResult]:
        return [b for b in self.batches if b.failed]

    def failure_message(self) -> str:
        """One line naming every failed batch and its reason."""
        parts = [f"{b.batch_date:%Y-%m-%d} {b.outcome}: {b.message}" for b in self.failed]
        return f"{len(parts)} batch(es) not loaded: " + "; ".join(parts)


# ------------------------------------------------------------------------------------------ files


def date_tag(batch_date: dt.date) -> str:
    """The YYYYMMDD form used in folder and file names."""
    return batch_date.strftime("%Y%m%d")


def data_file_name(table: str, batch_date: dt.date) -> str:
    return f"CBS_{table}_{date_tag(batch_date)}.dat"


def control_file_name(table: str, batch_date: dt.date) -> str:
    return f"CBS_{table}_{date_tag(batch_date)}.ok"


def discover_batches(landing: Path, through: dt.date | None = None) -> list[dt.date]:
    """Batch dates of the `<YYYYMMDD>` folders under landing, in date order, up to `through` if given."""
    dates = []
    for entry in Path(landing).iterdir():
        if entry.is_dir() and re.fullmatch(r"\d{8}", entry.name):
            try:
                batch_date = dt.datetime.strptime(entry.name, "%Y%m%d").date()
            except ValueError:
                continue
            if through is None or batch_date <= through:
                dates.append(batch_date)
    return sorted(dates)


def missing_files(landing: Path, batch_date: dt.date) -> list[str]:
    """Names of the data and control files the batch still lacks (empty when complete)."""
    folder = Path(landing) / date_tag(batch_date)
    missing = []
    for table in TABLES:
        for name in (data_file_name(table, batch_date), control_file_name(table, batch_date)):
            if not (folder / name).exists():
                missing.append(name)
    return missing


@dataclass(frozen=True)
class ControlFile:
    """The parsed `.ok` line: data file name, record count, byte size, md5 and encoding label."""

    file_name: str
    records: int
    byte_size: int
    md5: str
    encoding: str

    @property
    def codec(self) -> str:
        return ENCODINGS[self.encoding]


def parse_control_file(path: Path, expected_data_file: str) -> ControlFile:
    """Read and check one `.ok` file; raises a rejection naming the file when it is malformed."""
    name = Path(path).name
    try:
        text = Path(path).read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise _BatchFailure("rejected", f"{name}: cannot read control file ({exc})") from exc
    lines = [line for line in text.replace("\r", "").split("\n") if line.strip()]
    if len(lines) != 1:
        raise _BatchFailure("rejected", f"{name}: expected one line, found {len(lines)}")
    parts = lines[0].split("|")
    if len(parts) != 5:
        raise _BatchFailure("rejected", f"{name}: expected 5 '|'-separated fields, found {len(parts)}")
    file_name, records, byte_size, md5, encoding = (p.strip() for p in parts)
    if file_name != expected_data_file:
        raise _BatchFailure(
            "rejected", f"{name}: names data file {file_name!r}, expected {expected_data_file!r}"
        )
    if not records.isdigit() or not byte_size.isdigit():
        raise _BatchFailure(
            "rejected", f"{name}: record count {records!r} / byte size {byte_size!r} not integers"
        )
    if not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise _BatchFailure("rejected", f"{name}: md5 {md5!r} is not 32 hex digits")
    label = encoding.upper()
    if label not in ENCODINGS:
        raise _BatchFailure("rejected", f"{name}: encoding {encoding!r} is not GBK or UTF-8")
    return ControlFile(
        file_name, int(records), int(byte_size), md5.lower(), "UTF-8" if label == "UTF8" else label
    )


def count_lines(data: bytes) -> int:
    """Lines in a data file: every `\\n`, plus a last line without one."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@dataclass
class DataFile:
    """A data file whose control totals matched: its bytes and measured figures."""

    control: ControlFile
    data: bytes
    records: int
    md5: str


def read_data_file(path: Path, control: ControlFile) -> DataFile:
    """Read a data file and check it against its control totals; any mismatch rejects the batch."""
    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _BatchFailure("rejected", f"{name}: cannot read data file ({exc.__class__.__name__})") from exc
    md5 = hashlib.md5(data).hexdigest()
    records = count_lines(data)
    problems = []
    if records != control.records:
        problems.append(f"record count {control.records} in .ok, {records} in file")
    if len(data) != control.byte_size:
        problems.append(f"byte size {control.byte_size} in .ok, {len(data)} in file")
    if md5 != control.md5:
        problems.append(f"md5 {control.md5} in .ok, {md5} in file")
    if problems:
        raise _BatchFailure("rejected", f"{name}: control totals do not match: " + "; ".join(problems))
    return DataFile(control, data, records, md5)


# ------------------------------------------------------------------------------------------ decoding


def decode_lines(data: bytes, codec: str) -> pa.Table:
    """Decode a data file into an Arrow table (line_no, line, bad) of UTF-8 lines, line endings kept.

    The whole file is decoded before any split on `|`, since GBK second bytes can be 0x7C; lines that
    do not decode get `bad = true` and their text with the bad bytes backslash-escaped.
    """
    if not data:
        return _lines_table([], np.zeros(0, dtype=bool))
    try:
        # ASCII is valid in both encodings: skip decoding and reuse the bytes (balances are all ASCII).
        if data.isascii():
            buf = data
        elif codec == "utf-8":
            data.decode("utf-8")
            buf = data
        else:
            buf = data.decode(codec).encode("utf-8")
    except UnicodeDecodeError:
        return _decode_line_by_line(data, codec)
    # A newline byte never occurs inside a GBK or UTF-8 multi-byte character, so splitting here is safe.
    newlines = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
    offsets = np.empty(len(newlines) + 1 + (0 if buf.endswith(b"\n") else 1), dtype=np.int64)
    offsets[0] = 0
    offsets[1 : len(newlines) + 1] = newlines + 1
    if not buf.endswith(b"\n"):
        offsets[-1] = len(buf)
    lines = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(buf))
    return _chunked(
        pa.table(
            {
                "line_no": np.arange(1, len(lines) + 1, dtype=np.int64),
                "line": lines,
                "bad": np.zeros(len(lines), dtype=bool),
            }
        )
    )


def _chunked(table: pa.Table) -> pa.Table:
    # DuckDB scans Arrow record batches in parallel; one huge batch would run on one thread.
    return pa.Table.from_batches(table.to_batches(max_chunksize=_CHUNK_ROWS), schema=table.schema)


def _decode_line_by_line(data: bytes, codec: str) -> pa.Table:
    # Slow path, taken only when the whole-file decode failed: find the lines that do not decode.
    raw = data.split(b"\n")
    # Keep the line endings, as the fast path does: every line but an unterminated last one.
    raw = [line + b"\n" for line in raw[:-1]] + ([raw[-1]] if raw[-1] else [])
    lines, bad = [], np.zeros(len(raw), dtype=bool)
    for i, line in enumerate(raw):
        try:
            lines.append(line.decode(codec))
        except UnicodeDecodeError:
            lines.append(line.decode(codec, errors="backslashreplace"))
            bad[i] = True
    return _lines_table(lines, bad)


def _lines_table(lines: list[str], bad: np.ndarray) -> pa.Table:
    return _chunked(
        pa.table(
            {
                "line_no": np.arange(1, len(lines) + 1, dtype=np.int64),
                "line": pa.array(lines, type=pa.large_string()),
                "bad": bad,
            }
        )
    )


# ------------------------------------------------------------------------------------------ schema


def ensure_schema(con: duckdb.DuckDBPyConnection, warehouse: Path | None = None) -> None:
    """Create the audit tables, the ingest-private raw state and the `raw.*` views (docs/ARCHITECTURE.md).

    `warehouse` defaults to the folder of the connection's database file (the raw zone lives beside it).
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS audit")
    con.execute("""
        CREATE TABLE IF NOT EXISTS audit.batch_log (
            batch_date DATE, table_name VARCHAR, file_name VARCHAR, records BIGINT, loaded BIGINT,
            quarantined BIGINT, byte_size BIGINT, md5 VARCHAR, encoding VARCHAR, status VARCHAR,
            message VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, load_id VARCHAR, raw_file VARCHAR,
            stored_rows BIGINT)""")
    con.execute("""
        CREATE TABLE IF NOT EXISTS audit.quarantine (
            batch_date DATE, table_name VARCHAR, file_name VARCHAR, line_no BIGINT, raw_text VARCHAR,
            reason VARCHAR, quarantined_at TIMESTAMP)""")
    con.execute("""
        CREATE TABLE IF NOT EXISTS audit.load_attempt (
            batch_date DATE, outcome VARCHAR, message VARCHAR, attempted_at TIMESTAMP)""")
    raw_zone.ensure_raw_schema(con, warehouse if warehouse is not None else database_folder(con))
    ensure_snapshot_table(con)


def database_folder(con: duckdb.DuckDBPyConnection) -> Path:
    """The folder of the connection's database file: the warehouse."""
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]
    if not path:
        raise ValueError("an in-memory database has no warehouse folder: pass warehouse=")
    return Path(path).resolve().parent


# ------------------------------------------------------------------------------------------ validation


def _shown(column: str) -> str:
    # Values quoted in reasons are cut short so a garbage line cannot flood the quarantine.
    return f"'''' || left({column}, 40) || ''''"


def _field_checks(f: Field) -> list[tuple[str, str]]:
    """(condition, reason) pairs for one field, in the order they are reported."""
    v = f"v_{f.name}"
    checks = []
    if f.required:
        checks.append((f"{v} IS NULL", sql_text(f"empty required field {f.name}")))
    bad = None
    if f.max_len:
        checks.append(
            (
                f"length({v}) > {f.max_len}",
                f"{sql_text(f'field {f.name} longer than {f.max_len}: ')} || {_shown(v)}",
            )
        )
    if f.kind == "code":
        bad = (
            f"{v} NOT IN ({', '.join(sql_text(c) for c in f.codes)})"
            if f.codes
            else f"NOT regexp_full_match({v}, {sql_text(f.pattern)})"
        )
        what = "code"
    elif f.kind == "date":
        bad = f"NOT regexp_full_match({v}, '[0-9]{{8}}') OR try_strptime({v}, '%Y%m%d') IS NULL"
        what = "date"
    elif f.kind == "ts":
        bad = f"NOT regexp_full_match({v}, '[0-9]{{14}}') OR try_strptime({v}, '%Y%m%d%H%M%S') IS NULL"
        what = "timestamp"
    elif f.kind in _NUMBER_PATTERNS:
        bad = f"NOT regexp_full_match({v}, {sql_text(_NUMBER_PATTERNS[f.kind])})"
        what = "number"
    if bad:
        checks.append(
            (f"{v} IS NOT NULL AND ({bad})", f"{sql_text(f'bad {what} in field {f.name}: ')} || {_shown(v)}")
        )
    if f.positive:
        checks.append((f"{_typed(f)} <= 0", f"{sql_text(f'field {f.name} must be > 0: ')} || {_shown(v)}"))
    return checks


def _typed(f: Field) -> str:
    v = f"v_{f.name}"
    if f.kind == "date":
        return f"CAST(try_strptime({v}, '%Y%m%d') AS DATE)"
    if f.kind == "ts":
        return f"try_strptime({v}, '%Y%m%d%H%M%S')"
    if f.kind in ("money", "rate", "int"):
        # VARCHAR → DECIMAL parses the digits exactly; no float on the way.
        return f"try_cast({v} AS {f.sql_type})"
    return v


def _row_checks(table: str, batch_date: dt.date) -> list[tuple[str, str]]:
    """Checks that involve several fields of a row or the batch date."""
    day, tag = f"DATE '{batch_date.isoformat()}'", sql_text(date_tag(batch_date))
    if table == "CUSTOMER":
        checks = [
            (
                f"v_cust_type <> 'P' AND v_{name} IS NOT NULL",
                f"'P-only field {name} set on ' || v_cust_type || ' customer'",
            )
            for name in _P_ONLY
        ]
        checks += [
            ("v_cust_type = 'P' AND v_industry_code IS NOT NULL", "'industry_code set on P customer'"),
            (
                "v_cust_type = 'P' AND v_birth_date IS NULL",
                "'empty required field birth_date for P customer'",
            ),
            ("v_cust_type = 'P' AND v_gender IS NULL", "'empty required field gender for P customer'"),
            (
                "v_cust_type <> 'P' AND v_industry_code IS NULL",
                "'empty required field industry_code for ' || v_cust_type || ' customer'",
            ),
        ]
        return checks
    if table == "BALANCE":
        return [
            (
                f"CAST(try_strptime(v_bal_date, '%Y%m%d') AS DATE) <> {day}",
                f"'bal_date ' || v_bal_date || ' is not the batch date ' || {tag}",
            )
        ]
    if table == "FX_RATE":
        return [
            (
                f"CAST(try_strptime(v_rate_date, '%Y%m%d') AS DATE) <> {day}",
                f"'rate_date ' || v_rate_date || ' is not the batch date ' || {tag}",
            )
        ]
    if table == "TXN":
        return [
            (
                f"CAST(try_strptime(v_txn_time, '%Y%m%d%H%M%S') AS DATE) <> {day}",
                f"'txn_time ' || v_txn_time || ' is not on the batch date ' || {tag}",
            )
        ]
    return []


def _stage_sql(table: str, lines_view: str, batch_date: dt.date, encoding: str) -> str:
    """SQL that splits, checks and types every line of one file: one row per line with its first failure."""
    fields = SPECS[table]
    n = len(fields)
    raw_cols = ", ".join(f"nullif(f[{i}], '') AS v_{f.name}" for i, f in enumerate(fields, 1))
    checks = [
        ("bad", sql_text(f"undecodable bytes in {encoding}")),
        (f"nf <> {n}", f"'field count ' || nf || {sql_text(f', expected {n}')}"),
    ]
    for f in fields:
        checks += _field_checks(f)
    checks += _row_checks(table, batch_date)
    case = "\n".join(f"            WHEN {cond} THEN {reason}" for cond, reason in checks)
    typed = ", ".join(f"{_typed(f)} AS {f.name}" for f in fields)
    return f"""
        WITH src AS (
            SELECT line_no, bad, string_split(rtrim(line, chr(13) || chr(10)), '|') AS f FROM {lines_view}
        ), fld AS (
            SELECT line_no, bad, len(f) AS nf, {raw_cols} FROM src
        )
        SELECT line_no, CASE
{case}
        END AS reason, {typed}
        FROM fld"""


# Cross-row checks: (join, condition, reason). Targets are the rows of other tables that passed.
_OK = "WHERE reason IS NULL"
_FX_JOIN = f"LEFT JOIN (SELECT currency FROM v_fx_rate {_OK}) fx ON fx.currency = s.currency"
_FX_CHECK = (
    "s.currency <> 'CNY' AND fx.currency IS NULL",
    "'no CBS_FX_RATE row for currency ' || s.currency",
)
_REFERENCES: dict[str, tuple[list[str], list[tuple[str, str]]]] = {
    "CUSTOMER": ([], []),
    "FX_RATE": ([], []),
    "ACCOUNT": (
        [f"LEFT JOIN (SELECT cust_id FROM v_customer {_OK}) c ON c.cust_id = s.cust_id"],
        [("c.cust_id IS NULL", "'cust_id ' || s.cust_id || ' not in CBS_CUSTOMER'")],
    ),
    "BALANCE": (
        [f"LEFT JOIN (SELECT acct_id, currency FROM v_account {_OK}) a ON a.acct_id = s.acct_id", _FX_JOIN],
        [
            ("a.acct_id IS NULL", "'acct_id ' || s.acct_id || ' not in CBS_ACCOUNT'"),
            (
                "s.currency <> a.currency",
                "'currency ' || s.currency || ' differs from account currency ' || a.currency",
            ),
            _FX_CHECK,
        ],
    ),
    "TXN": (
        [f"LEFT JOIN (SELECT acct_id FROM v_account {_OK}) a ON a.acct_id = s.acct_id", _FX_JOIN],
        [("a.acct_id IS NULL", "'acct_id ' || s.acct_id || ' not in CBS_ACCOUNT'"), _FX_CHECK],
    ),
    "LOAN": (
        [
            f"LEFT JOIN (SELECT cust_id FROM v_customer {_OK}) c ON c.cust_id = s.cust_id",
            f"LEFT JOIN (SELECT acct_id, cust_id, product_type FROM v_account {_OK}) a "
            "ON a.acct_id = s.acct_id",
            _FX_JOIN,
        ],
        [
            ("c.cust_id IS NULL", "'cust_id ' || s.cust_id || ' not in CBS_CUSTOMER'"),
            ("a.acct_id IS NULL", "'acct_id ' || s.acct_id || ' not in CBS_ACCOUNT'"),
            (
                "a.product_type <> 'LOAN'",
                "'acct_id ' || s.acct_id || ' is a ' || a.product_type || ' account, not LOAN'",
            ),
            (
                "a.cust_id <> s.cust_id",
                "'acct_id ' || s.acct_id || ' belongs to customer ' || a.cust_id || ', not ' || s.cust_id",
            ),
            _FX_CHECK,
        ],
    ),
}
# Which referenced table a "not in" reason points at, to tell a missing key from a quarantined one.
_TARGETS = {"CBS_CUSTOMER": ("v_customer", "cust_id"), "CBS_ACCOUNT": ("v_account", "acct_id")}


def _validate_sql(table: str, staged: str) -> str:
    """SQL that adds duplicate-key and reference checks to the row checks of one file (`staged`)."""
    key = KEYS[table]
    joins, checks = _REFERENCES[table]
    cols = ", ".join(f"s.{f.name}" for f in SPECS[table])
    text = ", s.line_text, s.is_reused" if table in raw_zone.SNAPSHOT_TABLES else ""
    # First valid row of a key wins; later ones are quarantined as duplicates. Keys seen twice are found
    # with an aggregate (hash, parallel) rather than a window over every row (sort).
    dup = (
        "s.reason IS NULL AND d.first_line IS NOT NULL AND s.line_no > d.first_line",
        f"'duplicate {key} ' || s.{key}",
    )
    case = "\n".join(f"            WHEN {c} THEN {r}" for c, r in [dup, *checks])
    return f"""
        WITH s AS MATERIALIZED ({staged}),
        d AS (
            SELECT {key}, min(line_no) AS first_line FROM s WHERE reason IS NULL
            GROUP BY {key} HAVING count(*) > 1
        )
        SELECT s.line_no, CASE
            WHEN s.reason IS NOT NULL THEN s.reason
{case}
        END AS reason, {cols}{text}
        FROM s
        LEFT JOIN d ON d.{key} = s.{key}
        {" ".join(joins)}"""


def _reusing_sql(table: str, lines_view: str, batch_date: dt.date, encoding: str) -> str:
    """Stage SQL for a daily-snapshot file: a line identical to the text of the latest loaded snapshot's row
    is that row again (validation of a snapshot line depends on its text alone), so only new or changed
    lines (a few hundred a day at 1 M customers) go through the field checks. Adds `line_text` (NULL for a
    reused row: the state already holds it) and `is_reused` (unchanged: raw_zone skips it when diffing)."""
    state = f"raw_state.{raw_zone.table_name(table)}"
    key = KEYS[table]
    names = ", ".join(f"st.{f.name}" for f in SPECS[table])
    fresh = f"(SELECT line_no, line, bad FROM matched WHERE {key} IS NULL)"
    return f"""
        WITH matched AS MATERIALIZED (
            -- One pass: each line with the state row whose text it equals (none: a new or changed line).
            SELECT l.line_no, l.line, l.bad, {names}
            FROM {lines_view} AS l
            -- (`bad` inside the key, not beside it: a left-only condition would make this a nested loop)
            LEFT JOIN {state} AS st
                ON st.line_text = CASE WHEN l.bad THEN NULL ELSE rtrim(l.line, chr(13) || chr(10)) END
        )
        SELECT line_no, CAST(NULL AS VARCHAR) AS reason, {", ".join(f.name for f in SPECS[table])},
               CAST(NULL AS VARCHAR) AS line_text, true AS is_reused
        FROM matched WHERE {key} IS NOT NULL
        UNION ALL
        SELECT checked.*, rtrim(src.line, chr(13) || chr(10)) AS line_text, false AS is_reused
        FROM ({_stage_sql(table, fresh, batch_date, encoding)}) AS checked
        JOIN {fresh} AS src ON src.line_no = checked.line_no"""


def validate_table(
    con: duckdb.DuckDBPyConnection, table: str, lines: pa.Table, batch_date: dt.date, encoding: str
) -> TableCounts:
    """Stage one file into temp table v_<table> (typed columns + reason, NULL when good); return its counts.

    Tables referenced by this one must have been validated first (VALIDATION_ORDER).
    """
    name = table.lower()
    view = f"lines_{name}"
    con.register(view, lines)
    if table in raw_zone.SNAPSHOT_TABLES:
        staged = _reusing_sql(table, view, batch_date, encoding)
    else:
        staged = _stage_sql(table, view, batch_date, encoding)
    con.execute(f"CREATE OR REPLACE TEMP TABLE v_{name} AS {_validate_sql(table, staged)}")
    loaded, quarantined, unresolved = con.execute(f"""
        SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL),
               count(*) FILTER (WHERE reason LIKE '% not in CBS_%')
        FROM v_{name}""").fetchone()
    referenced = " ".join(reason for _cond, reason in _REFERENCES[table][1])
    for target, (other, key) in _TARGETS.items():
        if not unresolved or target not in referenced:
            continue
        # Reword the few broken references whose target exists but was itself quarantined.
        con.execute(f"""
            UPDATE v_{name} SET reason = replace(reason, ' not in {target}', ' quarantined in {target}')
            WHERE reason LIKE '% not in {target}'
              AND split_part(reason, ' ', 2) IN (SELECT {key} FROM {other} WHERE reason IS NOT NULL)""")
    return TableCounts(len(lines), loaded, quarantined)


def _drop_staging(con: duckdb.DuckDBPyConnection) -> None:
    raw_zone.drop_temps(con)
    con.execute("; ".join(f"DROP TABLE IF EXISTS temp.v_{t.lower()}" for t in TABLES))
    for table in TABLES:
        try:
            con.unregister(f"lines_{table.lower()}")
        except Exception:  # noqa: BLE001 - nothing registered under that name
            pass


# ------------------------------------------------------------------------------------------ loading


def _loaded_state(con: duckdb.DuckDBPyConnection, batch_date: dt.date) -> dict[str, tuple]:
    """LOADED batch_log rows of a date: table → (file_name, records, loaded, quarantined, byte_size, md5)."""
    rows = con.execute(
        """
        SELECT table_name, file_name, records, loaded, quarantined, byte_size, md5 FROM audit.batch_log
        WHERE batch_date = ? AND status = 'LOADED'""",
        [batch_date],
    ).fetchall()
    return {row[0].removeprefix("CBS_"): row[1:] for row in rows}


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[list]) -> None:
    # One statement for all rows: each statement costs milliseconds, which adds up over many batches.
    width = len(rows[0])
    values = ", ".join("(" + ", ".join(["?"] * width) + ")" for _ in rows)
    con.execute(f"INSERT INTO {table} VALUES {values}", [v for row in rows for v in row])


def _record_attempt(con: duckdb.DuckDBPyConnection, batch_date: dt.date, outcome: str, message: str) -> None:
    con.execute(
        "INSERT INTO audit.load_attempt VALUES (?, ?, ?, ?)",
        [batch_date, outcome, message, dt.datetime.now()],
    )


def _load(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    batch_date: dt.date,
    files: dict[str, DataFile],
    counts: dict[str, TableCounts],
    outcome: str,
    message: str,
    started: dt.datetime,
) -> None:
    """Write the batch's raw files, then commit its quarantine, batch_log rows and raw views in one transaction.

    The batch_log rows name the files: until they commit no reader sees the batch (flows.stages.raw_zone).
    """
    now = dt.datetime.now()
    # File order (the checks shuffle rows): sequential keys compress and scan better. Snapshot rows keep
    # their line text for the next day's reuse (raw_state).
    accepted = {
        t: f"SELECT {', '.join(f.name for f in SPECS[t])}"
        f"{', line_text, is_reused' if t in raw_zone.SNAPSHOT_TABLES else ''} FROM v_{t.lower()} "
        "WHERE reason IS NULL ORDER BY line_no"
        for t in TABLES
    }
    staged = raw_zone.stage_batch(con, warehouse, batch_date, accepted)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM audit.quarantine WHERE batch_date = ?", [batch_date])
        # Only files with quarantined records: fetching raw text scans the whole file's lines.
        with_bad = [t for t in TABLES if counts[t].quarantined]
        if with_bad:
            con.execute(
                "INSERT INTO audit.quarantine "
                + " UNION ALL ".join(
                    f"""(SELECT $d, 'CBS_{t}', {sql_text(files[t].control.file_name)}, v.line_no,
                            rtrim(l.line, chr(13) || chr(10)), v.reason, $now
                         FROM v_{t.lower()} v JOIN lines_{t.lower()} l ON l.line_no = v.line_no
                         WHERE v.reason IS NOT NULL)"""
                    for t in with_bad
                ),
                {"d": batch_date, "now": now},
            )
        con.execute("DELETE FROM audit.batch_log WHERE batch_date = ?", [batch_date])
        log_rows = [
            [
                batch_date,
                f"CBS_{t}",
                files[t].control.file_name,
                counts[t].records,
                counts[t].loaded,
                counts[t].quarantined,
                len(files[t].data),
                files[t].md5,
                files[t].control.encoding,
                "LOADED",
                message or None,
                started,
                dt.datetime.now(),
                staged.load_id,
                *staged.entries[t],
            ]
            for t in TABLES
        ]
        _insert_rows(con, "audit.batch_log", log_rows)
        _record_attempt(con, batch_date, outcome, message)
        raw_zone.apply_staged(con, warehouse, staged)
        crash_point("ingest:before-commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        staged.discard()
        raise
    try:
        staged.remove_superseded()
    except OSError as exc:  # committed already: a leftover file is an orphan the next ingest removes
        logging.getLogger(__name__).warning("superseded raw files of %s not removed: %s", batch_date, exc)


def _record_failure(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    batch_date: dt.date,
    failure: _BatchFailure,
    started: dt.datetime,
    already_loaded: bool,
    controls: dict[str, ControlFile],
) -> None:
    """Log a failed batch: batch_log rows only for a date never loaded, plus the attempt itself."""
    status = {"rejected": "REJECTED", "incomplete": "INCOMPLETE"}.get(failure.outcome)
    con.execute("BEGIN TRANSACTION")
    try:
        if status and not already_loaded:
            con.execute("DELETE FROM audit.batch_log WHERE batch_date = ?", [batch_date])
            folder = Path(landing) / date_tag(batch_date)
            log_rows = []
            for table in TABLES:
                ctl = controls.get(table)
                dat = folder / data_file_name(table, batch_date)
                size = dat.stat().st_size if dat.is_file() else None
                log_rows.append(
                    [batch_date, f"CBS_{table}", dat.name, None, 0, 0, size, None]
                    + [ctl.encoding if ctl else None, status, failure.message, started, dt.datetime.now()]
                    + [None, None, None]
                )
            _insert_rows(con, "audit.batch_log", log_rows)
        _record_attempt(con, batch_date, failure.outcome, failure.message)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class _Waiter:
    """Polls for missing files; the wait is bounded per ingest call, not per batch."""

    def __init__(self, wait_seconds: float, poll_seconds: float):
        self.wait_seconds, self.poll_seconds = max(0.0, wait_seconds), max(0.01, poll_seconds)
        self.deadline: float | None = None

    def missing_after_wait(
        self, check: Callable[[], list[str]], say: Callable[[str], None], what: str
    ) -> list[str]:
        missing = check()
        if missing and self.deadline is None:
            self.deadline = time.monotonic() + self.wait_seconds
        while missing and time.monotonic() < self.deadline:
            say(f"{what}: waiting for {len(missing)} file(s), e.g. {missing[0]}")
            time.sleep(min(self.poll_seconds, max(0.0, self.deadline - time.monotonic())))
            missing = check()
        return missing


def _ingest_one(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    landing: Path,
    batch_date: dt.date,
    force: bool,
    waiter: _Waiter,
    say: Callable[[str], None],
) -> BatchResult:
    started = dt.datetime.now()
    tag = date_tag(batch_date)
    folder = Path(landing) / tag
    before = _loaded_state(con, batch_date)
    controls: dict[str, ControlFile] = {}
    try:
        missing = waiter.missing_after_wait(lambda: missing_files(landing, batch_date), say, tag)
        if missing:
            where = "folder missing" if not folder.is_dir() else "missing " + ", ".join(missing)
            raise _BatchFailure("incomplete", f"batch {tag} incomplete after waiting: {where}")
        for table in TABLES:
            controls[table] = parse_control_file(
                folder / control_file_name(table, batch_date), data_file_name(table, batch_date)
            )
        # An identical re-delivery is never reloaded, with or without --force: replacing a batch restates
        # every month from its month on (flows.stages.month_plan), so only a changed batch may do that.
        if before and _same_as_loaded(folder, controls, before):
            return _unchanged(con, batch_date, before)
        files = _read_data_files(folder, controls)
        if before:
            changed = [
                f"{f.control.file_name} md5 {before[t][5]} loaded, {f.md5} now"
                for t, f in files.items()
                if t not in before or before[t][5] != f.md5
            ]
            if not changed:
                return _unchanged(con, batch_date, before)
        if before and not force:
            raise _BatchFailure(
                "refused",
                f"batch {tag} is already loaded with different content ("
                + "; ".join(changed)
                + "); pass --force to replace it",
            )
    except _BatchFailure as failure:
        _record_failure(con, landing, batch_date, failure, started, bool(before), controls)
        return BatchResult(batch_date, failure.outcome, failure.message)

    outcome = "replaced" if before else "loaded"
    try:
        counts = {}
        # Decoding (Python) runs one table ahead in a thread while DuckDB (which releases the GIL) checks
        # the table before it.
        with ThreadPoolExecutor(max_workers=1) as decoder:
            decoded = {t: decoder.submit(decode_lines, files[t].data, files[t].control.codec)
                       for t in VALIDATION_ORDER}
            for table in VALIDATION_ORDER:
                t0 = time.perf_counter()
                counts[table] = validate_table(con, table, decoded[table].result(), batch_date,
                                               files[table].control.encoding)
                decoded[table] = None  # free the table's lines as soon as it is checked
                say(
                    f"{tag} CBS_{table}: {counts[table].records} records checked "
                    f"in {time.perf_counter() - t0:.2f} s"
                )
        quarantined = [f"{t} {counts[t].quarantined}" for t in TABLES if counts[t].quarantined]
        message = ("quarantined " + ", ".join(quarantined)) if quarantined else ""
        t0 = time.perf_counter()
        _load(con, warehouse, batch_date, files, counts, outcome, message, started)
    except Exception as exc:  # noqa: BLE001 - any failure must leave raw untouched and be reported
        say(f"{tag}: load failed and was rolled back:\n{traceback.format_exc()}")
        failure = _BatchFailure(
            "rejected",
            f"batch {tag} load failed and was rolled back: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
        _record_failure(con, landing, batch_date, failure, started, bool(before), controls)
        return BatchResult(batch_date, failure.outcome, failure.message)
    finally:
        _drop_staging(con)
    # Committed: nothing after this point may turn the batch into a failure.
    say(f"{tag}: written in {time.perf_counter() - t0:.2f} s")
    return BatchResult(batch_date, outcome, message, {t: counts[t] for t in TABLES})


def _read_data_files(folder: Path, controls: dict[str, ControlFile]) -> dict[str, DataFile]:
    """Read and check the batch's six files in parallel (hashlib releases the GIL while it hashes)."""
    with ThreadPoolExecutor(max_workers=len(TABLES)) as pool:
        futures = {t: pool.submit(read_data_file, folder / controls[t].file_name, controls[t]) for t in TABLES}
        return {t: futures[t].result() for t in TABLES}


def _same_as_loaded(folder: Path, controls: dict[str, ControlFile], before: dict[str, tuple]) -> bool:
    # Cheap re-delivery check from the .ok files and file sizes, so old batches are not re-read each run.
    for table, ctl in controls.items():
        row = before.get(table)
        dat = folder / ctl.file_name
        if row is None or row[5] != ctl.md5 or row[4] != ctl.byte_size or dat.stat().st_size != ctl.byte_size:
            return False
    return True


def _unchanged(con: duckdb.DuckDBPyConnection, batch_date: dt.date, before: dict[str, tuple]) -> BatchResult:
    message = "already loaded with identical content"
    _record_attempt(con, batch_date, "unchanged", message)
    tables = {t: TableCounts(row[1], row[2], row[3]) for t, row in before.items()}
    return BatchResult(batch_date, "unchanged", message, {t: tables[t] for t in TABLES if t in tables})


def ingest_batches(
    landing: Path,
    working_db: Path,
    *,
    date: dt.date | None = None,
    through: dt.date | None = None,
    force: bool = False,
    wait_seconds: float = 60,
    poll_seconds: float = 5,
    progress: Callable[[str], None] | None = None,
    batches_done: Callable[[int, int], None] | None = None,
    batch_finished: Callable[[BatchResult], None] | None = None,
    duckdb_config: dict | None = None,
) -> IngestReport:
    """Load the batches of a landing folder into raw, in date order, each all-or-nothing.

    `date` picks one batch, `through` the batches up to that date, neither all of them; `force`
    replaces a loaded date whose content changed. Failures are reported, never raised.
    `progress` gets per-step messages; `batches_done(done, total)` is called before the first batch and
    after each one (for progress bars); `batch_finished` gets each batch's result as soon as it is known
    (for one log line per batch while a long ingest runs). `duckdb_config` sets DuckDB's memory limit,
    threads and temp directory (Settings.duckdb_config()).
    """
    if date is not None and through is not None:
        raise ValueError("pass either date or through, not both")
    landing, working_db = Path(landing), Path(working_db).resolve()
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder not found: {landing}")
    say = progress or (lambda _message: None)
    dates = [date] if date is not None else discover_batches(landing, through)
    working_db.parent.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    con = duckdb.connect(str(working_db), config=dict(duckdb_config or {}))
    try:
        con.execute("SET enable_progress_bar = false")
        ensure_schema(con, working_db.parent)
        raw_zone.remove_orphans(con, working_db.parent)
        waiter = _Waiter(wait_seconds, poll_seconds)
        tick = batches_done or (lambda _done, _total: None)
        tick(0, len(dates))
        for batch_date in dates:
            result = _ingest_one(con, working_db.parent, landing, batch_date, force, waiter, say)
            report.batches.append(result)
            if batch_finished is not None:
                batch_finished(result)
            tick(len(report.batches), len(dates))
    finally:
        con.close()
    return report
