"""A command's temporary Prefect server: starts whatever the current folder holds, fails in one line when it
is too slow, and never outlives its command, however the command ends (SIGTERM as cron and systemd send it,
or SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.prefect_server import clean_environ

pytestmark = pytest.mark.integration
# Commands get clean_environ(): no PREFECT_API_URL, so each starts its own server (as from cron).
TIERING = str(Path(sys.executable).parent / "tiering")


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def processes_writing(path: Path) -> list[int]:
    """Pids with `path` open (the server's log is open in the server only)."""
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                found.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(what: str, probe, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def busy_folder(tmp_path: Path) -> Path:
    """A current folder with an `inspect.py` that breaks any Python importing it, and a landing folder whose
    only batch never gets its .ok files (so the ingest flow waits, with the server up)."""
    (tmp_path / "inspect.py").write_text("raise SystemExit('the current folder shadowed the standard library')\n")
    (tmp_path / "landing" / "20260101").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_server_starts_beside_inspect_py_and_dies_with_its_command(sig, busy_folder):
    log = busy_folder / "command.log"
    with open(log, "w") as out:
        command = subprocess.Popen([TIERING, "ingest", "--landing", "landing", "--warehouse", "warehouse"],
                                   cwd=busy_folder, env=clean_environ(TIERING_OK_WAIT_SECONDS="300"),
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        # The flow runs only once the server answered: inspect.py in the current folder did not break it.
        wait_until("the ingest flow to start", lambda: "Beginning flow run" in log.read_text())
        servers = [pid for pid, cmdline in children(command.pid) if "uvicorn" in cmdline]
        assert len(servers) == 1, children(command.pid)
        os.kill(command.pid, sig)
        code = command.wait(timeout=60)
        if sig == signal.SIGTERM:
            assert code == 143
            assert "tiering ingest: stopped by SIGTERM" in log.read_text()
        else:
            assert code == -signal.SIGKILL
        wait_until("the server to end with its command", lambda: not alive(servers[0]), timeout=30)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()


def test_a_server_too_slow_to_start_fails_in_one_line_and_is_stopped(tmp_path):
    (tmp_path / "landing").mkdir()
    result = subprocess.run([TIERING, "ingest", "--landing", "landing", "--warehouse", "warehouse"],
                            cwd=tmp_path, env=clean_environ(TIERING_PREFECT_START_SECONDS="0.2"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("tiering ingest: failed: the temporary Prefect server did not answer within "
                                "0.2 s (raise TIERING_PREFECT_START_SECONDS"), result.stderr
    log_file = Path(lines[-1].rsplit("its log: ", 1)[1])
    try:
        assert log_file.exists()  # kept for the person who has to find out why
        assert not processes_writing(log_file)  # the server (its only writer) is gone
    finally:
        log_file.unlink(missing_ok=True)
