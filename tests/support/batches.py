"""Write spec-format extract batches from Python rows, with computed `.ok` files, so tests can craft input."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

TABLES = ("CUSTOMER", "ACCOUNT", "BALANCE", "TXN", "LOAN", "FX_RATE")

# A row is a sequence of field values (None → empty field), a str (a whole line, encoded with the
# batch encoding) or bytes (a whole line written as is, e.g. to plant undecodable bytes).
Row = Sequence[object] | str | bytes


def tag(batch_date: dt.date) -> str:
    return batch_date.strftime("%Y%m%d")


def sample_rows(batch_date: dt.date) -> dict[str, list[list[object]]]:
    """A small, fully valid batch: a person and a company, five accounts (one USD, one loan), FX for USD."""
    d = tag(batch_date)
    return {
        "CUSTOMER": [
            [
                "C001",
                "P",
                "张三",
                "01",
                "110101199001011234",
                "13800000000",
                "19900101",
                "M",
                "2",
                "ENG",
                "25000.00",
                None,
                "B001",
                "20200115",
                "L",
                "A",
            ],
            [
                "C002",
                "C",
                "华夏贸易有限公司",
                "20",
                "91110000100000000X",
                None,
                None,
                None,
                None,
                None,
                None,
                "F",
                "B002",
                "20190301",
                "M",
                "A",
            ],
            [
                "C003",
                "P",
                "李四",
                "02",
                "E12345678",
                None,
                "19751231",
                "F",
                None,
                None,
                None,
                None,
                "B001",
                "20210610",
                "H",
                "D",
            ],
        ],
        "ACCOUNT": [
            ["A001", "C001", "CASA", "CNY", "20200115", None, "A"],
            ["A002", "C001", "TD", "USD", "20210101", None, "A"],
            ["A003", "C001", "LOAN", "CNY", "20220101", None, "A"],
            ["A004", "C002", "CASA", "CNY", "20190301", None, "A"],
            ["A005", "C003", "CASA", "CNY", "20210610", None, "A"],
        ],
        "BALANCE": [
            ["A001", d, "1000.50", "CNY"],
            ["A002", d, "200", "USD"],
            ["A003", d, "500000.00", "CNY"],
            ["A004", d, "3000000.01", "CNY"],
            ["A005", d, "0.00", "CNY"],
        ],
        "TXN": [
            ["T001", "A001", d + "093000", "DEP", "100.00", "CNY", "MB", "N", None],
            ["T002", "A002", d + "101500", "XBI", "50.25", "USD", "IB", "N", "US"],
            ["T003", "A004", d + "235959", "FEE", "1.5", "CNY", "SYS", "N", None],
        ],
        "LOAN": [
            ["L001", "C001", "A003", "MTG", "800000.00", "500000.00", "CNY", "0", "1", "20450101"],
        ],
        "FX_RATE": [
            ["USD", d, "7.123456"],
            ["HKD", d, "0.912"],
        ],
    }


def encode_row(row: Row, encoding: str = "GBK") -> bytes:
    """One line's bytes, without its line ending."""
    if isinstance(row, bytes):
        return row
    if isinstance(row, str):
        return row.encode(encoding)
    return "|".join("" if v is None else str(v) for v in row).encode(encoding)


def ok_line(file_name: str, data: bytes, encoding: str = "GBK") -> str:
    """The control line the spec asks for: name|records|bytes|md5|encoding."""
    records = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return f"{file_name}|{records}|{len(data)}|{hashlib.md5(data).hexdigest()}|{encoding}"


def write_batch(
    landing: Path,
    batch_date: dt.date,
    tables: Mapping[str, Iterable[Row]] | None = None,
    *,
    encoding: str = "GBK",
    newline: str = "\n",
    skip_dat: Iterable[str] = (),
    skip_ok: Iterable[str] = (),
    ok_override: Mapping[str, Mapping[str, object]] | None = None,
    encodings: Mapping[str, str] | None = None,
) -> Path:
    """Write `landing/<YYYYMMDD>/CBS_*.dat|.ok`; missing tables default to `sample_rows`.

    `ok_override` = {table: {"records"|"byte_size"|"md5"|"encoding"|"file_name": value}} writes a
    wrong control total on purpose; `skip_dat`/`skip_ok` leave files out; `encodings` sets per-table ones.
    """
    rows = sample_rows(batch_date)
    rows.update({k: list(v) for k, v in (tables or {}).items()})
    folder = Path(landing) / tag(batch_date)
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        enc = (encodings or {}).get(table, encoding)
        name = f"CBS_{table}_{tag(batch_date)}.dat"
        data = b"".join(encode_row(r, enc) + newline.encode() for r in rows[table])
        if table not in skip_dat:
            (folder / name).write_bytes(data)
        if table not in skip_ok:
            fields = dict(
                zip(
                    ("file_name", "records", "byte_size", "md5", "encoding"),
                    ok_line(name, data, enc).split("|"),
                    strict=True,
                )
            )
            fields.update({k: str(v) for k, v in (ok_override or {}).get(table, {}).items()})
            (folder / f"CBS_{table}_{tag(batch_date)}.ok").write_text("|".join(fields.values()) + "\n")
    return folder


def rows_with(batch_date: dt.date, **tables: list[Row]) -> dict[str, list[Row]]:
    """sample_rows with some tables replaced, e.g. rows_with(d, TXN=[...])."""
    rows = copy.deepcopy(sample_rows(batch_date))
    rows.update(tables)
    return rows


def write_ok(folder: Path, table: str, batch_date: dt.date, encoding: str = "GBK") -> None:
    """(Re)compute the `.ok` of a data file already in the folder, e.g. after editing it in a test."""
    name = f"CBS_{table}_{tag(batch_date)}.dat"
    data = (Path(folder) / name).read_bytes()
    (Path(folder) / f"CBS_{table}_{tag(batch_date)}.ok").write_text(ok_line(name, data, encoding) + "\n")
