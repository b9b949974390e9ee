"""The artifacts a monthly run shows in the Prefect UI agree with the warehouse they describe."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from flows.reports.release_report import NEW_CUSTOMER
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration


def runs_of(flow_name: str, warehouse: Path) -> list:
    """Flow runs of `flow_name` (completed or not) that worked on `warehouse`, oldest first."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    runs: list = []
    with get_client(sync_client=True) as client:
        while page := client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                            sort=FlowRunSort.START_TIME_ASC, offset=len(runs), limit=100):
            runs.extend(page)  # paged: the session's other tests run these flows too
    return [r for r in runs if Path(str(_warehouse_of(r.parameters))).resolve() == warehouse.resolve()]


def _warehouse_of(parameters: dict) -> str:
    """The warehouse a run worked on: flows take the run's Settings (stored as its fields)."""
    settings = parameters.get("settings") or {}
    return settings.get("warehouse", "") if isinstance(settings, dict) else parameters.get("warehouse", "")


def artifacts_of(flow_run_id) -> dict[str, object]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def table(artifact) -> list[dict]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the markdown tables in `text` (one header per table), as dicts of cell text."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: "):
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


def published(warehouse: Path, sql: str, params: list) -> list[tuple]:
    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        return con.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def gate_failed_run(published_warehouse, tmp_path_factory):
    """March run again on a copy of the published warehouse whose candidate month was tampered with after its
    build: every batch is already loaded, the gate blocks. Returns (warehouse, the release in force, error)."""
    from flows.pipeline import tiering_run
    from flows.settings import Settings
    from flows.stages.gate import GateFailed

    landing, source, as_of = published_warehouse
    warehouse = tmp_path_factory.mktemp("gate_failed") / "warehouse"
    shutil.copytree(source, warehouse, symlinks=True)
    with duckdb.connect(str(warehouse / "tiering.duckdb")) as con:
        con.execute("UPDATE main_marts.customer_segment SET value_tier = NULL WHERE as_of_month = ? AND cust_id = "
                    "(SELECT min(cust_id) FROM main_marts.customer_segment)", [as_of])
    (in_force,), = published(warehouse, "SELECT release_id FROM release_log ORDER BY published_at DESC LIMIT 1", [])
    with pytest.raises(GateFailed) as failed:
        tiering_run(landing=str(landing), as_of=as_of, settings=Settings.from_env(warehouse=warehouse))
    return warehouse, in_force, failed.value


