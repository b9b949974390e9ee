"""One run per warehouse, whatever starts it: a lock file every writer takes, plus a Prefect slot for deployments.

DuckDB allows one writer per file, and a run, an ingest and a back-test of one warehouse read each other's
batches: they must not overlap. Every writer (`tiering run`, `ingest`, `backtest`, `rollback`, `demo` and the
served deployments) takes `<warehouse>/.tiering.lock` with `flock`:

- the kernel drops the lock when its owner ends, however it ends (SIGKILL, power-off of the process), so a
  killed owner cannot leave it stuck. The file itself stays, naming its last owner (pid, host, command,
  start): that is a stale lock file, harmless — the next writer takes the lock and rewrites it;
- a second writer is refused at once with one line naming the holder, or, asked to wait (`--wait`, served
  runs), says once what it waits for and takes the lock when the holder ends;
- the lock is re-entrant within a process: the CLI takes it before Prefect starts (so a refusal costs no
  server start-up), and the flow it then runs takes it again without blocking itself.

Readers (`status`, `explain`) take no lock: they read the published catalog, and the working database
read-only when it is free.

Runs of a deployment also hold the warehouse's Prefect global concurrency slot (limit 1), so that the
daily ingest and the monthly run queue in the Prefect UI instead of waiting out of sight.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flows.months import SHANGHAI, bank_time
from flows.settings import LOCK_FILE

WAIT_POLL_SECONDS = 1.0
REFUSE_AFTER_TRIES = 5


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse lock (and the caller did not ask to wait)."""


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    command: str
    started_at: str  # Asia/Shanghai wall time, to the second, labelled

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid} on {self.host}, since {self.started_at})"


def lock_path(warehouse: Path) -> Path:
    return Path(warehouse) / LOCK_FILE


def read_owner(warehouse: Path) -> LockOwner | None:
    """The owner the lock file names (the current one while it is held, the last one otherwise)."""
    try:
        data = json.loads(lock_path(warehouse).read_text(encoding="utf-8"))
        return LockOwner(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_locked(warehouse: Path) -> bool:
    """True while some process holds the warehouse lock (this one included)."""
    path = lock_path(warehouse)
    if path.resolve() in _held:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


def current_command() -> str:
    """`tiering run --as-of 2026-10` as typed; a flow run names itself."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join([name, *sys.argv[1:]])[:200]


# Locks this process holds: resolved lock path → [fd, depth]. flock conflicts between two descriptors even
# in one process, so a nested take must reuse the first descriptor.
_held: dict[Path, list[int]] = {}
_held_guard = threading.Lock()


@contextmanager
def warehouse_lock(warehouse: Path, command: str | None = None, *, wait: bool = False,
                   on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the warehouse lock for the block; refuse with WarehouseBusy, or wait when `wait`."""
    warehouse = Path(warehouse)
    warehouse.mkdir(parents=True, exist_ok=True)
    path = lock_path(warehouse).resolve()
    with _held_guard:
        if path in _held:
            _held[path][1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[path][1] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, warehouse, wait, on_wait)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or current_command(),
                 "started_at": bank_time(dt.datetime.now(SHANGHAI))}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner, ensure_ascii=False) + "\n").encode(), 0)
        with _held_guard:
            _held[path] = [fd, 1]
        try:
            yield
        finally:
            with _held_guard:
                del _held[path]
    finally:
        os.close(fd)  # releases the flock; the file (naming its last owner) stays


def _acquire(fd: int, warehouse: Path, wait: bool, on_wait: Callable[[str], None] | None) -> None:
    said, tries = False, 0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            tries += 1
        if tries < REFUSE_AFTER_TRIES:  # a reader's is_locked probe holds the file for a moment only
            time.sleep(0.1)
            continue
        owner = read_owner(warehouse)
        holder = owner.describe() if owner else "another process"
        if not wait:
            raise WarehouseBusy(f"warehouse {warehouse} is busy: {holder} holds it; "
                                f"try again when it ends, or add --wait to queue behind it")
        if not said and on_wait is not None:
            on_wait(f"waiting for warehouse {warehouse}: {holder} holds it")
            said = True
        time.sleep(WAIT_POLL_SECONDS)


def warehouse_limit_name(warehouse: Path) -> str:
    """`tiering-warehouse-<folder>-<hash>`: readable in the UI, unique per absolute path, and made only of
    characters Prefect allows in a limit name."""
    resolved = Path(warehouse).resolve()
    readable = re.sub(r"[^a-z0-9-]+", "-", resolved.name.lower()).strip("-")[:30] or "root"
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    return f"tiering-warehouse-{readable}-{digest}"


@contextmanager
def warehouse_slot(warehouse: Path, command: str) -> Iterator[None]:
    """Hold the warehouse for a flow run: the Prefect slot under a deployment, and always the lock file.

    A deployment's run waits for both (its log says for whom); any other run finds the lock already held by
    its own command (the CLI) or is refused at once.
    """
    from prefect import get_run_logger
    from prefect.runtime import deployment as runtime_deployment

    if runtime_deployment.id is None:
        with warehouse_lock(warehouse, command):
            yield
        return
    from prefect.concurrency.sync import concurrency

    name = ensure_warehouse_limit(warehouse)
    # Strict: were the limit deleted in between, the run must stop rather than run unguarded.
    with concurrency(name, occupy=1, strict=True), \
            warehouse_lock(warehouse, command, wait=True, on_wait=get_run_logger().warning):
        yield


def ensure_warehouse_limit(warehouse: Path, reset: bool = False) -> str:
    """Create the warehouse's global concurrency limit (1 slot) if missing; `reset` also sets an existing
    one back to 1 slot, active. Returns its name."""
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = warehouse_limit_name(warehouse)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another run of this warehouse created it a moment ago
                pass
        else:
            if reset:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))
    return name
