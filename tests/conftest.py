"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from flows.settings import DBT_PROJECT_DIR
from tests.support.isolation import DBT_PROJECT_ENV, copy_dbt_project, free_port


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def worker_dbt_project(tmp_path_factory) -> Path:
    """This session's (with pytest-xdist: this worker's) own copy of dbt_project, named by
    TIERING_DBT_PROJECT_DIR for Settings.from_env, tests/support/isolation.settings_for and the `tiering`
    commands tests start (they inherit it). Every build writes the rule seeds of its rules file, and dbt its
    target/ and logs/: two workers building in one folder would clobber each other.

    Fails the session if the repository's dbt_project changed meanwhile: a test reached it directly."""
    before = _files(DBT_PROJECT_DIR)
    copy = copy_dbt_project(tmp_path_factory.mktemp("dbt") / "dbt_project")
    previous = os.environ.get(DBT_PROJECT_ENV)
    os.environ[DBT_PROJECT_ENV] = str(copy)
    yield copy
    if previous is None:
        os.environ.pop(DBT_PROJECT_ENV, None)
    else:
        os.environ[DBT_PROJECT_ENV] = previous
    after = _files(DBT_PROJECT_DIR)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"tests wrote into the repository's dbt_project (use the worker's copy): {changed[:10]}"


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server and database for the flow tests of this session (start-up ~12 s)."""
    from prefect.testing import utilities
    from prefect.testing.utilities import prefect_test_harness

    # The harness probes a free port with bind(0): from this worker's range instead, so that the two workers'
    # harnesses (started together at the beginning of the session) cannot be handed the same one.
    with mock.patch.object(utilities, "_find_available_port", free_port), \
            prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def published_warehouse(prefect_harness, tmp_path_factory):
    """A small warehouse built by the real monthly flow: 300 customers, 2026-01 … 2026-03, all published.

    Read-only for its users (explain, backtest, …): copy it before changing anything.
    Returns (landing, warehouse, as_of of the last release).
    """
    import datetime as dt

    from flows.commands.generate import generate
    from flows.pipeline import tiering_run
    from flows.settings import Settings

    root = tmp_path_factory.mktemp("published_warehouse")
    landing, warehouse = root / "landing", root / "warehouse"
    generate(landing, 300, dt.date(2026, 1, 1), dt.date(2026, 3, 31), seed=11)
    settings = Settings.from_env(warehouse=warehouse)
    for as_of in (dt.date(2026, 2, 28), dt.date(2026, 3, 31)):
        tiering_run(landing=str(landing), as_of=as_of, settings=settings)
    return landing, warehouse, dt.date(2026, 3, 31)