def run_log(flow_run_id) -> list[str]:
    """The INFO lines of a flow run's log on the server (after the pending ones were sent)."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [entry.message for entry in logs if entry.level == 20]


def test_ingest_artifact_counts_every_record_of_every_batch(published_warehouse):
    _, warehouse, _ = published_warehouse
    first_ingest = runs_of("ingest", warehouse)[0]
    rows = table(artifacts_of(first_ingest.id)["batch-load-summary"])
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        logged = con.execute("SELECT strftime(batch_date, '%Y-%m-%d'), table_name, records, loaded, quarantined "
                             "FROM audit.batch_log").fetchall()
    # The first monthly run loaded January and February; the log holds them with the same counts.
    shown = {(r["batch"], r["table"]): (r["records"], r["loaded"], r["quarantined"]) for r in rows}
    assert shown and all(r["outcome"] == "loaded" for r in rows)
    # The audit log names a table by its extract (CBS_ACCOUNT), the summary by its short name (ACCOUNT).
    assert shown == {(d, t.removeprefix("CBS_")): (n, ok, q) for d, t, n, ok, q in logged
                     if (d, t.removeprefix("CBS_")) in shown}
    assert {d for d, _ in shown} == {f"2026-{m:02d}-{d:02d}" for m, days in ((1, 31), (2, 28))
                                     for d in range(1, days + 1)}


def test_gate_artifact_lists_every_general_expectation_and_nothing_of_aml(published_warehouse):
    from flows.stages.publishing import AML_TABLES

    _, warehouse, _ = published_warehouse
    gate_run = runs_of("gate", warehouse)[-1]
    found = artifacts_of(gate_run.id)
    rows = table(found["gate-report"])
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        gate_run_id = con.execute("SELECT gate_run_id FROM gate.run ORDER BY started_at DESC LIMIT 1").fetchone()[0]
        general, passed, aml = con.execute(
            "SELECT count(*) FILTER (NOT list_contains(?, table_name)), "
            "count(*) FILTER (success AND NOT list_contains(?, table_name)), "
            "count(*) FILTER (list_contains(?, table_name)) FROM gate.result WHERE gate_run_id = ?",
            [list(AML_TABLES)] * 3 + [gate_run_id]).fetchone()
    assert aml > 0  # the run had AML expectations …
    assert len(rows) == general  # … and the artifact, which every Prefect UI user sees, shows none of them
    assert not {r["table"] for r in rows} & set(AML_TABLES)
    assert sum(r["result"] in ("passed", "warning not raised") or r["result"].startswith("warning not raised —")
               for r in rows) == passed
    # A warning is raised or not, against the bound from the rules file; only blocking checks pass or fail.
    assert {r["result"] for r in rows if r["severity"] == "blocking"} <= {"passed", "FAILED"}
    warnings = {r["expectation"]: r["result"] for r in rows if r["severity"] == "warning"}
    assert warnings and all(re.fullmatch(r"warning (not )?raised — bound: .+", v) for v in warnings.values())
    share = load_rules(DEFAULT_RULES).warn_on_watch_share
    assert warnings["on_watch_share"].endswith(f"bound: at most {share:.0%} of customers on watch")
    description = found["gate-report"].description
    assert gate_run_id in description and f"{general} expectations" in description
    assert "AML results: restricted report (AML staff only)" in description
    page = warehouse / "reports" / "2026-03" / "gate.html"
    assert page.as_uri() in found["gate-results-page"].data


def test_report_artifacts_show_the_published_month(published_warehouse):
    _, warehouse, as_of = published_warehouse
    report_run = runs_of("report", warehouse)[-1]
    found = artifacts_of(report_run.id)
    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        summary = con.execute("SELECT rule_set, tier, customers, total_avg_daily_aum_cny FROM tier_summary "
                              "WHERE as_of_month = ?", [as_of]).fetchall()
        rule_set, release_id = con.execute("SELECT rule_set, release_id FROM release_log "
                                           "ORDER BY published_at DESC LIMIT 1").fetchone()
        migration = con.execute("SELECT coalesce(from_tier, ?), to_tier, customers FROM tier_migration "
                                "WHERE as_of_month = ? AND rule_set = ?", [NEW_CUSTOMER, as_of, rule_set]).fetchall()
    rows = markdown_rows(found["tier-summary"].data)
    shown = {(r["rule set"].split(" ")[0], r["tier"]): (r["customers 客户数"], r["Σ avg daily AUM (CNY) 日均资产合计"])
             for r in rows}
    # Money is shown exactly, to the cent, as text.
    assert shown == {(rs, t): (f"{n:,}", f"{aum:,.2f}") for rs, t, n, aum in summary}
    # One markdown table (a table artifact pages at 10 rows): the active rule set first and marked, then
    # corporate, then the comparison sets.
    labels = list(dict.fromkeys(r["rule set"] for r in rows))
    assert len(rows) > 10 and labels[:2] == [f"{rule_set} (active 生效)", "corporate (published 发布)"]
    assert labels[2:] and all(label.endswith(" (comparison 对比)") for label in labels[2:])
    assert release_id in found["tier-summary"].description
    matrix = {(r["from ↓ / to →"], tier): n for r in table(found["tier-migration"])
              for tier, n in r.items() if tier not in ("rule set", "from ↓ / to →")}
    assert {cell: n for cell, n in matrix.items() if n} == {(f, t): n for f, t, n in migration if n}
    assert {r["rule set"] for r in table(found["tier-migration"])} == {rule_set}
    report_page = warehouse / "reports" / f"{as_of:%Y-%m}" / "index.html"
    assert report_page.is_file() and report_page.as_uri() in found["release-report"].data


def test_run_summary_of_a_published_run_shows_release_gate_tiers_and_report(published_warehouse):
    _, warehouse, as_of = published_warehouse
    run = runs_of("tiering-run", warehouse)[-1]
    summary = artifacts_of(run.id)["run-summary"]
    text = summary.data
    (release, previous), = published(warehouse, "SELECT release_id, lag(release_id) OVER (ORDER BY published_at) "
                                                "FROM release_log ORDER BY published_at DESC LIMIT 1", [])
    assert "published 已发布" in summary.description and "NOT published" not in text
    assert f"2026-03 published 已发布 as release `{release}`, replacing release `{previous}` (release of 2026-02" in text
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        (blocking, warnings), = con.execute(
            "SELECT count(*) FILTER (severity = 'blocking' AND NOT success), count(*) FILTER (severity <> 'blocking' "
            "AND NOT success) FROM gate.result WHERE gate_run_id = (SELECT gate_run_id FROM gate.run "
            "WHERE as_of_month = ? ORDER BY started_at DESC LIMIT 1)", [as_of]).fetchall()
    gate = f"2026-03 passed 通过: {blocking} blocking failure(s), {warnings} warning(s) raised"
    assert gate in text and str(warehouse / "reports" / "2026-03" / "gate.html") in text
    assert str(warehouse / "reports" / "2026-03" / "index.html") in text
    assert "started " in text and text.count("(Asia/Shanghai, UTC+08:00)") >= 3  # run start, end, previous release
    # Customers per published tier (active retail, corporate) and the change vs February, from published.duckdb.
    tiers = published(warehouse, "SELECT t.rule_set, t.tier, t.customers, t.customers - p.customers "
                                 "FROM tier_summary t JOIN tier_summary p USING (rule_set, tier) "
                                 "JOIN (SELECT rule_set FROM release_log ORDER BY published_at DESC LIMIT 1) r "
                                 "ON t.rule_set IN (r.rule_set, 'corporate') "
                                 "WHERE t.as_of_month = ? AND p.as_of_month = ?", [as_of, dt.date(2026, 2, 28)])
    shown = {(r["rule set"].split(" ")[0], r["tier"]): (r["customers 客户数"], r["change 变化"])
             for r in markdown_rows(text)}
    assert shown == {(rs, t): (f"{n:,}", f"{d:+,}" if d else "±0") for rs, t, n, d in tiers}
    assert any(d for *_, d in tiers), "no tier changed: the change column is not tested"
    # The run's log says the same in one INFO line.
    line, = [m for m in run_log(run.id) if m.startswith("run summary: ")]
    assert release in line and previous in line and gate in line
    assert all(f"{t} {n:,} ({f'{d:+,}' if d else '±0'})" in line for _, t, n, d in tiers)


def test_run_summary_of_a_gate_failed_run_names_the_stage_the_reason_and_the_release_in_force(gate_failed_run):
    warehouse, in_force, error = gate_failed_run
    run = runs_of("tiering-run", warehouse)[-1]
    assert run.state.is_failed()
    summary = artifacts_of(run.id)["run-summary"]
    assert "NOT published 未发布" in summary.description
    reason = str(error).splitlines()[0]
    assert "customer_segment.value_tier_not_null" in reason
    assert (f"2026-03 NOT published 未发布 — the gate stage failed: {reason}; release `{in_force}` (release of "
            "2026-03, current since ") in summary.data
    assert "stays in force" in summary.data
    assert "2026-03 FAILED 未通过: " in summary.data and "Customers per tier" not in summary.data
    assert published(warehouse, "SELECT release_id FROM release_log ORDER BY published_at DESC LIMIT 1",
                     []) == [(in_force,)]


def test_batch_headline_counts_what_the_run_did_when_every_batch_was_already_loaded(gate_failed_run):
    warehouse, *_ = gate_failed_run
    artifact = artifacts_of(runs_of("ingest", warehouse)[-1].id)["batch-load-summary"]
    days = (dt.date(2026, 3, 31) - dt.date(2026, 1, 1)).days + 1
    assert artifact.description.endswith(f"{days} batch(es) seen: 0 loaded this run, {days} unchanged "
                                         "(already loaded), 0 failed; no records read this run.")
    rows = table(artifact)
    assert len(rows) == days and {r["outcome"] for r in rows} == {"unchanged"}
    assert {(r["records"], r["loaded"], r["quarantined"]) for r in rows} == {(0, 0, 0)}


def test_batch_headline_counts_loaded_replaced_unchanged_and_failed_batches_of_this_run():
    from flows.reports.artifacts import batch_load_headline, batch_load_rows
    from flows.stages.extracts import BatchResult, IngestReport, TableCounts

    day = dt.date(2026, 3, 1)
    report = IngestReport([
        BatchResult(day, "unchanged", "already loaded with identical content", {"TXN": TableCounts(900, 900, 0)}),
        BatchResult(day + dt.timedelta(1), "loaded", "", {"TXN": TableCounts(10, 9, 1)}),
        BatchResult(day + dt.timedelta(2), "replaced", "", {"TXN": TableCounts(5, 5, 0)}),
        BatchResult(day + dt.timedelta(3), "rejected", "TXN: control totals do not match")])
    assert batch_load_headline(report) == ("4 batch(es) seen: 2 loaded this run (1 replacing an earlier delivery), "
                                           "1 unchanged (already loaded), 1 failed; 15 records read this run: "
                                           "14 loaded, 1 quarantined.")
    # What this run did first (the UI shows 10 rows a page); an unchanged batch counts nothing here.
    assert [(r["outcome"], r["records"]) for r in batch_load_rows(report)] == [
        ("rejected", 0), ("loaded", 10), ("replaced", 5), ("unchanged", 0)]


def test_a_warning_reads_raised_or_not_raised_on_the_gate_page_and_artifact():
    from flows.reports.artifacts import gate_rows
    from flows.reports.gate_report import render_gate_report
    from flows.stages.gate_checks import CheckResult, GateResult

    bound = "at most 20% of customers on watch"
    result = GateResult(
        gate_run_id="run-1", as_of_month=dt.date(2026, 3, 31), started_at=dt.datetime(2026, 4, 1, 6),
        finished_at=dt.datetime(2026, 4, 1, 6, 1), rules_version="v1",
        results=[CheckResult("customer_segment", "on_watch_share", "warning", True, "14 of 297 unexpected", "{}", bound),
                 CheckResult("customer_segment", "downgrade_share", "warning", False, "40 of 297 unexpected", "{}",
                             "at most 10% of customers downgraded this month"),
                 CheckResult("customer_segment", "cust_id_not_null", "blocking", True, "0 of 297 unexpected", "{}",
                             "cust_id is never null")])
    results = {r["expectation"]: r["result"] for r in gate_rows(result)}
    assert results == {"on_watch_share": f"warning not raised — bound: {bound}",
                       "downgrade_share": "warning raised — bound: at most 10% of customers downgraded this month",
                       "cust_id_not_null": "passed"}
    cells = re.findall(r'<td class="status">([^<]*)</td>', render_gate_report(result))
    assert sorted(cells) == ["passed", "warning not raised", "warning raised"]
