"""Time the release report of a published month (default: the demo's last), with and without the dbt docs,
on a copy of the warehouse so the real one is never touched.

    make demo   # once
    .venv/bin/python benchmarks/bench_release_report.py --warehouse demo/warehouse --as-of 2026-10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project root

import flows  # noqa: E402,F401  (no-telemetry environment)
from flows.months import parse_as_of  # noqa: E402
from flows.reports.release_report import write_release_report  # noqa: E402
from flows.settings import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=Path("demo/warehouse"))
    parser.add_argument("--as-of", default="2026-10")
    args = parser.parse_args()
    month = parse_as_of(args.as_of)
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp) / "warehouse"
        shutil.copytree(args.warehouse, warehouse, ignore=shutil.ignore_patterns("backtests", "reports"))
        settings = Settings.from_env(warehouse=warehouse)
        for dbt_docs in (False, True, True):
            started = time.perf_counter()
            report = write_release_report(settings, month, dbt_docs=dbt_docs)
            seconds = time.perf_counter() - started
            size = report.path.stat().st_size / 1e6
            docs = f", dbt docs {report.dbt_docs_seconds:.1f} s" if report.dbt_docs_seconds else ""
            print(f"report {month:%Y-%m} (dbt docs {'on' if dbt_docs else 'off'}): {seconds:.1f} s{docs}, "
                  f"index.html {size:.1f} MB, {len(report.charts)} charts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
