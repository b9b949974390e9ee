"""Time ingest_batches on a synthetic batch of N customers, N accounts and N balances; prints rows/s.

.venv/bin/python benchmarks/bench_ingest.py --rows 1000000 [--encoding GBK] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.stages.extracts import ingest_batches  # noqa: E402
from tests.support.batches import ok_line, tag  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞亅倈億"  # the last three have 0x7C as GBK second byte


def synthetic_tables(n: int, batch_date: dt.date, seed: int = 42) -> dict[str, list[str]]:
    """Lines per table: N customers (half P, half C), one account and one end-of-day balance each."""
    rng = np.random.default_rng(seed)
    d = tag(batch_date)
    cents = rng.integers(0, 10_000_000_00, size=n)
    names = [
        SURNAMES[a] + GIVEN[b] + GIVEN[c]
        for a, b, c in zip(
            rng.integers(0, len(SURNAMES), n),
            rng.integers(0, len(GIVEN), n),
            rng.integers(0, len(GIVEN), n),
            strict=True,
        )
    ]
    customers = []
    for i in range(n):
        if i % 2:
            customers.append(f"C{i:09d}|C|{names[i]}公司|20|9111{i:014d}|||||||F|B{i % 500:04d}|20190301|M|A")
        else:
            customers.append(
                f"C{i:09d}|P|{names[i]}|01|1101011990{i:08d}|138{i:08d}|19900101|M|2|ENG|"
                f"25000.00||B{i % 500:04d}|20200115|L|A"
            )
    accounts = [f"A{i:012d}|C{i:09d}|CASA|CNY|20200115||A" for i in range(n)]
    balances = [f"A{i:012d}|{d}|{c // 100}.{c % 100:02d}|CNY" for i, c in enumerate(cents.tolist())]
    txns = [f"T{i:012d}|A{i:012d}|{d}093000|DEP|100.00|CNY|MB|N|" for i in range(0, n, 10)]
    return {
        "CUSTOMER": customers,
        "ACCOUNT": accounts,
        "BALANCE": balances,
        "TXN": txns,
        "LOAN": [],
        "FX_RATE": [f"USD|{d}|7.123456"],
    }


def write_synthetic(landing: Path, n: int, batch_date: dt.date, encoding: str) -> int:
    """Write the batch with its .ok files; returns the total record count."""
    folder = landing / tag(batch_date)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for table, lines in synthetic_tables(n, batch_date).items():
        name = f"CBS_{table}_{tag(batch_date)}.dat"
        data = "".join(line + "\n" for line in lines).encode("gbk" if encoding == "GBK" else "utf-8")
        (folder / name).write_bytes(data)
        (folder / name.replace(".dat", ".ok")).write_text(ok_line(name, data, encoding) + "\n")
        total += len(lines)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="customers = accounts = balances")
    parser.add_argument("--encoding", choices=("GBK", "UTF-8"), default="GBK")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    parser.add_argument("--generator", action="store_true", help="write N customers with flows.commands.generate")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        batch_date = dt.date(2026, 1, 31)
        t0 = time.perf_counter()
        if args.generator:
            from flows.commands.generate import generate

            summary = generate(work / "landing", args.rows, batch_date, batch_date, encoding=args.encoding)
            print(f"generated {summary.customers:,} customers' batch in {time.perf_counter() - t0:.1f} s")
        else:
            total = write_synthetic(work / "landing", args.rows, batch_date, args.encoding)
            print(f"wrote {total:,} records in {time.perf_counter() - t0:.1f} s")
        timings: dict[str, float] = {}

        def progress(message: str) -> None:
            print("  " + message)
            if " records checked in " in message:
                table = message.split()[1].removeprefix("CBS_").rstrip(":")
                timings[table] = float(message.rsplit(" in ", 1)[1].split()[0])

        db = work / "wh" / "tiering.duckdb"
        db.unlink(missing_ok=True)
        t0 = time.perf_counter()
        report = ingest_batches(work / "landing", db, wait_seconds=0, progress=progress)
        elapsed = time.perf_counter() - t0
        result = report.batches[0]
        print("  " + result.summary_line())
        assert result.outcome == "loaded" and result.quarantined == 0, result.summary_line()
        total, balances = result.records, result.tables["BALANCE"].records
        print(f"ingest: {total:,} records in {elapsed:.2f} s = {total / elapsed:,.0f} rows/s overall")
        bal = timings["BALANCE"]
        print(
            f"balance table: {balances:,} rows checked in {bal:.2f} s = {balances / bal:,.0f} rows/s "
            "(decode, split, validate; reading, md5 and the one write per batch are in the overall figure)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
