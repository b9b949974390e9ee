"""The outside attack of issue 9, kept as a test: a real `tiering run` SIGKILLed at the riskiest point of each
stage, then two runs started together on the same warehouse while a reader loops over the published catalog.

Every kill leaves nothing published; the re-run (one of the two concurrent ones, the other refused at once
naming the holder) publishes exactly the release an uninterrupted run published (the session's
`published_warehouse`, same landing), and the reader only ever saw whole releases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flows.faults import KILL_AT_ENV
from flows.stages.publishing import PUBLISHED_TABLES

pytestmark = pytest.mark.integration
AS_OF = "2026-01-31"  # the first month: the uninterrupted run published it in its first release
# The kills, in stage order; each re-run resumes where the previous one was killed.
KILLS = [
    ("ingest", "ingest:before-commit#3"),  # the 3rd batch staged as Parquet, its audit rows not committed
    ("build", "build:node-finished#10"),  # dbt part-way through the build
    ("gate", "gate:before-store"),  # a month validated, its gate result not stored
    ("publish", "publish:before-swap"),  # a release written and verified, the catalogs not swapped
]
READER = r"""
import json, sys, time
from pathlib import Path
import duckdb
catalog, out = Path(sys.argv[1]), Path(sys.argv[2])
reads, whole, problems = 0, 0, []
while not out.with_suffix(".stop").exists():
    if catalog.exists():
        try:
            con = duckdb.connect(str(catalog), read_only=True)
        except duckdb.Error as exc:  # the file was being replaced: a reader retries, as a BI tool would
            problems.append(f"open: {exc}") if "lock" not in str(exc).lower() else None
            continue
        try:
            reads += 1
            seen = dict(con.execute("select as_of_month::varchar, count(*) from customer_segment group by 1").fetchall())
            logged = dict(con.execute("select as_of_month::varchar, rows from release_months "
                                      "where table_name = 'customer_segment'").fetchall())
            latest = con.execute("select customer_segment_rows from release_log order by published_at desc "
                                 "limit 1").fetchone()[0]
            if seen != logged or sum(seen.values()) != latest:
                problems.append(f"partial release: {seen} vs {logged}, log {latest}")
            else:
                whole += 1
        finally:
            con.close()
    time.sleep(0.02)
out.write_text(json.dumps({"reads": reads, "whole": whole, "problems": problems[:5]}))
"""


def published_rows(published: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(published), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} WHERE as_of_month <= ? ORDER BY ALL", [AS_OF]).fetchall()
                for t in PUBLISHED_TABLES}


def run_command(landing: Path, warehouse: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "tiering"), "run", "--landing", str(landing),
                             "--as-of", AS_OF, "--warehouse", str(warehouse)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_runs_publish_nothing_and_the_rerun_publishes_the_uninterrupted_release(
        published_warehouse, tmp_path):
    from prefect.settings import PREFECT_API_URL

    landing, uninterrupted, _ = published_warehouse
    warehouse = tmp_path / "warehouse"
    published = warehouse / "published.duckdb"
    # The session's Prefect server (prefect_harness): no server start-up per command.
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "TIERING_OK_WAIT_SECONDS": "0"}
    reader_out = tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published), str(reader_out)])
    try:
        for stage, point in KILLS:
            killed = run_command(landing, warehouse, env | {KILL_AT_ENV: point})
            output = killed.communicate(timeout=600)[0]
            assert killed.returncode == -9, f"{stage}: the run was not killed at {point}:\n{output[-3000:]}"
            assert not published.exists(), f"killed during {stage}, something was published"

        # Two runs started together: one publishes, the other is refused at once, naming the holder.
        first = run_command(landing, warehouse, env)
        time.sleep(1.0)
        second = run_command(landing, warehouse, env)
        second_output = second.communicate(timeout=120)[0]
        first_output = first.communicate(timeout=600)[0]
    finally:
        reader_out.with_suffix(".stop").touch()
        reader.wait(timeout=60)
    assert first.returncode == 0, first_output[-3000:]
    assert second.returncode == 75, second_output[-3000:]
    assert f"tiering run: warehouse {warehouse} is busy: `tiering run --landing" in second_output
    assert f"(pid {first.pid} on " in second_output and "Traceback" not in second_output
    assert "Prefect" not in second_output  # refused before any server or flow

    assert published_rows(published) == published_rows(uninterrupted / "published.duckdb")
    # What the killed publication left (a catalog .tmp, a release folder no catalog names) was cleared.
    with duckdb.connect(str(published), read_only=True) as con:
        current = con.execute("select release_id from release_log order by published_at desc limit 1").fetchone()[0]
    assert sorted(p.name for p in warehouse.glob("published.duckdb*")) == ["published.duckdb"]
    assert [p.name for p in (warehouse / "releases").iterdir()] == [current]
    seen = json.loads(reader_out.read_text())
    assert seen["problems"] == [] and seen["whole"] >= 1, seen
