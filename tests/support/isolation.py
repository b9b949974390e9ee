"""What each pytest-xdist worker (`make test` runs two) has for itself, so that the workers never race:

- a copy of the dbt project (`TIERING_DBT_PROJECT_DIR`, set by tests/conftest.py): every build writes the rule
  seeds of its rules file and dbt writes target/ and logs/ into the project folder;
- a range of TCP ports for the servers the tests start (Prefect, PostgreSQL): a port probed free by one worker
  cannot be probed free by the other before its server binds it.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from pathlib import Path
from typing import Any

from flows.adapters.local_server import free_port as any_free_port
from flows.settings import DBT_PROJECT_DIR, DEFAULT_RULES, Settings

DBT_PROJECT_ENV = "TIERING_DBT_PROJECT_DIR"
# Below Linux's ephemeral range (32768–60999), where bind(0) and outgoing connections take their ports, so only
# the worker owning a range probes it; 2000 ports per worker, gw0 … gw5.
PORT_BASE, PORTS_PER_WORKER, MAX_WORKERS = 20000, 2000, 6


def copy_dbt_project(target: Path) -> Path:
    """A private copy of the repository's dbt project in `target`, with the rule seeds of the shipped rules
    (as `make lint` leaves them), without any target/ or logs/ (as the backtest's scratch copy)."""
    from flows.rules import load_rules, write_seeds

    shutil.copytree(DBT_PROJECT_DIR, target, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    write_seeds(load_rules(DEFAULT_RULES), target / "seeds")
    return target


def dbt_project_dir() -> Path:
    """This worker's dbt project (the repository's when the conftest fixture has not set one)."""
    return Path(os.environ.get(DBT_PROJECT_ENV) or DBT_PROJECT_DIR).resolve()


def settings_for(warehouse: str | Path, **fields: Any) -> Settings:
    """`Settings(warehouse=…, **fields)` with this worker's dbt project: what tests build instead of Settings()."""
    fields.setdefault("dbt_project_dir", dbt_project_dir())
    return Settings(warehouse=warehouse, **fields)


def worker_index() -> int | None:
    """0 for gw0, 1 for gw1, …; None outside pytest-xdist (or past the ranges kept below)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not name.startswith("gw") or not name[2:].isdigit() or int(name[2:]) >= MAX_WORKERS:
        return None
    return int(name[2:])


def free_port() -> int:
    """A local TCP port free a moment ago, from this worker's range (any free port outside pytest-xdist)."""
    index = worker_index()
    if index is None:
        return any_free_port()
    first = PORT_BASE + index * PORTS_PER_WORKER
    # Random, not in order: a port just given up can linger (TIME_WAIT) and a server may still be binding it.
    for port in random.sample(range(first, first + PORTS_PER_WORKER), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}–{first + PORTS_PER_WORKER - 1} (pytest-xdist worker {index})")
