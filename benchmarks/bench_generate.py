"""Time the sample-data generator: seconds in total and per day, and MB and records per table.

    python benchmarks/bench_generate.py --customers 1000000 --days 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from flows.commands.generate import TABLES, generate


def main(argv: list[str] | None = None) -> int:
    """Run generate() once with the given size and print its timings and output sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=1)
    # A plain Monday: not the quarterly interest day (21 Mar/Jun/Sep/Dec), which adds a posting per account.
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 3, 2))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoding", default="GBK")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    finished: list[float] = []
    began, cpu_began = time.perf_counter(), time.process_time()
    try:
        summary = generate(out, args.customers, args.start, args.start + timedelta(days=args.days - 1),
                           seed=args.seed, encoding=args.encoding,
                           progress=lambda _day: finished.append(time.perf_counter()))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    total, cpu = time.perf_counter() - began, time.process_time() - cpu_began

    print(f"customers={args.customers:,} days={summary.days} encoding={args.encoding} seed={args.seed}")
    # CPU time next to wall time: on a shared machine the wall clock also measures the neighbours.
    print(f"cpu {cpu:.1f} s (all threads of this process)")
    first = finished[0] - began
    print(f"total {total:.1f} s; first day {first:.1f} s (includes building the population)", end="")
    if len(finished) > 1:
        print(f"; later days {(finished[-1] - finished[0]) / (len(finished) - 1):.1f} s each")
    else:
        print()
    print(f"{'table':<10}{'records':>14}{'MB':>10}{'MB/day':>10}")
    for table in TABLES:
        mb = summary.bytes[table] / 1e6
        print(f"{table:<10}{summary.records[table]:>14,}{mb:>10.1f}{mb / summary.days:>10.1f}")
    mb = sum(summary.bytes.values()) / 1e6
    print(f"{'total':<10}{sum(summary.records.values()):>14,}{mb:>10.1f}{mb / summary.days:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
