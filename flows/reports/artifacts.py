"""Prefect artifacts: what each stage shows in the UI next to its run.

Each artifact is created by the flow that owns the data, so it sits on that flow run's Artifacts tab;
the keys make the latest of each findable under Artifacts in the UI:

- `batch-load-summary` (ingest): what this run did (batches loaded, unchanged, failed; the records it read),
  then records, loaded and quarantined per batch and table;
- `dbt-node-results` (build, one per month built): every dbt model, seed and test with status and seconds;
- `gate-report` (gate): every general expectation, its verdict (a blocking check passed or FAILED, a warning
  raised or not, with its bound), observed value, with a link to the gate page
  (AML expectations only in the restricted report: the Prefect UI is not AML staff only);
  `gate-results-page` is that page as a link artifact;
- `tier-summary` (markdown: the UI pages a table at 10 rows), `tier-migration` (report): the published month;
  `release-report` links to `reports/<YYYY-MM>/index.html`.

The parent run's `run-summary` is flows.reports.run_summary's.

An artifact is a view of work already done: failing to create one logs a warning and never fails the
run (a published release must not turn into a failed run because the UI was briefly unreachable).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext, TaskRunContext

if TYPE_CHECKING:  # the report module loads plotly: ingest and gate runs need not
    from flows.reports.release_report import ReleaseData, ReleaseReport

log = logging.getLogger(__name__)

BATCH_LOAD_SUMMARY = "batch-load-summary"
DBT_NODE_RESULTS = "dbt-node-results"
GATE_REPORT = "gate-report"
GATE_RESULTS_PAGE = "gate-results-page"
TIER_SUMMARY = "tier-summary"
TIER_MIGRATION = "tier-migration"
RELEASE_REPORT = "release-report"


def create_artifact(what: str, make: Callable[[], Any]) -> None:
    """Run `make` (which creates the artifact `what`) inside a flow or task run; a failure only logs a warning."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return  # outside a run (a flow's .fn called directly) there is no run to attach it to
    try:
        make()
    except Exception as exc:  # noqa: BLE001 - the artifact is a view; the run's outcome stands
        log.warning("could not create the %s artifact: %s", what, exc)


# Batch outcomes (flows.stages.extracts) that read and loaded files in this run; `unchanged` ones were loaded before.
LOADED_OUTCOMES = ("loaded", "replaced")
UNCHANGED = "unchanged"


def _batch_order(batch: Any) -> tuple[int, Any]:
    # What this run did comes first (the UI pages a table at 10 rows): failed, then loaded, then unchanged.
    rank = 0 if batch.failed else 1 if batch.outcome in LOADED_OUTCOMES else 2
    return rank, batch.batch_date


def batch_load_rows(report: Any) -> list[dict[str, Any]]:
    """One row per batch and data file this run read (`records = loaded + quarantined`), one per batch it did
    not read (failed, or unchanged: loaded by an earlier run, counted there); what this run did first."""
    rows = []
    for batch in sorted(report.batches, key=_batch_order):
        if not batch.tables or batch.outcome == UNCHANGED:
            rows.append({"batch": batch.batch_date.isoformat(), "outcome": batch.outcome, "table": "",
                         "records": 0, "loaded": 0, "quarantined": 0, "message": batch.message})
            continue
        for table, counts in sorted(batch.tables.items()):
            rows.append({"batch": batch.batch_date.isoformat(), "outcome": batch.outcome, "table": table,
                         "records": counts.records, "loaded": counts.loaded,
                         "quarantined": counts.quarantined, "message": batch.message})
    return rows


def batch_load_headline(report: Any) -> str:
    """What this ingest run did, in one line: batches seen, loaded this run, unchanged, failed; the records it
    read. Unchanged batches were loaded (and counted) by an earlier run."""
    loaded = [b for b in report.batches if b.outcome in LOADED_OUTCOMES]
    replaced = sum(b.outcome == "replaced" for b in loaded)
    unchanged = sum(b.outcome == UNCHANGED for b in report.batches)
    done = f"{len(loaded)} loaded this run" + (f" ({replaced} replacing an earlier delivery)" if replaced else "")
    if unchanged:
        done += f", {unchanged} unchanged (already loaded)"
    records = (f"{sum(b.records for b in loaded):,} records read this run: {sum(b.loaded for b in loaded):,} "
               f"loaded, {sum(b.quarantined for b in loaded):,} quarantined" if loaded
               else "no records read this run")
    return f"{len(report.batches)} batch(es) seen: {done}, {len(report.failed)} failed; {records}."


