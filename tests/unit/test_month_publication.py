"""A month built by a run that published nothing (gate failed, run killed) is published by the next run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from flows.settings import DEFAULT_RULES
from flows.stages.month_plan import (
    MONTH_BUILD_DDL,
    MonthPlan,
    _unpublished,
    record_month_build,
    record_month_publication,
)

JAN, FEB, MAR = dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)


def build(db: Path, month: dt.date, at: dt.datetime) -> str:
    return record_month_build(db, month, None, "2026.11.1", DEFAULT_RULES, False, at)


def unpublished(db: Path, through: dt.date) -> list[dt.date]:
    with duckdb.connect(str(db), read_only=True) as con:
        return _unpublished(con, through)


def test_a_build_stays_unpublished_until_a_release_records_it(tmp_path):
    db = tmp_path / "tiering.duckdb"
    build(db, JAN, dt.datetime(2026, 2, 1, 6))
    build(db, FEB, dt.datetime(2026, 3, 1, 6))  # the run that built both was killed before publishing
    assert unpublished(db, FEB) == [JAN, FEB]
    assert unpublished(db, JAN) == [JAN]  # only months up to the run's as_of

    plan = MonthPlan(FEB, [], unpublished=unpublished(db, FEB))
    assert plan.published_months == [JAN, FEB]
    assert "also publishing 2026-01 (built by an earlier run that published nothing)" in plan.describe()

    record_month_publication(db, plan.published_months, "release-1")
    assert unpublished(db, MAR) == []
    build(db, JAN, dt.datetime(2026, 3, 2, 6))  # a restatement of January whose gate then failed
    build(db, MAR, dt.datetime(2026, 4, 1, 6))
    assert unpublished(db, MAR) == [JAN, MAR]
    assert MonthPlan(MAR, [MAR], unpublished=[JAN, MAR]).published_months == [JAN, MAR]


def test_a_warehouse_built_before_publications_were_recorded_has_nothing_unpublished(tmp_path):
    db = tmp_path / "tiering.duckdb"
    with duckdb.connect(str(db)) as con:  # the working database as the previous version left it
        con.execute(MONTH_BUILD_DDL)
        con.execute("INSERT INTO audit.month_build VALUES (?, 'old', ?, NULL, '2026.11.1', 'sha', false)",
                    [JAN, dt.datetime(2026, 2, 1, 6)])
    assert unpublished(db, JAN) == []
    build(db, FEB, dt.datetime(2026, 3, 1, 6))  # the first build after the upgrade
    assert unpublished(db, FEB) == [FEB]  # January counts as published (it was), February not yet
