"""The temporary Prefect API server of one `tiering` command: started so that it cannot shadow, stall or linger.

Without PREFECT_API_URL, Prefect 3.8 starts its own temporary server, which (as observed on a busy machine)
gives up after a fixed 20 s, runs `python -m uvicorn` with the current folder first on sys.path (a local
`inspect.py` breaks it), and outlives a command stopped by SIGTERM or SIGKILL. This one instead:

- runs `python -P -m uvicorn …`: -P keeps the current folder off sys.path;
- is started with PR_SET_PDEATHSIG (Linux): the kernel kills it when the command's process ends, however it
  ends; a normal exit (or SIGTERM, turned into an orderly exit by the CLI) also stops it;
- waits up to TIERING_PREFECT_START_SECONDS (default 180 s) for /api/health and, if the server still does
  not answer, fails with one line naming the setting and its log file;
- is started before the pipeline's modules are imported, so its ~10 s start-up overlaps the command's own
  ~5 s of imports (BENCHMARKS.md "Fixed cost per command").

With PREFECT_API_URL set (a `prefect server start` the team runs, or a worker's), nothing is started.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
START_TIMEOUT_ENV = "TIERING_PREFECT_START_SECONDS"
DEFAULT_START_SECONDS = 180.0
# What Prefect's own temporary server sets: API only (no UI), marked ephemeral; plus no telemetry.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
              "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


class ServerStartError(RuntimeError):
    """The temporary Prefect server did not become healthy."""


def free_port() -> int:
    """A local TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with(parent_pid: int):
    """preexec_fn: ask the kernel to SIGKILL this child when its parent ends (Linux; elsewhere a no-op)."""

    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent_pid:  # the parent ended before prctl took effect
            os._exit(1)

    return arm


@dataclass
class LocalServer:
    """A started (maybe not yet healthy) temporary server."""

    process: subprocess.Popen
    api_url: str
    log_path: Path

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"the temporary Prefect server exited with code {self.process.returncode} "
                                       f"before it answered; its log: {self.log_path}")
            if api_healthy(self.api_url):
                return
            time.sleep(0.1)
        raise ServerStartError(
            f"the temporary Prefect server did not answer within {timeout:g} s (raise {START_TIMEOUT_ENV}, or "
            f"run `prefect server start` and set PREFECT_API_URL); its log: {self.log_path}")

    def stop(self, keep_log: bool = False) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


def api_healthy(api_url: str) -> bool:
    """True when the Prefect API at `api_url` answers /health."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def start_server() -> LocalServer:
    """Start the server process and return at once (call wait_healthy before the first API call)."""
    spec = importlib.util.find_spec("prefect")  # finds the package without importing it (2.5 s)
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError("prefect is not installed")
    site = str(Path(next(iter(spec.submodule_search_locations))).parent)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    fd, log_name = tempfile.mkstemp(prefix="tiering-prefect-server-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "uvicorn", "--app-dir", site, "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, **SERVER_ENV}, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with(os.getpid()))  # noqa: PLW1509  (started before any thread of ours)
    return LocalServer(process, api_url, Path(log_name))


def start_timeout(env: dict[str, str] | os._Environ = os.environ) -> float:
    raw = (env.get(START_TIMEOUT_ENV) or "").strip()
    if not raw:
        return DEFAULT_START_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{START_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{START_TIMEOUT_ENV}={raw!r} must be > 0")
    return value
