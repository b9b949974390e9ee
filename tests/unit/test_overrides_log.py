"""The tier-override log on its own: the refusals a monthly run cannot reach, the fold, and appends under load.

A small published catalog stands in for a release (release_months and customer_segment, as publication
writes them); the rules file is the shipped one, or a copy with one bound changed.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import duckdb
import pytest

from flows import overrides
from flows.overrides import OverrideRefused
from flows.settings import DEFAULT_RULES, Settings

FEB = dt.date(2026, 2, 28)
MAR, APR, JUN = dt.date(2026, 3, 31), dt.date(2026, 4, 30), dt.date(2026, 6, 30)


def publish_through(settings: Settings, last_month: dt.date) -> None:
    """A catalog whose latest published month is `last_month`, with a retail and a corporate customer."""
    settings.published_db.unlink(missing_ok=True)
    with duckdb.connect(str(settings.published_db)) as con:
        con.execute("CREATE TABLE release_months AS SELECT 'customer_segment' AS table_name, ?::DATE AS as_of_month",
                    [last_month])
        con.execute("CREATE TABLE customer_segment AS SELECT * FROM (VALUES (?::DATE, 'P1', 'P'), "
                    "(?::DATE, 'C1', 'C')) AS t(as_of_month, cust_id, cust_type)", [last_month, last_month])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    settings = Settings(warehouse=warehouse)
    publish_through(settings, FEB)
    return settings


def with_rules(settings: Settings, tmp_path: Path, *changes: tuple[str, str]) -> Settings:
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    for old, new in changes:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / "rules.yml"
    path.write_text(text, encoding="utf-8")
    return Settings(warehouse=settings.warehouse, rules_path=path)


def refused(call, *args, **kwargs) -> str:
    path = overrides.log_path(args[0])
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(OverrideRefused) as caught:
        call(*args, **kwargs)
    assert (path.read_bytes() if path.exists() else None) == before
    return str(caught.value)


def test_approval_after_the_whole_window_was_published_is_refused(settings):
    overrides.request(settings, "P1", "GOLD", MAR, "临时回落", "alice")
    publish_through(settings, MAR)  # March is published before anyone approves
    assert "OVR-0001 ends 2026-03, already published (the first month not yet published is 2026-04)" in refused(
        overrides.decide, settings, "OVR-0001", True, "bob")
    assert overrides.decide(settings, "OVR-0001", False, "bob").action == "REJECT"


def test_approval_rechecks_the_rules_file(settings, tmp_path):
    overrides.request(settings, "P1", "DIAMOND", JUN, "战略客户", "alice")
    shorter = with_rules(settings, tmp_path, ("max_override_months: 12", "max_override_months: 2"))
    assert "OVR-0001 would hold more than 2 months (overrides.max_override_months)" in refused(
        overrides.decide, shorter, "OVR-0001", True, "bob")
    renamed = with_rules(settings, tmp_path, ("code: DIAMOND,", "code: DIAMOND_PLUS,"),
                         ("    DIAMOND: 私人银行", "    DIAMOND_PLUS: 私人银行"))
    assert "tier DIAMOND of OVR-0001 is no longer in active rule set cib_monthly" in refused(
        overrides.decide, renamed, "OVR-0001", True, "bob")
    assert overrides.decide(settings, "OVR-0001", True, "bob").from_month == MAR.isoformat()


def test_only_an_approved_override_in_force_can_be_revoked(settings):
    overrides.request(settings, "P1", "GOLD", APR, "x", "alice")
    overrides.decide(settings, "OVR-0001", False, "bob")
    assert "OVR-0001 is rejected, not an approved override" in refused(
        overrides.revoke, settings, "OVR-0001", "carol", "y")
    overrides.request(settings, "C1", "KEY", MAR, "x", "alice")
    overrides.decide(settings, "OVR-0002", True, "bob")
    publish_through(settings, MAR)
    assert "OVR-0002 is expired, not an approved override" in refused(
        overrides.revoke, settings, "OVR-0002", "carol", "y")
    assert overrides.listing(settings, "EXPIRED")[0]["override_id"] == "OVR-0002"
    overrides.request(settings, "P1", "PLATINUM", JUN, "x", "alice")
    overrides.decide(settings, "OVR-0003", True, "bob")
    revoked = overrides.revoke(settings, "OVR-0003", "carol", "资产回升")
    assert revoked.from_month == APR.isoformat()
    assert "OVR-0003 is revoked, not an approved override" in refused(
        overrides.revoke, settings, "OVR-0003", "dave", "again")
    state = overrides.load_overrides(settings)["OVR-0003"]
    assert (state.first_month, state.last_month(), state.revoked_by) == (APR, None, "carol")
    assert not state.applies_to(APR)


def test_a_broken_log_line_is_named_and_nothing_is_appended(settings):
    overrides.request(settings, "P1", "GOLD", APR, "x", "alice")
    path = overrides.log_path(settings)
    path.write_text(path.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    message = refused(overrides.decide, settings, "OVR-0001", True, "bob")
    assert f"{path}:2: not an override log line" in message


def test_concurrent_requests_get_distinct_ids_and_whole_lines(settings):
    errors: list[BaseException] = []

    def ask(index: int) -> None:
        try:
            overrides.request(settings, "P1" if index % 2 else "C1", "GOLD" if index % 2 else "KEY", APR,
                              f"理由 {index}", f"user{index}")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    lines = [json.loads(line) for line in overrides.log_path(settings).read_text(encoding="utf-8").splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, 13))
    assert sorted(x["override_id"] for x in lines) == [f"OVR-{i:04d}" for i in range(1, 13)]


def test_the_run_copy_has_every_action_typed(settings):
    overrides.request(settings, "P1", "GOLD", APR, "x", "alice", from_month=MAR)
    overrides.decide(settings, "OVR-0001", True, "bob", "ok")
    with duckdb.connect(str(settings.working_db)) as con:
        assert overrides.snapshot_into(con, settings) == 2
        rows = con.execute("SELECT seq, action, acted_by, from_month, until_month, typeof(acted_at) "
                           "FROM overrides.tier_override_log ORDER BY seq").fetchall()
    assert rows == [(1, "REQUEST", "alice", MAR, APR, "TIMESTAMP"), (2, "APPROVE", "bob", MAR, None, "TIMESTAMP")]
