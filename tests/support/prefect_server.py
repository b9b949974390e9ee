"""A real `prefect server start` in a subprocess, with its own PREFECT_HOME and SQLite database.

Unlike `prefect_test_harness` (a temporary API for flow tests, no UI), this is the server a person starts:
API, UI and services on a free local port, so tests can drive the CLI and a browser against it. The UI ships
in the prefect wheel and is served offline (copied once into prefect/server/ui_build, ui_v2_build).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.adapters.local_server import api_healthy
from tests.support.isolation import free_port  # this pytest-xdist worker's port range

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Nothing phones home, neither the server nor the clients pointed at it. The server itself is started as the
# README says (`prefect server start` in the project folder): its analytics are off by the project's
# prefect.toml, which tests check through the running server's settings.
NO_TELEMETRY = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}


@dataclass(frozen=True)
class PrefectServer:
    """A running server: where its API and UI are, and the environment for processes that use it."""

    api_url: str  # http://127.0.0.1:<port>/api
    ui_url: str  # http://127.0.0.1:<port>
    env: dict[str, str]  # os.environ plus PREFECT_HOME, PREFECT_API_URL and the no-telemetry switches
    home: Path
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no server log)"


def clean_environ(**extra: str) -> dict[str, str]:
    """The caller's environment without Prefect settings that would point elsewhere (a profile, a CI home),
    plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | extra


@contextlib.contextmanager
def prefect_server(timeout: float = 120.0, home: Path | None = None) -> Iterator[PrefectServer]:
    """Start `prefect server start` on 127.0.0.1, wait until /api/health answers, stop it at exit.

    Raises RuntimeError with the server's log tail if it exits or is not healthy within `timeout` s.
    """
    with contextlib.ExitStack() as stack:
        if home is None:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prefect-server-")))
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        api_url, ui_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
        env = clean_environ() | NO_TELEMETRY | {
            "PREFECT_HOME": str(home),  # the SQLite database is $PREFECT_HOME/prefect.db
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
        }
        log_path = home / "server.log"
        server = PrefectServer(api_url=api_url, ui_url=ui_url, env=env, home=home, log_path=log_path)
        with open(log_path, "wb") as log:
            # Own session: the server forks uvicorn and service processes; stop them all as one group.
            server_env = {k: v for k, v in env.items() if k != "PREFECT_SERVER_ANALYTICS_ENABLED"}
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=server_env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        try:
            _wait_healthy(process, server, timeout)
            yield server
        finally:
            _stop(process)


def _wait_healthy(process: subprocess.Popen, server: PrefectServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {process.returncode} before it was "
                               f"healthy; log tail:\n{server.log_tail()}")
        if api_healthy(server.api_url):
            return
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy at {server.api_url}/health after {timeout:.0f} s; "
                       f"log tail:\n{server.log_tail()}")


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    # Also sweeps service processes that outlive the leader; the group is ours alone (own session).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace)
