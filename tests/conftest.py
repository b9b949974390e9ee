"""Shared pytest fixtures."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from unittest import mock

import pytest

from flows.settings import DBT_PROJECT_DIR
from tests.support.isolation import DBT_PROJECT_ENV, copy_dbt_project, free_port

# `make test` runs two pytest-xdist workers (`-n 2 --dist loadfile --no-loadscope-reorder`). A work unit is a test
# module, as with loadfile (its module fixtures are built once, on one worker), except that the modules using the
# session's published warehouse are one unit: the warehouse is built once (2–3 min), not on both workers. Units
# are handed out in collection order, which the workers sort longest first, so that the many short modules fill
# the end of both workers (durations in BENCHMARKS.md, "Test suite on two workers"). Not xdist_group marks with
# loadgroup: pytest-xdist 3.8 groups by renaming `item._nodeid`, which pytest 9.2 no longer reads.
PUBLISHED_WAREHOUSE = "published_warehouse"
PUBLISHED_WAREHOUSE_MODULES = frozenset(f"tests/{name}.py" for name in (
    "flows/test_artifacts", "flows/test_backtest", "flows/test_explain", "flows/test_release_report",
    "integration/test_attacks", "integration/test_classifications", "integration/test_gate_spark",
    "integration/test_release_parity", "integration/test_spark_parity",
    "integration/test_readme_commands", "integration/test_rule_change", "postgres/test_postgres_publish", "postgres/test_publish_flow_postgres"))
LONGEST_FIRST = ("tests/integration/test_monthly_run.py", PUBLISHED_WAREHOUSE, "tests/integration/test_overrides.py",
                 "tests/browser/test_prefect_ui.py")


def _work_unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return PUBLISHED_WAREHOUSE if module in PUBLISHED_WAREHOUSE_MODULES else module


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: plain pytest runs without it
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndPublishedWarehouse(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return ModulesAndPublishedWarehouse(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not a pytest-xdist worker: the plain order
        return
    users = {item.nodeid.split("::", 1)[0] for item in items if PUBLISHED_WAREHOUSE in item.fixturenames}
    collected = {item.nodeid.split("::", 1)[0] for item in items}
    if stale := sorted(users ^ (PUBLISHED_WAREHOUSE_MODULES & collected)):
        # Not an error: such a module still passes, it only builds the warehouse on a second worker (or not).
        warnings.warn(pytest.PytestWarning(f"update PUBLISHED_WAREHOUSE_MODULES in tests/conftest.py: {stale}"),
                      stacklevel=1)
    rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_work_unit(item.nodeid), len(rank)))  # stable: else as collected


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


@pytest.fixture(scope="session")
def spark_built_warehouse(published_warehouse, tmp_path_factory):
    """The published warehouse's landing run through the same monthly flow with TIERING_ENGINE=spark (a local
    Spark session in this process: one Spark warehouse per process, so every Spark test of the
    published-warehouse work unit shares this one). Returns its Settings."""
    import dataclasses
    import datetime as dt

    from flows.pipeline import tiering_run
    from flows.settings import Settings

    landing, _, as_of = published_warehouse
    warehouse = tmp_path_factory.mktemp("spark_built_warehouse") / "warehouse"
    settings = dataclasses.replace(Settings.from_env(warehouse=warehouse), engine="spark")
    for month in (dt.date(2026, 2, 28), as_of):
        tiering_run(landing=str(landing), as_of=month, settings=settings)
    return settings