def publish_batch_load_summary(report: Any) -> None:
    """The `batch-load-summary` table of one ingest run (nothing when there was no batch)."""
    if not report.batches:
        return
    description = f"**Batch load summary 批次加载汇总** — {batch_load_headline(report)}"
    create_artifact(BATCH_LOAD_SUMMARY, lambda: create_table_artifact(
        table=batch_load_rows(report), key=BATCH_LOAD_SUMMARY, description=description))


def dbt_node_rows(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per dbt node in finishing order: layer, node, status and seconds."""
    rows = []
    for node in nodes:
        unique_id = str(node["node"])
        parts = unique_id.split(".")
        seconds = ""
        if node.get("started") and node.get("finished"):
            try:
                seconds = f"{(_timestamp(node['finished']) - _timestamp(node['started'])):.2f}"
            except ValueError:
                seconds = ""
        rows.append({"type": node.get("type", parts[0]), "node": parts[-1], "status": node.get("status", ""),
                     "seconds": seconds, "unique id": unique_id})
    return rows


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(text)).timestamp()


def publish_dbt_node_results(month: Any, nodes: list[dict[str, Any]], result: Any, seconds: float) -> None:
    """The `dbt-node-results` table of one month's dbt build: each node's status and time."""
    counts: dict[str, int] = {}
    for node in nodes:
        counts[str(node.get("type"))] = counts.get(str(node.get("type")), 0) + 1
    failed = [f.unique_id for f in getattr(result, "failures", [])]
    verdict = "succeeded 成功" if result.success else f"FAILED 失败 at {', '.join(failed[:3])}"
    description = (f"**dbt build {month:%Y-%m}: {verdict}** — {len(nodes)} nodes in {seconds:.1f} s ("
                   + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) + ").")
    create_artifact(DBT_NODE_RESULTS, lambda: create_table_artifact(
        table=dbt_node_rows(nodes), key=DBT_NODE_RESULTS, description=description))


def gate_rows(result: Any) -> list[dict[str, Any]]:
    """One row per general expectation, failures first (AML ones are for AML staff: restricted report only).
    A warning reads raised or not raised, with the bound (from the rules file) it was measured against."""
    from flows.reports.gate_report import check_verdict, split_aml

    general, _ = split_aml(result.results)
    ordered = sorted(general, key=lambda r: (r.success, r.severity != "blocking", r.full_name))
    return [{"table": r.table, "expectation": r.name, "severity": r.severity,
             "result": check_verdict(r.severity, r.success) + ("" if r.severity == "blocking" else f" — bound: {r.description}"),
             "observed": r.observed_value, "what failed": r.summary} for r in ordered]


def publish_gate_report(result: Any) -> None:
    """The `gate-report` table and the `gate-results-page` link of one gate run."""
    from flows.reports.gate_report import split_aml

    page = Path(result.report_path).resolve() if result.report_path else None
    verdict = "passed 通过" if result.success else "FAILED 未通过"
    link = f" Full results: [{page.name}]({page.as_uri()})" if page else ""
    general, aml = split_aml(result.results)
    blocking = [r for r in general if not r.success and r.severity == "blocking"]
    warnings = [r for r in general if not r.success and r.severity != "blocking"]
    aml_note = (" AML results: restricted report (AML staff only)"
                + ("; blocked by restricted AML expectations." if any(
                    not r.success and r.severity == "blocking" for r in aml) else ".")) if aml else ""
    description = (f"**Gate 发布闸门 {result.as_of_month:%Y-%m}: {verdict}** — run `{result.gate_run_id}`, "
                   f"{len(general)} expectations, {len(blocking)} blocking failures, "
                   f"{len(warnings)} warnings raised.{aml_note}{link}")
    create_artifact(GATE_REPORT, lambda: create_table_artifact(
        table=gate_rows(result), key=GATE_REPORT, description=description))
    if page:
        create_artifact(GATE_RESULTS_PAGE, lambda: create_link_artifact(
            link=page.as_uri(), link_text=f"gate results {result.as_of_month:%Y-%m} ({page})",
            key=GATE_RESULTS_PAGE, description="Every expectation with its details (open from this machine)."))


# The roles of a release's rule sets, in the order people read them (tier-summary, run-summary).
RULE_SET_ROLES = ("active 生效", "published 发布", "comparison 对比")


def _rule_set_role(rule_set: str, active: str) -> int:
    """The active retail set, corporate (published beside it), or a comparison set: an index of RULE_SET_ROLES."""
    from flows.rules import CORPORATE_RULE_SET

    return 0 if rule_set == active else 1 if rule_set == CORPORATE_RULE_SET else 2


def rule_set_rank(rule_set: str, active: str) -> tuple[int, str]:
    """Sort key of rule sets as people read them: the active retail set, corporate, then the comparison sets."""
    return _rule_set_role(rule_set, active), rule_set


def rule_set_label(rule_set: str, active: str) -> str:
    """A rule set named with its role in the release: `cib_monthly (active 生效)`."""
    return f"{rule_set} ({RULE_SET_ROLES[_rule_set_role(rule_set, active)]})"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """`rows` (same keys) as a GitHub-flavoured markdown table; numbers right-aligned."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    numeric = [all(re.fullmatch(r"[-+±]?[\d,]*(\.\d+)?", cell(r[c])) for r in rows) for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def tier_summary_rows(data: ReleaseData) -> list[dict[str, Any]]:
    """The published tier summary of the month, the active rule set first and marked, then corporate, then the
    comparison sets (top tier first); money as exact text (the UI must not round it)."""
    active = data.release["rule_set"]
    ordered = sorted(data.tier_summary, key=lambda r: (rule_set_rank(r["rule_set"], active), -r["tier_rank"]))
    return [{"rule set": rule_set_label(r["rule_set"], active), "tier": r["tier"], "name 名称": r["tier_name"],
             "customers 客户数": r["customers"], "on watch 观察期": r["on_watch_customers"],
             "Σ avg daily AUM (CNY) 日均资产合计": f"{r['total_avg_daily_aum_cny']:,.2f}"}
            for r in ordered]


def tier_migration_rows(data: ReleaseData) -> list[dict[str, Any]]:
    """The month's migration matrix of the release's rule set: one row per previous tier, one column per tier
    (highest first), new customers last."""
    from flows.reports.release_report import NEW_CUSTOMER  # the report's label for "no tier last month"

    rule_set = data.release["rule_set"]
    tiers = [r["tier"] for r in data.tier_summary if r["rule_set"] == rule_set]  # highest tier first
    matrix: dict[str, dict[str, int]] = {}
    for cell in data.migration:
        if cell["rule_set"] == rule_set:
            matrix.setdefault(cell["from_tier"] or NEW_CUSTOMER, {})[cell["to_tier"]] = cell["customers"]
    return [{"rule set": rule_set, "from ↓ / to →": row_tier, **{t: matrix[row_tier].get(t, 0) for t in tiers}}
            for row_tier in [*tiers, NEW_CUSTOMER] if row_tier in matrix]


def publish_release_artifacts(report: ReleaseReport) -> None:
    """`tier-summary`, `tier-migration` and the `release-report` link of one publication, from the figures
    the report was drawn from."""
    month, release_id, page = f"{report.as_of_month:%Y-%m}", report.release_id, report.path.resolve()
    # Markdown, not a table artifact: the newer UI pages a table at 10 rows, and the ladders have more.
    create_artifact(TIER_SUMMARY, lambda: create_markdown_artifact(
        markdown=f"### Tier summary 客户分层汇总 {month}\n\nRelease `{release_id}`; the active rule set is the "
                 "published value tier, the comparison sets are computed alongside.\n\n"
                 + markdown_table(tier_summary_rows(report.data)),
        key=TIER_SUMMARY, description=f"**Tier summary 客户分层汇总 {month}** — release `{release_id}`."))
    create_artifact(TIER_MIGRATION, lambda: create_table_artifact(
        table=tier_migration_rows(report.data), key=TIER_MIGRATION,
        description=f"**Tier migration 层级迁移矩阵 {month}** — customers by previous tier (rows) and "
                    f"this month's tier (columns); release `{release_id}`."))
    create_artifact(RELEASE_REPORT, lambda: create_link_artifact(
        link=page.as_uri(), link_text=f"release report 发布报告 {month} ({page})", key=RELEASE_REPORT,
        description=f"Charts of release `{release_id}`: tiers, AUM, migration, RFM, quadrant, risk, "
                    "churn and the gate (self-contained page; open it from this machine)."))
