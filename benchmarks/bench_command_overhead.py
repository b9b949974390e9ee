"""Fixed cost per command: what a `tiering` command costs before and after its work, with nothing to do.

    .venv/bin/python benchmarks/bench_command_overhead.py [--repeat 3] [--before <git rev>]

Times, as a person or cron would start them (a fresh process each), on an empty landing folder:

- `refusal`: `tiering run` with a missing landing folder (the preflight answers; nothing starts);
- `ingest, temporary server`: `tiering ingest` without PREFECT_API_URL (the command's own server);
- `ingest, running server`: the same with PREFECT_API_URL pointing at a `prefect server start`;
- with `--before REV`: `tiering ingest` of that revision (checked out in a temporary worktree, run with
  the same virtualenv), i.e. with Prefect's own temporary server;
- floors: importing the ingest flow (`python -c "import flows.stages.ingest"`), and the Prefect API server alone
  from process start to a healthy /api/health.

Median of `--repeat` runs each; the machine should be otherwise idle (2 cores: load changes everything).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.adapters.local_server import start_server  # noqa: E402
from tests.support.prefect_server import clean_environ, prefect_server  # noqa: E402


def timed(command: list[str], cwd: Path, env: dict[str, str], expect: int = 0) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return elapsed


def server_alone() -> float:
    started = time.perf_counter()
    server = start_server()
    try:
        server.wait_healthy(300)
        return time.perf_counter() - started
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", help="a git revision to compare with (e.g. the commit before issue 9)")
    args = parser.parse_args()
    python = sys.executable
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        (work / "landing").mkdir()
        ingest = ["-c", "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))", "ingest",
                  "--landing", "landing", "--warehouse", "warehouse"]
        cases = {
            "refusal (missing landing)": ([python, "-m", "flows.cli", "run", "--landing", "missing", "--as-of",
                                           "2026-10", "--warehouse", "warehouse"], ROOT, clean_environ(), 2),
            "ingest, temporary server": ([python, *ingest], work, clean_environ(PYTHONPATH=str(ROOT)), 0),
            "floor: import flows.stages.ingest": ([python, "-c", "import flows.stages.ingest"], ROOT, clean_environ(), 0),
        }
        server = stack.enter_context(prefect_server())
        cases["ingest, running server"] = ([python, *ingest], work,
                                           clean_environ(PYTHONPATH=str(ROOT), PREFECT_API_URL=server.api_url), 0)
        if args.before:
            tree = work / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before],
                           check=True, capture_output=True)
            stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           capture_output=True)
            cases[f"ingest, Prefect's temporary server ({args.before})"] = (
                [python, *ingest], work, clean_environ(PYTHONPATH=str(tree)), 0)
        for _ in range(args.repeat):
            for name, (command, cwd, env, expect) in cases.items():
                for leftover in ("warehouse",):
                    subprocess.run(["rm", "-rf", str(work / leftover)], check=True)
                results.setdefault(name, []).append(timed(command, cwd, env, expect))
            results.setdefault("floor: Prefect API server alone", []).append(server_alone())
    print(f"{'case':<58} {'median s':>9}  runs")
    for name, times in results.items():
        print(f"{name:<58} {statistics.median(times):9.2f}  {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
