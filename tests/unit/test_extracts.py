"""Ingestion (landing → raw zone) on a real DuckDB file: a test per bad-input row of the spec and check family."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from flows.stages import extracts, raw_zone
from flows.stages.extracts import TABLES, IngestReport, decode_lines, ensure_schema, ingest_batches
from tests.support.batches import rows_with, sample_rows, write_batch, write_ok

D = dt.date(2025, 3, 31)
TAG = "20250331"
FACTS = ("BALANCE", "TXN", "FX_RATE")
SNAPSHOTS = ("CUSTOMER", "ACCOUNT", "LOAN")


def ingest(tmp_path: Path, **kwargs) -> IngestReport:
    kwargs.setdefault("wait_seconds", 0)
    kwargs.setdefault("poll_seconds", 0.01)
    return ingest_batches(tmp_path / "landing", tmp_path / "wh" / "tiering.duckdb", **kwargs)


def query(tmp_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "wh" / "tiering.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def delivered(table: str, day: dt.date = D) -> str:
    """A relation of the `table` records loaded for `day`: the fact view's rows of that date, or for a
    snapshot table the snapshot delivered that day, rebuilt from the change history."""
    if table in SNAPSHOTS:
        return f"({raw_zone.state_at_sql(table, day)})"
    return f"(SELECT * EXCLUDE (batch_date) FROM raw.cbs_{table.lower()} WHERE batch_date = DATE '{day}')"


def raw_files(tmp_path: Path) -> list[str]:
    """The Parquet files of the raw zone, relative to the warehouse (load ids make the names unique)."""
    warehouse = tmp_path / "wh"
    return sorted(str(p.relative_to(warehouse)) for p in (warehouse / "raw").rglob("*.parquet"))


def snapshot(tmp_path: Path) -> dict[str, list]:
    """Every row of every raw view, raw_state and audit table except the attempt log, and the raw files."""
    names = (
        [f"raw.cbs_{t.lower()}" for t in FACTS]
        + [f"raw.cbs_{t.lower()}_{kind}" for t in SNAPSHOTS for kind in ("changes", "versions")]
        + [f"raw_state.cbs_{t.lower()}" for t in SNAPSHOTS]
        + ["audit.batch_log", "audit.quarantine"]
    )
    with duckdb.connect(str(tmp_path / "wh" / "tiering.duckdb"), read_only=True) as con:
        rows = {n: con.execute(f"SELECT * FROM {n} ORDER BY ALL").fetchall() for n in names}
    return rows | {"files": raw_files(tmp_path)}


def quarantine(tmp_path: Path) -> list[tuple]:
    return query(tmp_path, "SELECT table_name, line_no, raw_text, reason FROM audit.quarantine ORDER BY ALL")


def assert_all_accounted(tmp_path: Path, result) -> None:
    """Every record read is either in raw or in the quarantine, per table, in the report and in the tables;
    the batch_log row names the Parquet file of the batch and how many rows it holds."""
    assert set(result.tables) == set(TABLES)
    warehouse = tmp_path / "wh"
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        for table, counts in result.tables.items():
            assert counts.loaded + counts.quarantined == counts.records, table
            stored = con.execute(
                f"""
                SELECT (SELECT count(*) FROM {delivered(table, result.batch_date)}),
                       (SELECT count(*) FROM audit.quarantine WHERE batch_date = $d AND table_name = $t),
                       (SELECT [records, loaded, quarantined] FROM audit.batch_log
                        WHERE batch_date = $d AND table_name = $t)""",
                {"d": result.batch_date, "t": f"CBS_{table}"},
            ).fetchone()
            assert stored == (
                counts.loaded,
                counts.quarantined,
                [counts.records, counts.loaded, counts.quarantined],
            ), table
            raw_file, stored_rows = con.execute(
                "SELECT raw_file, stored_rows FROM audit.batch_log WHERE batch_date = ? AND table_name = ?",
                [result.batch_date, f"CBS_{table}"],
            ).fetchone()
            assert raw_file.startswith(f"raw/cbs_{table.lower()}/batch_date={result.batch_date}/load-"), table
            in_file = con.execute("SELECT count(*) FROM read_parquet(?)", [str(warehouse / raw_file)]).fetchone()
            assert in_file == (stored_rows,), table
            if table in FACTS:
                assert stored_rows == counts.loaded, table  # facts keep every accepted record


def mutated(table: str, index: int, field: int, value) -> dict:
    rows = sample_rows(D)
    rows[table][index][field] = value
    return rows


# ------------------------------------------------------------------------------------------ schema & good

# Written out from docs/ARCHITECTURE.md, independently of the field specs in the code: the fields of each
# extract table with their SQL types.
FIELDS = {
    "cbs_customer": """cust_id VARCHAR, cust_type VARCHAR, cust_name VARCHAR, cert_type VARCHAR,
        cert_no VARCHAR, mobile VARCHAR, birth_date DATE, gender VARCHAR, education VARCHAR,
        occupation VARCHAR, monthly_income DECIMAL(18,2), industry_code VARCHAR, branch_id VARCHAR,
        open_date DATE, kyc_risk_level VARCHAR, status VARCHAR""",
    "cbs_account": """acct_id VARCHAR, cust_id VARCHAR, product_type VARCHAR, currency VARCHAR,
        open_date DATE, close_date DATE, status VARCHAR""",
    "cbs_balance": "acct_id VARCHAR, bal_date DATE, balance DECIMAL(18,2), currency VARCHAR",
    "cbs_txn": """txn_id VARCHAR, acct_id VARCHAR, txn_time TIMESTAMP, txn_type VARCHAR,
        amount DECIMAL(18,2), currency VARCHAR, channel VARCHAR, cash_flag VARCHAR,
        counterparty_country VARCHAR""",
    "cbs_loan": """loan_id VARCHAR, cust_id VARCHAR, acct_id VARCHAR, loan_type VARCHAR,
        principal DECIMAL(18,2), outstanding DECIMAL(18,2), currency VARCHAR, dpd INTEGER,
        five_class VARCHAR, maturity_date DATE""",
    "cbs_fx_rate": "currency VARCHAR, rate_date DATE, cny_per_unit DECIMAL(18,6)",
}
RAW_VIEWS = (
    {f"cbs_{t.lower()}": "batch_date DATE, " + FIELDS[f"cbs_{t.lower()}"] for t in FACTS}
    | {f"cbs_{t.lower()}_changes": "batch_date DATE, is_deleted BOOLEAN, " + FIELDS[f"cbs_{t.lower()}"]
       for t in SNAPSHOTS}
    | {f"cbs_{t.lower()}_versions": "valid_from DATE, valid_to DATE, " + FIELDS[f"cbs_{t.lower()}"]
       for t in SNAPSHOTS}
)
AUDIT_TABLES = {
    "batch_log": """batch_date DATE, table_name VARCHAR, file_name VARCHAR, records BIGINT, loaded BIGINT,
        quarantined BIGINT, byte_size BIGINT, md5 VARCHAR, encoding VARCHAR, status VARCHAR,
        message VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, load_id VARCHAR, raw_file VARCHAR,
        stored_rows BIGINT""",
    "quarantine": """batch_date DATE, table_name VARCHAR, file_name VARCHAR, line_no BIGINT,
        raw_text VARCHAR, reason VARCHAR, quarantined_at TIMESTAMP""",
    "load_attempt": "batch_date DATE, outcome VARCHAR, message VARCHAR, attempted_at TIMESTAMP",
}


def assert_contract(con: duckdb.DuckDBPyConnection) -> None:
    def columns(schema: str, name: str) -> str:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        return ", ".join(f"{c} {t}" for c, t in rows)

    # raw holds views only (over the Parquet raw zone), exactly these, each with exactly these columns.
    assert sorted(con.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'raw'"
    ).fetchall()) == sorted((name, "VIEW") for name in RAW_VIEWS)
    for name, expected in RAW_VIEWS.items():
        assert columns("raw", name) == " ".join(expected.split()), name
    for name, expected in AUDIT_TABLES.items():
        assert columns("audit", name) == " ".join(expected.split()), name


def test_schema_is_exactly_the_architecture_contract(tmp_path):
    with duckdb.connect(str(tmp_path / "t.duckdb")) as con:
        ensure_schema(con)  # warehouse = the database file's folder
        ensure_schema(con)  # idempotent
        assert_contract(con)  # empty views are typed too
        assert con.execute("SELECT count(*) FROM raw.cbs_customer_versions").fetchone() == (0,)
    with duckdb.connect(":memory:") as con, pytest.raises(ValueError, match="pass warehouse="):
        ensure_schema(con)
    # Once a batch is loaded the views read Parquet files: their column types come from the files.
    write_batch(tmp_path / "landing", D)
    ingest(tmp_path)
    with duckdb.connect(str(tmp_path / "wh" / "tiering.duckdb"), read_only=True) as con:
        assert_contract(con)
        assert con.execute("SELECT count(*) FROM raw.cbs_customer_versions").fetchone() == (3,)


def test_good_batch_loads_typed_and_logged(tmp_path):
    folder = write_batch(tmp_path / "landing", D)
    report = ingest(tmp_path)
    (result,) = report.batches
    assert (result.outcome, result.message, report.failed) == ("loaded", "", [])
    assert {t: c.records for t, c in result.tables.items()} == {t: len(r) for t, r in sample_rows(D).items()}
    assert result.quarantined == 0
    assert_all_accounted(tmp_path, result)
    assert query(
        tmp_path,
        f"SELECT cust_name, birth_date, monthly_income FROM {delivered('CUSTOMER')} WHERE cust_id = 'C001'",
    ) == [("张三", dt.date(1990, 1, 1), Decimal("25000.00"))]
    # The first batch's versions start on its date and are current.
    assert query(
        tmp_path, "SELECT cust_id, valid_from, valid_to FROM raw.cbs_customer_versions ORDER BY cust_id"
    ) == [("C001", D, None), ("C002", D, None), ("C003", D, None)]
    assert query(
        tmp_path, "SELECT acct_id, bal_date, balance FROM raw.cbs_balance ORDER BY acct_id LIMIT 2"
    ) == [("A001", D, Decimal("1000.50")), ("A002", D, Decimal("200.00"))]
    assert query(
        tmp_path, "SELECT txn_time, amount, counterparty_country FROM raw.cbs_txn WHERE txn_id = 'T002'"
    ) == [(dt.datetime(2025, 3, 31, 10, 15), Decimal("50.25"), "US")]
    assert query(tmp_path, f"SELECT dpd, maturity_date FROM {delivered('LOAN')}") == [(0, dt.date(2045, 1, 1))]
    assert query(tmp_path, "SELECT cny_per_unit FROM raw.cbs_fx_rate WHERE currency = 'USD'") == [
        (Decimal("7.123456"),)
    ]
    assert query(
        tmp_path,
        f"SELECT close_date, mobile FROM {delivered('ACCOUNT')} JOIN {delivered('CUSTOMER')} USING (cust_id) "
        "WHERE acct_id = 'A004'",
    ) == [(None, None)]  # empty field = NULL
    data = (folder / f"CBS_BALANCE_{TAG}.dat").read_bytes()
    assert query(
        tmp_path,
        "SELECT file_name, byte_size, md5, encoding, status, started_at <= finished_at "
        "FROM audit.batch_log WHERE table_name = 'CBS_BALANCE'",
    ) == [(f"CBS_BALANCE_{TAG}.dat", len(data), hashlib.md5(data).hexdigest(), "GBK", "LOADED", True)]
    assert query(tmp_path, "SELECT outcome FROM audit.load_attempt") == [("loaded",)]
    # One load id names the batch's six files, one per table in its date partition; the first snapshot
    # of a table is stored whole (every row is new), nothing deleted.
    ((load_id,),) = query(tmp_path, "SELECT DISTINCT load_id FROM audit.batch_log")
    logged = query(tmp_path, "SELECT table_name, raw_file, stored_rows FROM audit.batch_log ORDER BY 1")
    assert logged == sorted(
        (f"CBS_{t}", f"raw/cbs_{t.lower()}/batch_date=2025-03-31/load-{load_id}/part.parquet", len(rows))
        for t, rows in sample_rows(D).items()
    )
    assert raw_files(tmp_path) == sorted(f for _, f, _ in logged)
    assert query(tmp_path, "SELECT count(*) FROM raw.cbs_customer_changes WHERE is_deleted") == [(0,)]
    assert query(tmp_path, "SELECT batch_date, cny_per_unit FROM raw.cbs_fx_rate WHERE currency = 'HKD'") == [
        (D, Decimal("0.912000"))
    ]


def test_money_and_rates_are_exact_decimals(tmp_path):
    rows = mutated("BALANCE", 0, 2, "12345678901234.57")
    rows["FX_RATE"][1][2] = "0.000001"
    write_batch(tmp_path / "landing", D, rows)
    ingest(tmp_path)
    assert query(tmp_path, "SELECT balance FROM raw.cbs_balance WHERE acct_id = 'A001'") == [
        (Decimal("12345678901234.57"),)
    ]
    assert query(tmp_path, "SELECT cny_per_unit FROM raw.cbs_fx_rate WHERE currency = 'HKD'") == [
        (Decimal("0.000001"),)
    ]


def test_utf8_batch_loads(tmp_path):
    write_batch(tmp_path / "landing", D, encoding="UTF-8")
    (result,) = ingest(tmp_path).batches
    assert (result.outcome, result.quarantined) == ("loaded", 0)
    assert query(tmp_path, "SELECT DISTINCT encoding FROM audit.batch_log") == [("UTF-8",)]
    assert query(tmp_path, f"SELECT cust_name FROM {delivered('CUSTOMER')} WHERE cust_id = 'C002'") == [
        ("华夏贸易有限公司",)
    ]


def gbk_chars_with_pipe_second_byte() -> str:
    """CJK characters whose GBK encoding has 0x7C ('|') as its second byte, found by scanning."""
    found = []
    for cp in range(0x4E00, 0x9FA6):
        try:
            encoded = chr(cp).encode("gbk")
        except UnicodeEncodeError:
            continue
        if len(encoded) == 2 and encoded[1] == 0x7C:
            found.append(chr(cp))
    return "".join(found[:3])


def test_gbk_name_with_pipe_as_second_byte_is_not_split(tmp_path):
    chars = gbk_chars_with_pipe_second_byte()
    assert len(chars) == 3 and all(c.encode("gbk")[1:] == b"|" for c in chars)
    name = "王" + chars
    write_batch(tmp_path / "landing", D, mutated("CUSTOMER", 0, 2, name))
    (result,) = ingest(tmp_path).batches
    assert (result.outcome, result.quarantined) == ("loaded", 0)
    assert query(tmp_path, f"SELECT cust_name, cert_type FROM {delivered('CUSTOMER')} WHERE cust_id = 'C001'") == [
        (name, "01")
    ]


def test_trailing_carriage_return_is_tolerated(tmp_path):
    write_batch(tmp_path / "landing", D, newline="\r\n")
    (result,) = ingest(tmp_path).batches
    assert (result.outcome, result.quarantined) == ("loaded", 0)
    assert query(tmp_path, f"SELECT DISTINCT status FROM {delivered('CUSTOMER')} ORDER BY 1") == [("A",), ("D",)]
    assert query(tmp_path, "SELECT cny_per_unit FROM raw.cbs_fx_rate WHERE currency = 'USD'") == [
        (Decimal("7.123456"),)
    ]
    assert query(tmp_path, "SELECT count(*) FROM raw.cbs_txn WHERE counterparty_country IS NULL") == [(2,)]


def test_last_line_without_newline_is_a_record(tmp_path):
    folder = write_batch(tmp_path / "landing", D)
    path = folder / f"CBS_FX_RATE_{TAG}.dat"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    write_ok(folder, "FX_RATE", D)
    (result,) = ingest(tmp_path).batches
    assert result.tables["FX_RATE"] == extracts.TableCounts(2, 2, 0)


def test_decode_lines_splits_on_newlines_only():
    name = "王" + gbk_chars_with_pipe_second_byte()
    data = f"a|{name}\r\nb|x\n".encode("gbk") + b"c|\xff\xfe\n"
    table = decode_lines(data, "gbk")
    assert table.column("line").to_pylist() == [f"a|{name}\r\n", "b|x\n", "c|\\xff\\xfe\n"]
    assert table.column("bad").to_pylist() == [False, False, True]
    assert table.column("line_no").to_pylist() == [1, 2, 3]


# ------------------------------------------------------------------------------------------ completeness


@pytest.mark.parametrize(
    "skip_dat, skip_ok, named",
    [
        ((), ("TXN",), f"CBS_TXN_{TAG}.ok"),
        (("LOAN",), ("LOAN",), f"CBS_LOAN_{TAG}.dat"),
    ],
)
def test_missing_control_file_or_table_is_incomplete(tmp_path, skip_dat, skip_ok, named):
    write_batch(tmp_path / "landing", D, skip_dat=skip_dat, skip_ok=skip_ok)
    report = ingest(tmp_path, wait_seconds=0.2, poll_seconds=0.05)
    (result,) = report.batches
    assert result.outcome == "incomplete" and report.failed == [result]
    assert named in result.message
    assert all(rows == [] for name, rows in snapshot(tmp_path).items() if name != "audit.batch_log")
    assert query(tmp_path, "SELECT DISTINCT status, message FROM audit.batch_log") == [
        ("INCOMPLETE", result.message)
    ]
    assert query(tmp_path, "SELECT outcome FROM audit.load_attempt") == [("incomplete",)]


def test_waits_for_a_control_file_that_arrives_late(tmp_path):
    folder = write_batch(tmp_path / "landing", D, skip_ok=("BALANCE",))
    timer = threading.Timer(0.3, write_ok, args=(folder, "BALANCE", D))
    timer.start()
    try:
        (result,) = ingest(tmp_path, wait_seconds=20, poll_seconds=0.05).batches
    finally:
        timer.join()
    assert result.outcome == "loaded"


def test_data_file_without_control_file_is_never_read(tmp_path, monkeypatch):
    write_batch(tmp_path / "landing", D, skip_ok=("TXN",))
    read = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or original(self))
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "incomplete"
    assert not [name for name in read if name.endswith(".dat")]


def test_requested_date_without_folder_is_incomplete(tmp_path):
    write_batch(tmp_path / "landing", D)
    (result,) = ingest(tmp_path, date=D + dt.timedelta(days=1)).batches
    assert (result.outcome, result.batch_date) == ("incomplete", D + dt.timedelta(days=1))
    assert "folder missing" in result.message


# ------------------------------------------------------------------------------------------ control totals


@pytest.mark.parametrize(
    "figure, wrong, expected",
    [
        ("records", 99, "record count 99 in .ok, 5 in file"),
        ("byte_size", 7, "byte size 7 in .ok, "),
        ("md5", "0" * 32, f"md5 {'0' * 32} in .ok, "),
    ],
)
def test_control_total_mismatch_rejects_the_whole_batch(tmp_path, figure, wrong, expected):
    write_batch(tmp_path / "landing", D, ok_override={"BALANCE": {figure: wrong}})
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "rejected"
    assert f"CBS_BALANCE_{TAG}.dat" in result.message and expected in result.message
    assert all(rows == [] for name, rows in snapshot(tmp_path).items() if name != "audit.batch_log")
    assert query(tmp_path, "SELECT count(*), min(status), min(message) FROM audit.batch_log") == [
        (6, "REJECTED", result.message)
    ]


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"encoding": "LATIN1"}, "encoding 'LATIN1' is not GBK or UTF-8"),
        ({"file_name": "CBS_TXN_20250330.dat"}, "names data file 'CBS_TXN_20250330.dat'"),
        ({"records": "five"}, "not integers"),
    ],
)
def test_malformed_control_file_rejects(tmp_path, override, expected):
    write_batch(tmp_path / "landing", D, ok_override={"TXN": override})
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "rejected"
    assert f"CBS_TXN_{TAG}.ok" in result.message and expected in result.message


def test_unreadable_data_file_rejects(tmp_path):
    folder = write_batch(tmp_path / "landing", D)
    (folder / f"CBS_LOAN_{TAG}.dat").unlink()
    (folder / f"CBS_LOAN_{TAG}.dat").mkdir()  # present but not readable as a file
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "rejected" and f"CBS_LOAN_{TAG}" in result.message


def test_rejected_batch_leaves_a_loaded_date_untouched(tmp_path):
    write_batch(tmp_path / "landing", D, mutated("TXN", 0, 3, "BAD"))
    assert ingest(tmp_path).batches[0].outcome == "loaded"
    before = snapshot(tmp_path)
    write_batch(
        tmp_path / "landing", D, mutated("BALANCE", 0, 2, "1.00"), ok_override={"BALANCE": {"md5": "f" * 32}}
    )
    (result,) = ingest(tmp_path, force=True).batches
    assert result.outcome == "rejected"
    assert snapshot(tmp_path) == before
    assert query(tmp_path, "SELECT outcome FROM audit.load_attempt ORDER BY attempted_at") == [
        ("loaded",),
        ("rejected",),
    ]


def test_rejected_date_loads_once_fixed(tmp_path):
    write_batch(tmp_path / "landing", D, ok_override={"TXN": {"records": 1}})
    assert ingest(tmp_path).batches[0].outcome == "rejected"
    write_batch(tmp_path / "landing", D)
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "loaded"
    assert query(tmp_path, "SELECT DISTINCT status FROM audit.batch_log") == [("LOADED",)]


# ------------------------------------------------------------------------------------------ decoding


def test_undecodable_line_is_quarantined_and_the_rest_loads(tmp_path):
    bad = b"C009|P|\xff\xfe|01|X1||19900101|M||||||20200101|L|A"
    rows = sample_rows(D)
    rows["CUSTOMER"].insert(1, bad)
    write_batch(tmp_path / "landing", D, rows)
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "loaded"
    assert result.tables["CUSTOMER"] == extracts.TableCounts(4, 3, 1)
    assert quarantine(tmp_path) == [
        (
            "CBS_CUSTOMER",
            2,
            "C009|P|\\xff\\xfe|01|X1||19900101|M||||||20200101|L|A",
            "undecodable bytes in GBK",
        )
    ]
    assert query(tmp_path, f"SELECT cust_name FROM {delivered('CUSTOMER')} WHERE cust_id = 'C002'") == [
        ("华夏贸易有限公司",)
    ]
    assert_all_accounted(tmp_path, result)


def test_gbk_bytes_in_a_utf8_file_are_quarantined(tmp_path):
    rows = sample_rows(D)
    rows["CUSTOMER"][2] = "|".join("" if v is None else v for v in rows["CUSTOMER"][2]).encode("gbk")
    write_batch(tmp_path / "landing", D, rows, encoding="UTF-8")
    (result,) = ingest(tmp_path).batches
    assert [(t, n, r) for t, n, _, r in quarantine(tmp_path)] == [
        ("CBS_ACCOUNT", 5, "cust_id C003 quarantined in CBS_CUSTOMER"),
        ("CBS_BALANCE", 5, "acct_id A005 quarantined in CBS_ACCOUNT"),
        ("CBS_CUSTOMER", 3, "undecodable bytes in UTF-8"),
    ]


# ------------------------------------------------------------------------------------------ record checks


def reasons_for(tmp_path, cases: list[tuple]) -> tuple[list[str], list[str]]:
    """Each case (table, row, field, value, reason) spoils one field of the sample batch of its own date.

    All dates load in one ingest call; returns (reasons found, reasons expected) with `{d}`/`{prev}` in
    values and reasons standing for the batch date and the day before.
    """
    found, expected = [], []
    for i, (table, index, field, value, reason) in enumerate(cases):
        day = D + dt.timedelta(days=i)
        tags = {"d": f"{day:%Y%m%d}", "prev": f"{day - dt.timedelta(days=1):%Y%m%d}"}
        rows = sample_rows(day)
        rows[table][index][field] = value.format(**tags)
        write_batch(tmp_path / "landing", day, rows)
        expected.append(reason.format(**tags))
    report = ingest(tmp_path)
    for (table, index, *_), result in zip(cases, report.batches, strict=True):
        assert result.outcome == "loaded", result.summary_line()
        assert_all_accounted(tmp_path, result)
        reasons = query(
            tmp_path,
            "SELECT reason FROM audit.quarantine WHERE batch_date = ? AND table_name = ? AND line_no = ?",
            [result.batch_date, f"CBS_{table}", index + 1],
        )
        found.append(reasons[0][0] if len(reasons) == 1 else f"{len(reasons)} quarantine rows")
    return found, expected


def test_wrong_field_count_is_quarantined(tmp_path):
    rows = sample_rows(D)
    rows["CUSTOMER"][1] = rows["CUSTOMER"][1][:15]
    rows["FX_RATE"].append(["EUR", TAG, "7.8", ""])
    write_batch(tmp_path / "landing", D, rows)
    ingest(tmp_path)
    assert [(t, n, r) for t, n, _, r in quarantine(tmp_path)] == [
        ("CBS_ACCOUNT", 4, "cust_id C002 quarantined in CBS_CUSTOMER"),
        ("CBS_BALANCE", 4, "acct_id A004 quarantined in CBS_ACCOUNT"),
        ("CBS_CUSTOMER", 2, "field count 15, expected 16"),
        ("CBS_FX_RATE", 3, "field count 4, expected 3"),
        ("CBS_TXN", 3, "acct_id A004 quarantined in CBS_ACCOUNT"),
    ]


def test_bad_code_is_quarantined(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("CUSTOMER", 2, 1, "X", "bad code in field cust_type: 'X'"),
            ("CUSTOMER", 2, 1, "p", "bad code in field cust_type: 'p'"),
            ("CUSTOMER", 2, 3, "03", "bad code in field cert_type: '03'"),
            ("CUSTOMER", 0, 9, "PIL", "bad code in field occupation: 'PIL'"),
            ("CUSTOMER", 2, 14, "X", "bad code in field kyc_risk_level: 'X'"),
            ("CUSTOMER", 0, 7, "X", "bad code in field gender: 'X'"),
            ("CUSTOMER", 0, 8, "5", "bad code in field education: '5'"),
            ("CUSTOMER", 1, 11, "Z", "bad code in field industry_code: 'Z'"),
            ("CUSTOMER", 1, 15, "X", "bad code in field status: 'X'"),
            ("ACCOUNT", 4, 2, "SAV", "bad code in field product_type: 'SAV'"),
            ("ACCOUNT", 4, 3, "cny", "bad code in field currency: 'cny'"),
            ("TXN", 0, 3, "dep", "bad code in field txn_type: 'dep'"),
            ("TXN", 0, 6, "WEB", "bad code in field channel: 'WEB'"),
            ("TXN", 0, 7, "y", "bad code in field cash_flag: 'y'"),
            ("TXN", 1, 8, "USA", "bad code in field counterparty_country: 'USA'"),
            ("LOAN", 0, 8, "6", "bad code in field five_class: '6'"),
            ("FX_RATE", 1, 0, "HK", "bad code in field currency: 'HK'"),
        ],
    )
    assert found == expected


def test_bad_date_or_timestamp_is_quarantined(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("CUSTOMER", 2, 13, "20250230", "bad date in field open_date: '20250230'"),
            ("CUSTOMER", 2, 6, "1975-12-31", "bad date in field birth_date: '1975-12-31'"),
            ("ACCOUNT", 4, 5, "2025011", "bad date in field close_date: '2025011'"),
            ("LOAN", 0, 9, "2045O101", "bad date in field maturity_date: '2045O101'"),
            ("TXN", 0, 2, "{d}250000", "bad timestamp in field txn_time: '{d}250000'"),
            ("TXN", 0, 2, "{d}0930", "bad timestamp in field txn_time: '{d}0930'"),
        ],
    )
    assert found == expected


def test_bad_number_is_quarantined(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("BALANCE", 4, 2, "-5.00", "bad number in field balance: '-5.00'"),
            ("BALANCE", 4, 2, "1,000.00", "bad number in field balance: '1,000.00'"),
            ("BALANCE", 4, 2, "1.234", "bad number in field balance: '1.234'"),
            ("BALANCE", 4, 2, "1.", "bad number in field balance: '1.'"),
            ("BALANCE", 4, 2, "12345678901234567.00", "bad number in field balance: '12345678901234567.00'"),
            ("CUSTOMER", 0, 10, "1e5", "bad number in field monthly_income: '1e5'"),
            ("TXN", 0, 4, "0.00", "field amount must be > 0: '0.00'"),
            ("TXN", 0, 4, "-1", "bad number in field amount: '-1'"),
            ("LOAN", 0, 5, "-1.00", "bad number in field outstanding: '-1.00'"),
            ("LOAN", 0, 7, "-1", "bad number in field dpd: '-1'"),
            ("LOAN", 0, 7, "1.5", "bad number in field dpd: '1.5'"),
            ("FX_RATE", 1, 2, "0.9123456", "bad number in field cny_per_unit: '0.9123456'"),
            ("FX_RATE", 1, 2, "0.000000", "field cny_per_unit must be > 0: '0.000000'"),
        ],
    )
    assert found == expected


def test_empty_required_field_is_quarantined(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("CUSTOMER", 2, 0, "", "empty required field cust_id"),
            ("CUSTOMER", 2, 13, "", "empty required field open_date"),
            ("ACCOUNT", 4, 6, "", "empty required field status"),
            ("BALANCE", 4, 2, "", "empty required field balance"),
            ("TXN", 0, 2, "", "empty required field txn_time"),
            ("LOAN", 0, 9, "", "empty required field maturity_date"),
            ("FX_RATE", 1, 2, "", "empty required field cny_per_unit"),
        ],
    )
    assert found == expected


def test_record_of_another_day_is_quarantined(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("BALANCE", 4, 1, "{prev}", "bal_date {prev} is not the batch date {d}"),
            ("FX_RATE", 1, 1, "20240229", "rate_date 20240229 is not the batch date {d}"),
            ("TXN", 0, 2, "{prev}235959", "txn_time {prev}235959 is not on the batch date {d}"),
        ],
    )
    assert found == expected


def test_field_length_limits(tmp_path):
    rows = sample_rows(D)
    rows["CUSTOMER"].append(
        ["C" * 21, "C", "x", "20", "y", None, None, None, None, None, None, "K", "B", TAG, "L", "A"]
    )
    rows["CUSTOMER"].append(
        ["C" * 20, "C", "x", "20", "y", None, None, None, None, None, None, "K", "B", TAG, "L", "A"]
    )
    rows["ACCOUNT"].append(["A" * 33, "C001", "CASA", "CNY", TAG, None, "A"])
    rows["ACCOUNT"].append(["A" * 32, "C001", "CASA", "CNY", TAG, None, "A"])
    write_batch(tmp_path / "landing", D, rows)
    ingest(tmp_path)
    assert [(t, n, r) for t, n, _, r in quarantine(tmp_path)] == [
        ("CBS_ACCOUNT", 6, f"field acct_id longer than 32: '{'A' * 33}'"),
        ("CBS_CUSTOMER", 4, f"field cust_id longer than 20: '{'C' * 21}'"),
    ]


def test_customer_type_specific_fields(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("CUSTOMER", 1, 7, "M", "P-only field gender set on C customer"),
            ("CUSTOMER", 1, 6, "19800101", "P-only field birth_date set on C customer"),
            ("CUSTOMER", 1, 10, "100.00", "P-only field monthly_income set on C customer"),
            ("CUSTOMER", 0, 11, "F", "industry_code set on P customer"),
            ("CUSTOMER", 0, 6, "", "empty required field birth_date for P customer"),
            ("CUSTOMER", 1, 11, "", "empty required field industry_code for C customer"),
        ],
    )
    assert found == expected


def test_duplicate_keys_keep_the_first(tmp_path):
    rows = sample_rows(D)
    rows["CUSTOMER"].append(
        ["C002", "C", "另一家公司", "20", "X", None, None, None, None, None, None, "K", "B", TAG, "L", "A"]
    )
    rows["TXN"].append(list(rows["TXN"][0]))
    rows["FX_RATE"].append(["USD", TAG, "9.99"])
    write_batch(tmp_path / "landing", D, rows)
    (result,) = ingest(tmp_path).batches
    assert [(t, n, r) for t, n, _, r in quarantine(tmp_path)] == [
        ("CBS_CUSTOMER", 4, "duplicate cust_id C002"),
        ("CBS_FX_RATE", 3, "duplicate currency USD"),
        ("CBS_TXN", 4, "duplicate txn_id T001"),
    ]
    assert query(tmp_path, f"SELECT cust_name FROM {delivered('CUSTOMER')} WHERE cust_id = 'C002'") == [
        ("华夏贸易有限公司",)
    ]
    assert query(tmp_path, "SELECT cny_per_unit FROM raw.cbs_fx_rate WHERE currency = 'USD'") == [
        (Decimal("7.123456"),)
    ]
    assert_all_accounted(tmp_path, result)


def test_broken_reference_is_quarantined(tmp_path):
    found, expected = reasons_for(
        tmp_path,
        [
            ("ACCOUNT", 3, 1, "C999", "cust_id C999 not in CBS_CUSTOMER"),
            ("BALANCE", 4, 0, "A999", "acct_id A999 not in CBS_ACCOUNT"),
            ("BALANCE", 0, 3, "USD", "currency USD differs from account currency CNY"),
            ("TXN", 2, 1, "A999", "acct_id A999 not in CBS_ACCOUNT"),
            ("TXN", 2, 5, "EUR", "no CBS_FX_RATE row for currency EUR"),
            ("LOAN", 0, 1, "C999", "cust_id C999 not in CBS_CUSTOMER"),
            ("LOAN", 0, 2, "A999", "acct_id A999 not in CBS_ACCOUNT"),
            ("LOAN", 0, 2, "A001", "acct_id A001 is a CASA account, not LOAN"),
            ("LOAN", 0, 1, "C002", "acct_id A003 belongs to customer C001, not C002"),
            ("LOAN", 0, 6, "EUR", "no CBS_FX_RATE row for currency EUR"),
        ],
    )
    assert found == expected


def test_currency_without_fx_rate_is_quarantined_and_cny_needs_none(tmp_path):
    rows = rows_with(D, FX_RATE=[["HKD", TAG, "0.912"]])
    write_batch(tmp_path / "landing", D, rows)
    (result,) = ingest(tmp_path).batches
    assert [(t, n, r) for t, n, _, r in quarantine(tmp_path)] == [
        ("CBS_BALANCE", 2, "no CBS_FX_RATE row for currency USD"),
        ("CBS_TXN", 2, "no CBS_FX_RATE row for currency USD"),
    ]
    assert result.tables["BALANCE"].loaded == 4  # the CNY balances
    assert_all_accounted(tmp_path, result)


def test_quarantined_customer_cascades_and_every_record_is_accounted_for(tmp_path):
    rows = mutated("CUSTOMER", 0, 14, "Z")
    rows["ACCOUNT"].append(["A006", "C404", "CASA", "CNY", TAG, None, "A"])
    rows["BALANCE"].append(["A006", TAG, "1.00", "CNY"])
    write_batch(tmp_path / "landing", D, rows)
    (result,) = ingest(tmp_path).batches
    assert result.outcome == "loaded" and result.message.startswith("quarantined CUSTOMER 1, ACCOUNT 4")
    assert [(t, n, r) for t, n, _, r in quarantine(tmp_path)] == [
        ("CBS_ACCOUNT", 1, "cust_id C001 quarantined in CBS_CUSTOMER"),
        ("CBS_ACCOUNT", 2, "cust_id C001 quarantined in CBS_CUSTOMER"),
        ("CBS_ACCOUNT", 3, "cust_id C001 quarantined in CBS_CUSTOMER"),
        ("CBS_ACCOUNT", 6, "cust_id C404 not in CBS_CUSTOMER"),
        ("CBS_BALANCE", 1, "acct_id A001 quarantined in CBS_ACCOUNT"),
        ("CBS_BALANCE", 2, "acct_id A002 quarantined in CBS_ACCOUNT"),
        ("CBS_BALANCE", 3, "acct_id A003 quarantined in CBS_ACCOUNT"),
        ("CBS_BALANCE", 6, "acct_id A006 quarantined in CBS_ACCOUNT"),
        ("CBS_CUSTOMER", 1, "bad code in field kyc_risk_level: 'Z'"),
        ("CBS_LOAN", 1, "cust_id C001 quarantined in CBS_CUSTOMER"),
        ("CBS_TXN", 1, "acct_id A001 quarantined in CBS_ACCOUNT"),
        ("CBS_TXN", 2, "acct_id A002 quarantined in CBS_ACCOUNT"),
    ]
    raw_text = query(
        tmp_path,
        "SELECT raw_text, file_name FROM audit.quarantine WHERE table_name = 'CBS_BALANCE' AND line_no = 6",
    )
    assert raw_text == [(f"A006|{TAG}|1.00|CNY", f"CBS_BALANCE_{TAG}.dat")]
    assert_all_accounted(tmp_path, result)


# ------------------------------------------------------------------------------------------ re-delivery


def test_same_batch_again_is_unchanged_and_totals_never_double(tmp_path):
    write_batch(tmp_path / "landing", D, mutated("TXN", 0, 3, "BAD"))
    first = ingest(tmp_path).batches[0]
    before = snapshot(tmp_path)
    total = query(tmp_path, "SELECT sum(balance) FROM raw.cbs_balance")
    write_batch(tmp_path / "landing", D, mutated("TXN", 0, 3, "BAD"))  # delivered again, same bytes
    (again,) = ingest(tmp_path).batches
    assert again.outcome == "unchanged" and not again.failed
    assert again.tables == first.tables
    assert snapshot(tmp_path) == before
    assert query(tmp_path, "SELECT sum(balance) FROM raw.cbs_balance") == total
    assert query(tmp_path, f"SELECT count(*) FROM {delivered('CUSTOMER')}") == [(3,)]
    assert query(tmp_path, "SELECT outcome FROM audit.load_attempt ORDER BY attempted_at") == [
        ("loaded",),
        ("unchanged",),
    ]


def test_different_content_is_refused_unless_forced(tmp_path):
    write_batch(tmp_path / "landing", D, mutated("TXN", 0, 3, "BAD"))
    ingest(tmp_path)
    before = snapshot(tmp_path)
    write_batch(tmp_path / "landing", D, mutated("BALANCE", 0, 2, "2000.00"))
    (refused,) = ingest(tmp_path).batches
    assert refused.outcome == "refused" and refused.failed
    assert "--force" in refused.message and f"CBS_BALANCE_{TAG}.dat" in refused.message
    assert f"CBS_TXN_{TAG}.dat" in refused.message and f"CBS_LOAN_{TAG}.dat" not in refused.message
    assert snapshot(tmp_path) == before

    (replaced,) = ingest(tmp_path, force=True).batches
    assert (replaced.outcome, replaced.quarantined) == ("replaced", 0)
    assert query(tmp_path, "SELECT balance FROM raw.cbs_balance WHERE acct_id = 'A001'") == [
        (Decimal("2000.00"),)
    ]
    assert query(tmp_path, "SELECT count(*) FROM raw.cbs_txn") == [(3,)]
    assert quarantine(tmp_path) == []
    assert query(tmp_path, "SELECT count(*), count(DISTINCT md5) FROM audit.batch_log") == [(6, 6)]
    assert_all_accounted(tmp_path, replaced)
    # Every table of the date is rewritten under a new load id; the superseded files are gone.
    ((load_id,),) = query(tmp_path, "SELECT DISTINCT load_id FROM audit.batch_log")
    assert load_id not in {row[-3] for row in before["audit.batch_log"]}
    assert raw_files(tmp_path) == sorted(r[0] for r in query(tmp_path, "SELECT raw_file FROM audit.batch_log"))
    assert all(load_id in f for f in raw_files(tmp_path)) and not set(raw_files(tmp_path)) & set(before["files"])
    # The replacement of the only date diffs against nothing: the customers are stored whole again.
    assert query(tmp_path, "SELECT stored_rows FROM audit.batch_log WHERE table_name = 'CBS_CUSTOMER'") == [(3,)]
    assert query(tmp_path, "SELECT count(*) FROM raw_state.cbs_customer") == [(3,)]


def test_force_leaves_an_identical_redelivery_unchanged_and_rewrites_nothing(tmp_path):
    # A replacement restates every month from its month on, so only a changed batch may replace one.
    days = [D, D + dt.timedelta(days=1)]
    for day in days:
        write_batch(tmp_path / "landing", day)
    ingest(tmp_path)
    before = snapshot(tmp_path)
    logged = query(tmp_path, "SELECT batch_date, table_name, load_id, raw_file FROM audit.batch_log ORDER BY ALL")
    written = {f: (tmp_path / "wh" / f).stat().st_mtime_ns for f in before["files"]}
    for day in days:
        write_batch(tmp_path / "landing", day)  # delivered again, same bytes
    report = ingest(tmp_path, force=True)
    assert [(b.outcome, b.failed) for b in report.batches] == [("unchanged", False)] * 2
    assert query(
        tmp_path, "SELECT batch_date, table_name, load_id, raw_file FROM audit.batch_log ORDER BY ALL"
    ) == logged
    assert snapshot(tmp_path) == before
    assert {f: (tmp_path / "wh" / f).stat().st_mtime_ns for f in raw_files(tmp_path)} == written
    assert query(tmp_path, "SELECT outcome, count(*) FROM audit.load_attempt GROUP BY ALL ORDER BY ALL") == [
        ("loaded", 2),
        ("unchanged", 2),
    ]


def test_a_failure_while_writing_rolls_the_batch_back(tmp_path, monkeypatch):
    write_batch(tmp_path / "landing", D)
    ingest(tmp_path)
    before = snapshot(tmp_path)
    write_batch(tmp_path / "landing", D, mutated("BALANCE", 0, 2, "2000.00"))
    original = extracts._record_attempt
    calls = []

    def fail_first(*args):
        calls.append(args)
        if len(calls) == 1:  # the attempt row written inside the load transaction, just before COMMIT
            # By now the new files are written: the rollback has to remove them.
            assert len(raw_files(tmp_path)) == 2 * len(TABLES)
            raise OSError("disk full")
        return original(*args)

    monkeypatch.setattr(extracts, "_record_attempt", fail_first)
    (result,) = ingest(tmp_path, force=True).batches
    assert result.outcome == "rejected" and "rolled back" in result.message and "disk full" in result.message
    assert snapshot(tmp_path) == before  # rows, views, raw_state and files on disk
    assert query(tmp_path, "SELECT balance FROM raw.cbs_balance WHERE acct_id = 'A001'") == [
        (Decimal("1000.50"),)
    ]


# ------------------------------------------------------------------------------------------ selection


def test_batches_are_selected_by_date_or_through_and_run_in_order(tmp_path):
    days = [D + dt.timedelta(days=i) for i in (2, 0, 1)]
    for day in days:
        write_batch(tmp_path / "landing", day)
    (tmp_path / "landing" / "notes").mkdir()
    (tmp_path / "landing" / "20250231").mkdir()  # not a date
    assert [b.batch_date for b in ingest(tmp_path, date=D + dt.timedelta(days=1)).batches] == [
        D + dt.timedelta(days=1)
    ]
    report = ingest(tmp_path, through=D + dt.timedelta(days=1))
    assert [(b.batch_date, b.outcome) for b in report.batches] == [
        (D, "loaded"),
        (D + dt.timedelta(days=1), "unchanged"),
    ]
    report = ingest(tmp_path)
    assert [b.outcome for b in report.batches] == ["unchanged", "unchanged", "loaded"]
    assert query(tmp_path, "SELECT batch_date, count(*) FROM raw.cbs_balance GROUP BY ALL ORDER BY 1") == [
        (D + dt.timedelta(days=i), 5) for i in range(3)
    ]
    # The snapshot tables were delivered identical every day: each day's state is the full snapshot, and the
    # change files of the later days hold no rows — also the second day's, loaded before the first one (its
    # change file was re-diffed when the first day arrived late).
    for i in range(3):
        day = D + dt.timedelta(days=i)
        for table in SNAPSHOTS:
            assert query(tmp_path, f"SELECT count(*) FROM {delivered(table, day)}") == [
                (len(sample_rows(day)[table]),)
            ], (day, table)
    stored = query(
        tmp_path,
        "SELECT batch_date, table_name, stored_rows, raw_file FROM audit.batch_log "
        "WHERE table_name IN ('CBS_CUSTOMER', 'CBS_ACCOUNT', 'CBS_LOAN') ORDER BY ALL",
    )
    assert [(d, t, n) for d, t, n, _ in stored] == [
        (D + dt.timedelta(days=i), f"CBS_{t}", len(sample_rows(D)[t]) if i == 0 else 0)
        for i in range(3)
        for t in sorted(SNAPSHOTS)
    ]
    for _, _, rows, raw_file in stored:
        assert query(tmp_path, "SELECT count(*) FROM read_parquet(?)", [str(tmp_path / "wh" / raw_file)]) == [
            (rows,)
        ], raw_file
    assert raw_files(tmp_path) == sorted(r[0] for r in query(tmp_path, "SELECT raw_file FROM audit.batch_log"))
    with pytest.raises(ValueError):
        ingest(tmp_path, date=D, through=D)


def test_one_bad_batch_does_not_stop_the_others(tmp_path):
    write_batch(tmp_path / "landing", D, ok_override={"CUSTOMER": {"byte_size": 1}})
    write_batch(tmp_path / "landing", D + dt.timedelta(days=1))
    report = ingest(tmp_path)
    assert [b.outcome for b in report.batches] == ["rejected", "loaded"]
    assert [b.batch_date for b in report.failed] == [D]
    assert report.failure_message().startswith("1 batch(es) not loaded: 2025-03-31 rejected: CBS_CUSTOMER_")
    loaded = report.batches[1]
    assert (loaded.batch_date, loaded.outcome, loaded.records, loaded.loaded, loaded.quarantined, loaded.message) \
        == (D + dt.timedelta(days=1), "loaded", 19, 19, 0, "")


def test_batches_done_reports_progress_over_every_batch(tmp_path):
    # The CLI's progress bar: told the total first, then once per batch, whatever the outcome.
    write_batch(tmp_path / "landing", D)
    write_batch(tmp_path / "landing", D + dt.timedelta(days=1), skip_ok=("TXN",))
    ticks: list[tuple[int, int]] = []
    report = ingest(tmp_path, batches_done=lambda done, total: ticks.append((done, total)))
    assert [b.outcome for b in report.batches] == ["loaded", "incomplete"]
    assert ticks == [(0, 2), (1, 2), (2, 2)]
