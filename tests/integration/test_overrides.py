"""Tier overrides (特批) and the CRM change feed across three real monthly runs (January, February, March).

Overrides are requested, refused, approved, rejected, revoked and left to expire through the `tiering override`
command between the runs; each run publishes what was approved before it, the audit log keeps every action,
the feed says what changed, and the gate blocks a release whose override the log does not support.
"""

from __future__ import annotations

import csv
import datetime as dt
import json

import duckdb
import pytest

from flows.cli import main
from flows.overrides import log_path
from flows.rules import load_rules
from flows.settings import Settings

pytestmark = pytest.mark.integration

JAN, FEB, MAR = dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)


def _published(settings: Settings, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(settings.published_db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _segment(settings: Settings, month: dt.date) -> dict[str, dict]:
    with duckdb.connect(str(settings.published_db), read_only=True) as con:
        cursor = con.execute("select * from customer_segment where as_of_month = ?", [month])
        names = [d[0] for d in cursor.description]
        return {row[1]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _computed(settings: Settings, month: dt.date) -> dict[str, str]:
    """customer_tier's tier of each customer's published ladder (what the rules give without an override)."""
    return dict(_published(settings, "select t.cust_id, t.tier from customer_tier t join customer_segment s "
                                     "using (as_of_month, cust_id, rule_set) where as_of_month = ?", [month]))


def _events(settings: Settings, month: dt.date) -> list[dict]:
    with duckdb.connect(str(settings.published_db), read_only=True) as con:
        cursor = con.execute("select * from customer_event where as_of_month = ?", [month])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class Cli:
    """`tiering …` in this process; returns (exit code, stdout, stderr)."""

    def __init__(self, capsys, settings: Settings):
        self.capsys, self.settings = capsys, settings

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--warehouse", str(self.settings.warehouse)])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def refused(self, *args: str) -> str:
        """Run a command that must be refused: exit 2, one line, and the log byte for byte as before."""
        path = log_path(self.settings)
        before = path.read_bytes() if path.exists() else None
        code, out, err = self(*args)
        assert code == 2, (args, out, err)
        assert len(err.strip().splitlines()) == 1 and "refused: " in err and "Traceback" not in err, err
        assert (path.read_bytes() if path.exists() else None) == before, f"{args} wrote to the log"
        return err.strip()


def _ranks(rules) -> dict[tuple[str, str], int]:
    ranks = {(rules.active_rule_set, t.code): t.rank for t in rules.active.tiers}
    ranks.update({("corporate", t.code): t.rank for t in rules.corporate_tiers})
    return ranks


def _check_feed(settings: Settings, rules, before: dict, after: dict, events: list[dict]) -> None:
    """The feed of two consecutive published months: every tier change once, with its direction, nothing
    else; the override starts and ends match the override ids."""
    ranks = _ranks(rules)
    expected_tiers = set()
    for cust_id, row in after.items():
        old = before.get(cust_id)
        if old is None:
            expected_tiers.add((cust_id, "NEW", None, row["value_tier"]))
        elif old["value_tier"] != row["value_tier"]:
            up = ranks[(row["rule_set"], row["value_tier"])] >= ranks[(old["rule_set"], old["value_tier"])]
            expected_tiers.add((cust_id, "TIER_UP" if up else "TIER_DOWN", old["value_tier"], row["value_tier"]))
    feed_tiers = [(e["cust_id"], e["event_type"], e["from_value"], e["to_value"]) for e in events
                  if e["event_type"] in ("NEW", "TIER_UP", "TIER_DOWN")]
    assert len(feed_tiers) == len(set(feed_tiers)) and set(feed_tiers) == expected_tiers

    def ids(kind: str) -> set[str]:
        return {e["cust_id"] for e in events if e["event_type"] == kind}

    assert ids("OVERRIDE_START") == {c for c, r in after.items()
                                     if r["override_id"] and r["override_id"] != (before.get(c) or {}).get("override_id")}
    assert ids("OVERRIDE_END") == {c for c, r in before.items()
                                   if r["override_id"] and c in after and after[c]["override_id"] != r["override_id"]}
    assert ids("OVERRIDE_ENDING_NEXT_MONTH") == {c for c, r in after.items()
                                                 if r["override_id"] and r["override_until"] == r["as_of_month"]}
    assert ids("WATCH_START") == {c for c, r in after.items()
                                  if r["on_watch"] and not (before.get(c) or {}).get("on_watch")}
    # Masked personal data only, and the action comes from the rules file.
    strategies = {*rules.retail_strategies.values(), *rules.corporate_strategies.values(),
                  *rules.quadrant.actions.values()}
    for event in events:
        assert "cert_no_masked" not in event and "*" in (event["cust_name_masked"] or "*")
        assert event["suggested_action"] in strategies, event


def test_overrides_and_the_change_feed_across_three_monthly_runs(prefect_harness, tmp_path, capsys):
    from flows.commands.generate import generate
    from flows.pipeline import tiering_run
    from flows.stages.gate_checks import run_checks

    landing = tmp_path / "landing"
    generate(landing, 100, dt.date(2026, 1, 1), dt.date(2026, 3, 31), seed=1)
    settings = Settings.from_env(warehouse=tmp_path / "warehouse")
    rules = load_rules(settings.rules_path)
    cli = Cli(capsys, settings)

    # Before any release there is nothing to override.
    assert "no release is published" in cli.refused("override", "request", "C0000000001", "--tier", "GOLD",
                                                    "--until", "2026-03", "--reason", "x", "--by", "alice")

    tiering_run(landing=str(landing), as_of=JAN, settings=settings)
    january = _segment(settings, JAN)
    retail = sorted(c for c, r in january.items() if r["cust_type"] == "P" and r["value_tier"] != "DIAMOND")
    corporate = sorted(c for c, r in january.items() if r["cust_type"] != "P" and r["value_tier"] == "GENERAL")
    a, b, c = retail[0], retail[1], corporate[0]

    # --- every refusal: one line, exit 2, nothing written -------------------------------------------------
    def request(cust: str, tier: str, until: str, *more: str, by: str = "alice") -> tuple[int, str, str]:
        return cli("override", "request", cust, "--tier", tier, "--until", until, "--reason", "战略客户临时回落",
                   "--by", by, *more)

    assert "customer NOBODY is not in the latest release (2026-01)" in cli.refused(
        "override", "request", "NOBODY", "--tier", "GOLD", "--until", "2026-03", "--reason", "x", "--by", "alice")
    assert f"tier KEY is not in active rule set {rules.active_rule_set}" in cli.refused(
        "override", "request", a, "--tier", "KEY", "--until", "2026-03", "--reason", "x", "--by", "alice")
    assert "tier DIAMOND is not in the corporate ladder" in cli.refused(
        "override", "request", c, "--tier", "DIAMOND", "--until", "2026-03", "--reason", "x", "--by", "alice")
    assert "more than 12 months (overrides.max_override_months" in cli.refused(
        "override", "request", a, "--tier", "DIAMOND", "--until", "2027-02", "--reason", "x", "--by", "alice")
    assert "--until 2026-01 is already published (the first month not yet published is 2026-02)" in cli.refused(
        "override", "request", a, "--tier", "DIAMOND", "--until", "2026-01", "--reason", "x", "--by", "alice")
    assert "--from 2026-03 is after --until 2026-02" in cli.refused(
        "override", "request", a, "--tier", "DIAMOND", "--from", "2026-03", "--until", "2026-02", "--reason", "x",
        "--by", "alice")
    assert "--reason must say why" in cli.refused(
        "override", "request", a, "--tier", "DIAMOND", "--until", "2026-02", "--reason", "  ", "--by", "alice")
    assert "--by must name a person" in cli.refused(
        "override", "request", a, "--tier", "DIAMOND", "--until", "2026-02", "--reason", "x", "--by", " ")

    # --- requests and decisions before February's run ---------------------------------------------------
    assert request(a, "DIAMOND", "2026-02")[0] == 0                       # OVR-0001: February only
    assert request(b, "DIAMOND", "2026-03", by="bob")[0] == 0             # OVR-0002: to be rejected
    code, out, _ = request(c, "STRATEGIC", "2026-04", "--from", "2026-01")  # OVR-0003: asked from January
    assert code == 0 and "OVR-0003 requested by alice" in out
    assert "OVR-0001 was requested by alice; a second person must decide it" in cli.refused(
        "override", "approve", "OVR-0001", "--by", "alice")
    assert "OVR-0002 was requested by bob" in cli.refused("override", "reject", "OVR-0002", "--by", "bob")
    assert "no override OVR-0042" in cli.refused("override", "approve", "OVR-0042", "--by", "bob")
    assert "OVR-0001 is pending, not an approved override" in cli.refused(
        "override", "revoke", "OVR-0001", "--by", "bob", "--reason", "x")
    assert cli("override", "approve", "OVR-0001", "--by", "bob", "--note", "已核实")[0] == 0
    assert "OVR-0001 is approved already (by bob)" in cli.refused("override", "approve", "OVR-0001", "--by", "carol")
    assert cli("override", "reject", "OVR-0002", "--by", "carol", "--note", "资产未达标")[0] == 0
    code, out, _ = cli("override", "approve", "OVR-0003", "--by", "bob")
    assert code == 0 and "applies from 2026-02" in out  # never a month already published
    assert request(c, "KEY", "2026-03")[0] == 0                           # OVR-0004: overlaps OVR-0003
    assert f"customer {c} already has OVR-0003 2026-02 … 2026-04: revoke it first" in cli.refused(
        "override", "approve", "OVR-0004", "--by", "bob")
    assert cli("override", "reject", "OVR-0004", "--by", "bob")[0] == 0

    tiering_run(landing=str(landing), as_of=FEB, settings=settings)
    february, computed = _segment(settings, FEB), _computed(settings, FEB)
    assert (february[a]["value_tier"], february[a]["override_id"]) == ("DIAMOND", "OVR-0001")
    assert february[a]["value_tier_name"] == rules.active.tier("DIAMOND").name
    assert february[a]["override_until"] == FEB and february[a]["override_tier_reason"] == "战略客户临时回落"
    assert february[a]["service_strategy"] == rules.retail_strategies["DIAMOND"]  # classifications follow it
    assert computed[a] != "DIAMOND" and february[a]["implied_tier"] != "DIAMOND"   # the computed tier is kept
    assert (february[c]["value_tier"], february[c]["override_id"]) == ("STRATEGIC", "OVR-0003")
    assert february[c]["service_strategy"] == rules.corporate_strategies["STRATEGIC"] and computed[c] == "GENERAL"
    assert february[b]["override_id"] is None and february[b]["value_tier"] == computed[b]  # rejected
    assert {r["cust_id"] for r in february.values() if r["override_id"]} == {a, c}
    feb_events = _events(settings, FEB)
    _check_feed(settings, rules, january, february, feb_events)
    assert {(e["cust_id"], e["event_type"]) for e in feb_events if e["event_type"].startswith("OVERRIDE")} == {
        (a, "OVERRIDE_START"), (c, "OVERRIDE_START"), (a, "OVERRIDE_ENDING_NEXT_MONTH")}
    ending = next(e for e in feb_events if e["event_type"] == "OVERRIDE_ENDING_NEXT_MONTH")
    assert (ending["from_value"], ending["to_value"], ending["effective_from"]) == (
        "DIAMOND", computed[a], dt.date(2026, 4, 1))

    # explain shows the override beside the computed tier, with who asked and who approved.
    code, out, _ = cli("explain", a, "--as-of", "2026-02")
    assert code == 0
    assert f"override OVR-0001 (特批): published DIAMOND {rules.active.tier('DIAMOND').name} instead of the " \
           f"computed {computed[a]}" in out
    assert "asked by alice" in out and "approved by bob" in out and "已核实" in out and "through 2026-02" in out

    # --- between February and March: revoke OVR-0003, a new override for b --------------------------------
    assert cli("override", "revoke", "OVR-0003", "--by", "dave", "--reason", "客户已转为集团统一管理")[0] == 0
    assert request(b, "DIAMOND", "2026-03", by="erin")[0] == 0            # OVR-0005
    assert cli("override", "approve", "OVR-0005", "--by", "frank")[0] == 0
    code, out, _ = cli("override", "list", "--status", "APPROVED")
    assert code == 0 and "OVR-0005" in out and "OVR-0001" not in out  # February, OVR-0001's last, is published
    assert "OVR-0001" in cli("override", "list", "--status", "EXPIRED")[1]

    tiering_run(landing=str(landing), as_of=MAR, settings=settings)
    march, computed = _segment(settings, MAR), _computed(settings, MAR)
    assert march[a]["override_id"] is None and march[a]["value_tier"] == computed[a]   # expired: back
    assert march[c]["override_id"] is None and march[c]["value_tier"] == computed[c]   # revoked: back
    assert (march[b]["value_tier"], march[b]["override_id"]) == ("DIAMOND", "OVR-0005")
    mar_events = _events(settings, MAR)
    _check_feed(settings, rules, february, march, mar_events)
    assert {(e["cust_id"], e["event_type"]) for e in mar_events if e["event_type"].startswith("OVERRIDE")} == {
        (a, "OVERRIDE_END"), (c, "OVERRIDE_END"), (b, "OVERRIDE_START"), (b, "OVERRIDE_ENDING_NEXT_MONTH")}
    # February's release is unchanged by the later revocation.
    assert _segment(settings, FEB)[c]["override_id"] == "OVR-0003"

    # The CSV for the CRM: UTF-8 with a BOM, the published feed row for row.
    export = settings.exports_dir / "crm" / "2026-03" / "customer_event.csv"
    assert export.read_bytes().startswith(b"\xef\xbb\xbf")
    with open(export, encoding="utf-8-sig", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert sorted((r["cust_id"], r["event_type"]) for r in exported) == sorted(
        (e["cust_id"], e["event_type"]) for e in mar_events)
    code, out, _ = cli("events", "--as-of", "2026-03", "--type", "OVERRIDE_START")
    assert code == 0 and b in out and a not in out and "1 event(s) in 2026-03: OVERRIDE_START 1" in out

    # --- the audit log: every action once, in order, with who, when and why -----------------------------
    actions = [json.loads(line) for line in log_path(settings).read_text(encoding="utf-8").splitlines()]
    assert [(x["override_id"], x["action"], x["acted_by"]) for x in actions] == [
        ("OVR-0001", "REQUEST", "alice"), ("OVR-0002", "REQUEST", "bob"), ("OVR-0003", "REQUEST", "alice"),
        ("OVR-0001", "APPROVE", "bob"), ("OVR-0002", "REJECT", "carol"), ("OVR-0003", "APPROVE", "bob"),
        ("OVR-0004", "REQUEST", "alice"), ("OVR-0004", "REJECT", "bob"), ("OVR-0003", "REVOKE", "dave"),
        ("OVR-0005", "REQUEST", "erin"), ("OVR-0005", "APPROVE", "frank")]
    assert [x["seq"] for x in actions] == list(range(1, 12))
    assert all(dt.datetime.fromisoformat(x["acted_at"]).utcoffset() == dt.timedelta(hours=8) for x in actions)
    assert actions[8]["text"] == "客户已转为集团统一管理" and actions[8]["from_month"] == "2026-03-31"
    code, out, _ = cli("override", "list", "--json")
    status = {r["override_id"]: r["status"] for r in json.loads(out)}
    assert status == {"OVR-0001": "EXPIRED", "OVR-0002": "REJECTED", "OVR-0003": "REVOKED",
                      "OVR-0004": "REJECTED", "OVR-0005": "EXPIRED"}  # March, its last month, is published

    # --- the gate blocks what the log does not support (the run's copy of the log, tampered) -------------
    def gate_failures(tamper: str) -> set[str]:
        with duckdb.connect(str(settings.working_db)) as con:
            con.execute("create or replace table overrides.kept as select * from overrides.tier_override_log")
            con.execute(tamper)
        try:
            results, _ = run_checks(settings, MAR, rules, tables=("customer_segment",))
        finally:
            with duckdb.connect(str(settings.working_db)) as con:
                con.execute("create or replace table overrides.tier_override_log as select * from overrides.kept")
                con.execute("drop table overrides.kept")
        return {r.name for r in results if not r.success and r.severity == "blocking"}

    assert gate_failures("select 1") == set()
    assert gate_failures("update overrides.tier_override_log set acted_by = 'erin' "
                         "where override_id = 'OVR-0005' and action = 'APPROVE'") == {"override_four_eyes"}
    assert gate_failures("delete from overrides.tier_override_log "
                         "where override_id = 'OVR-0005' and action = 'APPROVE'") >= {"override_approved"}
    assert "override_not_expired" in gate_failures(
        "update overrides.tier_override_log set until_month = date '2026-02-28' "
        "where override_id = 'OVR-0005' and action = 'REQUEST'")
