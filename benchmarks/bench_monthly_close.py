"""Run `tiering run` month after month on one warehouse and report what each month cost.

    .venv/bin/python benchmarks/bench_monthly_close.py --landing /work/bench/landing1m \\
        --warehouse /work/bench/wh1m --months 2026-08,2026-09,2026-10 [--json out.json]

For every month: wall seconds of each stage (ingest, build, gate, publish, report, from the run's own
log), the close (build + gate + publish + report: what a month costs once its batches are in), the whole
command, the command's peak RSS (`/usr/bin/time -v`: the `tiering` process, in which DuckDB, dbt and GX
run; the temporary Prefect server is a separate process), and the warehouse's bytes after the month (raw
zone, working database, releases) with the growth since the month before. The runs are real: the
temporary Prefect server starts for each (≈ 15–20 s, reported as `server`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIERING = ROOT / ".venv" / "bin" / "tiering"
STAGES = ("ingest", "build", "gate", "publish", "report")
LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) \| \w+ +\| (?:Flow run '([\w-]+)' - )?(.*)$")


def _seconds(stamp: str) -> float:
    t = datetime.strptime(stamp, "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def stage_seconds(log: str) -> dict[str, float]:
    """Wall seconds per stage from a run's log: each subflow from 'Beginning subflow run' to its end
    (several gate subflows of one run add up); `server` = start of the command to the first flow line."""
    began: dict[str, tuple[str, float]] = {}
    totals: dict[str, float] = {}
    first = server_start = None
    for line in log.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        at, run, text = _seconds(m.group(1)), m.group(2), m.group(3)
        if "Starting temporary server" in text:
            server_start = at
        if run and first is None:
            first = at
        sub = re.match(r"Beginning subflow run '[\w-]+' for flow '([\w-]+)'", text)
        if sub and run:
            began[run] = (sub.group(1), at)
        elif run in began and text.startswith("Finished in state"):
            stage, start = began.pop(run)
            totals[stage] = totals.get(stage, 0.0) + at - start
    if server_start is not None and first is not None:
        totals["server"] = first - server_start
    return totals


def folder_bytes(path: Path) -> int:
    total = 0
    seen: set[int] = set()
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            if st.st_ino not in seen:  # hard-linked release files count once
                seen.add(st.st_ino)
                total += st.st_size
    return total


def warehouse_bytes(warehouse: Path) -> dict[str, int]:
    parts = {"raw": warehouse / "raw", "releases": warehouse / "releases",
             "restricted": warehouse / "restricted"}
    sizes = {name: folder_bytes(p) if p.exists() else 0 for name, p in parts.items()}
    sizes["working_db"] = sum(p.stat().st_size for p in warehouse.glob("tiering.duckdb*") if p.is_file())
    sizes["published_db"] = (warehouse / "published.duckdb").stat().st_size if (warehouse / "published.duckdb").exists() else 0
    sizes["total"] = sum(sizes.values())
    return sizes


def run_month(landing: Path, warehouse: Path, month: str) -> dict:
    env = {**os.environ, "TIERING_OK_WAIT_SECONDS": "0"}
    cmd = ["/usr/bin/time", "-v", str(TIERING), "run", "--landing", str(landing), "--as-of", month,
           "--warehouse", str(warehouse)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"tiering run {month} failed")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    stages = stage_seconds(proc.stderr + proc.stdout)
    plan = re.search(r"plan: (.*)", proc.stderr)
    return {"month": month, "wall_s": round(wall, 1), "peak_rss_mb": int(rss.group(1)) // 1024 if rss else None,
            "stages_s": {k: round(v, 1) for k, v in stages.items()},
            "close_s": round(sum(stages.get(s, 0.0) for s in STAGES[1:]), 1),
            "plan": plan.group(1).strip() if plan else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, type=Path)
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--months", required=True, help="comma-separated, e.g. 2026-08,2026-09")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    before = warehouse_bytes(args.warehouse) if args.warehouse.exists() else {"total": 0}
    for month in args.months.split(","):
        result = run_month(args.landing, args.warehouse, month.strip())
        sizes = warehouse_bytes(args.warehouse)
        result["bytes"] = sizes
        result["growth_bytes"] = sizes["total"] - before["total"]
        before = sizes
        results.append(result)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stages_s"].items())
        print(f"{result['month']}: close {result['close_s']:.1f} s (build+gate+publish+report), "
              f"command {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mb']} MB; stages: {stages}; "
              f"warehouse {sizes['total'] / 1e9:.2f} GB (+{result['growth_bytes'] / 1e9:.2f} GB: raw "
              f"{sizes['raw'] / 1e9:.2f}, working db {sizes['working_db'] / 1e9:.2f}, releases "
              f"{sizes['releases'] / 1e9:.2f}); plan: {result['plan']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
