"""One writer per warehouse: the lock file refuses or queues a second writer, and a killed owner cannot block."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flows.warehouse_lock import WarehouseBusy, is_locked, lock_path, read_owner, warehouse_lock

HOLD = ("import sys; from flows.warehouse_lock import warehouse_lock\n"
        "with warehouse_lock(sys.argv[1], sys.argv[2]):\n"
        "    print('held', flush=True); sys.stdin.readline()\n")
DRIVER = ("import sys; from flows.cli import main; code = main(sys.argv[1:]); "
          "print('IMPORTED', *sorted(m for m in ('prefect', 'dbt') if m in sys.modules)); sys.exit(code)")


@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding the warehouse lock as `tiering run --as-of 2026-10`; yields (warehouse, process)."""
    warehouse = tmp_path / "warehouse"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(warehouse), "tiering run --as-of 2026-10"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield warehouse, process
    if process.poll() is None:
        process.kill()
    process.wait()


def release(process: subprocess.Popen) -> None:
    process.stdin.write("\n")
    process.stdin.flush()
    assert process.wait(timeout=30) == 0


def test_a_second_writer_is_refused_at_once_naming_the_holder(holder):
    warehouse, process = holder
    assert is_locked(warehouse)
    with pytest.raises(WarehouseBusy) as info, warehouse_lock(warehouse, "tiering ingest"):
        pass
    message = str(info.value)
    assert f"warehouse {warehouse} is busy: `tiering run --as-of 2026-10` (pid {process.pid} on " in message
    assert "--wait" in message and "\n" not in message


def test_a_killed_owner_leaves_a_stale_file_that_cannot_block(holder):
    warehouse, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stale = read_owner(warehouse)
    assert stale is not None and stale.pid == process.pid  # the file still names the dead owner …
    assert not is_locked(warehouse)  # … but the kernel released its lock
    with warehouse_lock(warehouse, "tiering ingest"):
        owner = json.loads(lock_path(warehouse).read_text())
        assert (owner["pid"], owner["command"]) == (os.getpid(), "tiering ingest")
        assert owner["started_at"].endswith(" (Asia/Shanghai, UTC+08:00)")  # never the ambiguous "CST"


def test_a_waiting_writer_says_whom_it_waits_for_once_and_runs_after(holder):
    warehouse, process = holder
    said: list[str] = []
    timer = threading.Timer(2.5, release, [process])
    timer.start()
    try:
        with warehouse_lock(warehouse, "tiering run --wait", wait=True, on_wait=said.append):
            assert process.poll() == 0  # the holder had ended before the lock was granted
            assert read_owner(warehouse).command == "tiering run --wait"
    finally:
        timer.join()
    assert len(said) == 1 and "`tiering run --as-of 2026-10`" in said[0]


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    warehouse = tmp_path / "warehouse"
    with warehouse_lock(warehouse, "tiering run"), warehouse_lock(warehouse, "tiering-run flow"):
        assert is_locked(warehouse)
        assert read_owner(warehouse).command == "tiering run"  # the outer holder stays named
    assert not is_locked(warehouse)


def test_the_cli_refuses_a_busy_warehouse_before_starting_prefect(holder, tmp_path):
    warehouse, process = holder
    landing = tmp_path / "landing"
    landing.mkdir()
    for command in (["run", "--landing", str(landing), "--as-of", "2026-10"], ["ingest", "--landing", str(landing)]):
        result = subprocess.run([sys.executable, "-c", DRIVER, *command, "--warehouse", str(warehouse)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 75  # EX_TEMPFAIL: a scheduler may retry
        assert result.stderr.startswith(f"tiering {command[0]}: warehouse {warehouse} is busy: "
                                        f"`tiering run --as-of 2026-10` (pid {process.pid} ")
        assert result.stderr.count("\n") == 1
        assert "IMPORTED\n" in result.stdout  # neither Prefect nor dbt was started
