"""`tiering serve` against a real `prefect server start`: the two deployments, their next runs, a triggered
daily ingest held back first by the warehouse's concurrency slot, then by its lock file (a CLI run holding the
warehouse), and the server's own settings (no analytics, from the project's prefect.toml)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from flows.commands.generate import generate
from flows.warehouse_lock import warehouse_limit_name
from tests.support.prefect_server import prefect_server

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


def api(server, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.api_url}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_for(what: str, probe, timeout: float = 120.0, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def flow_run_state(server, flow_run_id: str) -> str:
    return api(server, "GET", f"/flow_runs/{flow_run_id}")["state_type"]


def loaded_batches(warehouse: Path) -> int:
    db = warehouse / "tiering.duckdb"
    if not db.exists():
        return 0
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT count(DISTINCT batch_date) FROM audit.batch_log").fetchone()[0]


def test_serve_registers_deployments_schedules_and_guards_the_warehouse(tmp_path: Path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    generate(landing, 40, datetime(2026, 1, 1).date(), datetime(2026, 1, 2).date(), seed=3)
    tiering, prefect = (str(Path(sys.executable).parent / name) for name in ("tiering", "prefect"))
    started = time.monotonic()

    def mark(step: str) -> None:
        print(f"{time.monotonic() - started:6.1f} s  {step}")

    with prefect_server() as server:
        mark("server up")
        assert api(server, "GET", "/admin/settings")["server"]["analytics_enabled"] is False
        env = server.env | {"TIERING_OK_WAIT_SECONDS": "0"}
        serve = subprocess.Popen([tiering, "serve", "--landing", str(landing), "--warehouse", str(warehouse)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
        try:
            deployments = wait_for("both deployments", lambda: (
                found if len(found := api(server, "POST", "/deployments/filter", {})) == 2 else None))
            mark("deployments registered")
            by_name = {d["name"]: d for d in deployments}
            assert by_name["daily"]["schedules"][0]["schedule"] | {"day_or": True} == {
                "cron": "0 2 * * *", "timezone": "Asia/Shanghai", "day_or": True}
            assert by_name["monthly"]["schedules"][0]["schedule"]["cron"] == "0 6 1 * *"
            for deployment in deployments:
                assert deployment["global_concurrency_limit"]["limit"] == 1
                assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
                assert deployment["parameters"]["warehouse"] == str(warehouse.resolve())

            # The warehouse's limit exists with one slot.
            limit_name = warehouse_limit_name(warehouse)
            limit = api(server, "GET", f"/v2/concurrency_limits/{limit_name}")
            assert (limit["limit"], limit["active"]) == (1, True)

            # The next daily run is at 02:00 Shanghai, the next monthly one at 06:00 on the 1st.
            def next_run(deployment_id: str):
                runs = api(server, "POST", "/flow_runs/filter", {
                    "deployments": {"id": {"any_": [deployment_id]}},
                    "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                    "sort": "EXPECTED_START_TIME_ASC", "limit": 1})
                return datetime.fromisoformat(runs[0]["expected_start_time"]) if runs else None

            now = datetime.now(SHANGHAI)
            daily_next = wait_for("a scheduled daily run", lambda: next_run(by_name["daily"]["id"]))
            monthly_next = wait_for("a scheduled monthly run", lambda: next_run(by_name["monthly"]["id"]))
            mark("next runs scheduled")
            daily_local, monthly_local = daily_next.astimezone(SHANGHAI), monthly_next.astimezone(SHANGHAI)
            assert (daily_local.hour, daily_local.minute) == (2, 0)
            assert now < daily_local <= now + timedelta(days=1)
            assert (monthly_local.day, monthly_local.hour, monthly_local.minute) == (1, 6, 0)
            assert now < monthly_local <= now + timedelta(days=32)

            # Someone else holds the warehouse slot: a triggered daily run waits and loads nothing.
            holder = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; import flows; from prefect.concurrency.sync import concurrency\n"
                 "from flows.warehouse_lock import warehouse_lock\n"
                 "with warehouse_lock(sys.argv[2], 'tiering run --as-of 2026-01 (test holder)'):\n"
                 "    with concurrency(sys.argv[1], occupy=1, strict=True):\n"
                 "        print('holding', flush=True); sys.stdin.readline()\n"
                 "    print('slot released', flush=True); sys.stdin.readline()\n",
                 limit_name, str(warehouse)],
                env=server.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "holding"
            run = subprocess.run([prefect, "deployment", "run", "daily-ingest/daily"],
                                 env=server.env, capture_output=True, text=True, check=True)
            flow_run_id = next(line.rsplit("/", 1)[-1] for line in run.stdout.splitlines()
                               if "/runs/flow-run/" in line)
            wait_for("the daily run to start", lambda: flow_run_state(server, flow_run_id) == "RUNNING")
            time.sleep(8)
            assert flow_run_state(server, flow_run_id) == "RUNNING"
            assert loaded_batches(warehouse) == 0

            # The slot is released, the lock file is not (a CLI run still holds the warehouse): the run takes
            # the slot, says whom it waits for, and still loads nothing.
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "slot released"

            def waiting_line():
                logs = api(server, "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}})
                return next((log["message"] for log in logs if "waiting for warehouse" in log["message"]), None)

            assert "(test holder)" in wait_for("the run to wait for the warehouse lock", waiting_line)
            assert flow_run_state(server, flow_run_id) == "RUNNING"
            assert loaded_batches(warehouse) == 0

            # Released: the run takes the lock, loads both batches and shows its summary artifact.
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=60) == 0
            final = wait_for("the daily run to finish", lambda: (
                state if (state := flow_run_state(server, flow_run_id)) in ("COMPLETED", "FAILED", "CRASHED")
                else None), timeout=180)
            mark("daily run finished")
            assert final == "COMPLETED"
            assert loaded_batches(warehouse) == 2
            artifacts = api(server, "POST", "/artifacts/filter",
                            {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
            summary = next(a for a in artifacts if a["key"] == "batch-load-summary")
            rows = json.loads(summary["data"])  # a table artifact's data is its rows as JSON text
            assert {row["batch"] for row in rows} == {"2026-01-01", "2026-01-02"}
            assert all(row["records"] == row["loaded"] + row["quarantined"] for row in rows)
        finally:
            os.killpg(serve.pid, signal.SIGINT)  # as Ctrl-C: serve pauses its schedules and stops
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
