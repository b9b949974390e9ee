"""Time the PostgreSQL publication of a published release (default: the demo's) into a throw-away local
PostgreSQL cluster (Debian's binaries, started and removed here).

    make demo   # once, for demo/warehouse/published.duckdb
    .venv/bin/python benchmarks/bench_postgres_publish.py --release demo/warehouse/published.duckdb
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
from flows.lib.postgres_publish import publish_to_postgres  # noqa: E402
from tests.support.postgres_server import running_postgres_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=Path("demo/warehouse/published.duckdb"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        release = Path(tmp) / "published.duckdb"
        shutil.copy(args.release, release)  # never hold a lock on the live release
        with running_postgres_server() as server:
            for attempt in range(1, args.repeat + 1):
                started = time.perf_counter()
                published = publish_to_postgres(release, server.url())
                seconds = time.perf_counter() - started
                rows = ", ".join(f"{table} {n:,}" for table, n in published.row_counts.items())
                print(f"publication {attempt}: {seconds:.2f} s ({rows})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
