"""Orchestration overhead of the build: the `build` Prefect flow against the same `dbt build` without Prefect.

    .venv/bin/python benchmarks/bench_build_overhead.py --warehouse /work/bench/wh100k --month 2026-06 [--repeat 2]

Rebuilds one already-built month of a warehouse (the month's models are replaced, so every run does the
same work) after one untimed warm-up, alternately (a) as the pipeline does it — the `build` flow: seeds task, one `dbt-build` task with
dbt's threads in one process, the node-results artifact, the month's audit row — and (b) as a bare
`dbtRunner` call with the same arguments and no Prefect at all. Overhead = (a) − (b), reported against (a).
The flow runs against the temporary Prefect server that `tiering` uses; the server's start-up is timed
apart (it happens once per command, not per build). Use a copy of a warehouse you care about.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.adapters.dbt_runner import prepare_seeds, run_dbt  # noqa: E402
from flows.months import parse_as_of  # noqa: E402
from flows.settings import Settings  # noqa: E402
from flows.stages.build import PRODUCTION_BUILD, build_flow  # noqa: E402


def bare_dbt(settings: Settings, month: dt.date) -> float:
    started = time.perf_counter()
    prepare_seeds(settings)
    result = run_dbt(PRODUCTION_BUILD, settings, as_of=month)
    assert result.success, result.error_message()
    return time.perf_counter() - started


def prefect_build(settings: Settings, month: dt.date) -> float:
    started = time.perf_counter()
    outcome = build_flow(months=[month], settings=settings)
    assert outcome.months == [month]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--month", required=True)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    settings = Settings.from_env(warehouse=args.warehouse)
    month = parse_as_of(args.month)

    from prefect.testing.utilities import prefect_test_harness  # the temporary server, started once

    started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        server = time.perf_counter() - started
        bare_dbt(settings, month)  # warm-up, untimed: dbt's first parse of the checkout, the OS file cache
        flows, bare = [], []
        for _ in range(args.repeat):
            bare.append(bare_dbt(settings, month))
            flows.append(prefect_build(settings, month))
    f, b = statistics.median(flows), statistics.median(bare)
    print(f"build {month:%Y-%m}: Prefect build flow {f:.1f} s (runs {', '.join(f'{x:.1f}' for x in flows)}), "
          f"bare dbtRunner {b:.1f} s (runs {', '.join(f'{x:.1f}' for x in bare)}); overhead {f - b:.1f} s = "
          f"{(f - b) / f:.1%} of the build; temporary server start {server:.1f} s (once per command)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
