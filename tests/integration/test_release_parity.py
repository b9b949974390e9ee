"""A refactor changes no published result: the fixture's release against one recorded before it.

The baseline (tests/fixtures/release_fingerprint_300_customers_2026Q1.json) was recorded from the
`published_warehouse` fixture's release (300 customers, seed 11, 2026-01 … 2026-03) at commit 6a155d9,
before issue 10 split the classification model, moved AML and FX conversion into their own folders and
made customer_segment select from customer_tier. Record a new one only for an intended change of results
(`python -m tests.support.release_fingerprint WAREHOUSE`), and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.support.release_fingerprint import differences, fingerprint

pytestmark = pytest.mark.integration

BASELINE = Path(__file__).parents[1] / "fixtures" / "release_fingerprint_300_customers_2026Q1.json"


def test_published_release_matches_the_recorded_baseline(published_warehouse) -> None:
    _, warehouse, _ = published_warehouse
    baseline = json.loads(BASELINE.read_text())
    current = fingerprint(warehouse, columns={t: list(v["columns"]) for t, v in baseline.items()})
    assert differences(baseline, current) == []


def test_customer_segment_tier_columns_are_customer_tiers_row(published_warehouse) -> None:
    """customer_segment repeats its customer_tier row (a corporate's floor is the ladder that reached it:
    the dbt unit test customer_segment_masks_personal_data_and_publishes_the_active_rule_set pins that case)."""
    _, warehouse, _ = published_warehouse
    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        (mismatched,) = con.execute("""
            select count(*) filter (where t.cust_id is null
                                       or s.tier_floor_cny is distinct from t.tier_floor_cny
                                       or s.value_tier is distinct from t.tier
                                       or s.implied_tier is distinct from t.implied_tier
                                       or s.months_below is distinct from t.months_below)
            from customer_segment as s
            left join customer_tier as t
                on s.as_of_month = t.as_of_month and s.cust_id = t.cust_id and s.rule_set = t.rule_set
        """).fetchone()
    assert mismatched == 0
