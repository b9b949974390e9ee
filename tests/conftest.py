"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server and database for the flow tests of this session (start-up ~12 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
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
