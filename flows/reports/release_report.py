"""The release report: `<reports>/<YYYY-MM>/index.html`, one self-contained page per published month.

Charts are plotly figures with plotly.js inlined once, so the page opens from disk with no network, as
in most bank networks. Labels are Chinese and English; money in tables is the exact DECIMAL from
`published.duckdb` (floats only position the bars). The gate page and the offline dbt docs sit next to it.

Nothing about AML is on this page, the gate page or the dbt docs next to it (see flows/reports/gate_report.py
for which expectations are AML, flows/reports/dbt_docs.py for which models): only the neutral line "AML results:
restricted report (AML staff only)", no number. The AML gate results of the release's gate run, the AML
release's row counts and links to the AML gate page and AML dbt docs go to
`<warehouse>/restricted/reports/<YYYY-MM>/index.html` (folders 0700, files 0600, like `restricted/aml.duckdb`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flows.months import SHANGHAI, bank_time, month_end
from flows.reports.dbt_docs import DBT_DOCS_PAGE, DbtDocsError, dbt_docs_path, write_dbt_docs
from flows.reports.gate_report import (
    AML_NOTE,
    GATE_PAGE,
    check_verdict,
    split_aml,
    write_restricted_text,
)
from flows.rules import CORPORATE_RULE_SET, CREDIT_GRADES, QUADRANTS, RFM_CLASSES, load_rules
from flows.settings import Settings

log = logging.getLogger(__name__)

REPORT_PAGE = "index.html"
# CJK-capable system fonts first; no web fonts, the page must not fetch anything.
FONT_STACK = ("Noto Sans CJK SC, Source Han Sans SC, WenQuanYi Micro Hei, Microsoft YaHei, PingFang SC, "
              "system-ui, sans-serif")
CHART_HEIGHT = 420
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

# Chart ids (the div ids on the page) and their titles, in page order.
CHARTS = {
    "chart-tier-distribution": "客户层级分布 Tier distribution",
    "chart-aum-by-tier": "各层级日均AUM Σ avg daily AUM by tier (CNY)",
    "chart-migration-matrix": "层级迁移矩阵 Tier migration matrix",
    "chart-migration-corporate": "对公层级迁移 Corporate tier migration",
    "chart-rfm-classes": "RFM客户分类 RFM classes",
    "chart-quadrant": "价值×活跃度象限 Value × activity quadrant",
    "chart-credit-risk": "信用风险等级 Credit risk grade",
    "chart-churn": "流失预警 Churn warnings",
    "chart-gate-results": "质量闸门结果 Gate results",
}
# Chinese display names of the published contract's codes (docs/ARCHITECTURE.md); the codes stay shown.
QUADRANT_NAMES = dict(zip(QUADRANTS, ("高价值高活跃", "高价值低活跃", "低价值高活跃", "低价值低活跃"), strict=True))
CREDIT_GRADE_NAMES = dict(zip(CREDIT_GRADES, ("无贷款", "低风险", "中风险", "高风险"), strict=True))
CUST_TYPE_NAMES = {"P": "个人 individual", "C": "企业 corporate", "I": "机构 institution",
                   "F": "金融机构 financial institution"}
CHURN_REASON_NAMES = {"AUM_DECLINE": "资产下降 AUM decline", "INACTIVE": "不活跃 inactive"}
NO_CHURN_WARNING = "无预警 no warning"
NEW_CUSTOMER = "新客户 NEW"
SEVERITY_NAMES = {"blocking": "阻断 blocking", "warning": "警告 warning"}
PASSED, FAILED = "通过 passed", "未通过 failed"
# A warning is raised or not; "passed" on it read as if its bound did not matter (gate_report.check_verdict).
VERDICT_NAMES = {"passed": PASSED, "FAILED": FAILED, "warning not raised": "未触发 warning not raised",
                 "warning raised": "已触发 warning raised"}
PASS_COLOUR, FAIL_COLOUR = "#2e7d32", "#c62828"


class ReleaseReportError(RuntimeError):
    """The report cannot be written (no published release of the month, unknown gate run); one line."""


@dataclass(frozen=True)
class ReleaseReport:
    """Where the month's report went and what it links to."""

    path: Path
    as_of_month: date
    release_id: str
    gate_run_id: str | None
    gate_page: Path | None
    dbt_docs_page: Path | None
    charts: tuple[str, ...]
    dbt_docs_seconds: float | None = None
    # Why the dbt docs are missing when generation was asked for and failed.
    dbt_docs_error: str | None = None
    # The figures the page was drawn from (the UI artifacts show the same ones).
    data: ReleaseData | None = field(default=None, repr=False, compare=False)
    # `<warehouse>/restricted/reports/<YYYY-MM>/index.html` (None when the month has no AML results or docs).
    restricted_path: Path | None = None
    restricted_dbt_docs_page: Path | None = None


@dataclass(frozen=True)
class ReleaseData:
    """The month's figures from published.duckdb (rows as dicts, DECIMAL money as Decimal)."""

    release: dict[str, Any]
    tier_summary: list[dict[str, Any]]
    migration: list[dict[str, Any]]
    rfm: list[dict[str, Any]]
    quadrants: list[dict[str, Any]]
    credit: list[dict[str, Any]]
    # Customers per churn reason among those who can get a warning (tier ≥ the rules file's churn.min_tier).
    churn: list[dict[str, Any]]
    # Customers whose published tier is an approved override (特批), and the month's CRM events by type.
    overrides: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Who `churn` counts: min_tier, min_tier_name, eligible (customers charted), below (retail, not charted).
    churn_population: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRun:
    """One gate run and every expectation's result, from the working database's gate schema."""

    gate_run_id: str
    as_of_month: date
    started_at: datetime
    finished_at: datetime
    success: bool
    results: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- reading


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_release(published_db: Path, as_of_month: date, churn_min_tier: str) -> ReleaseData:
    """The latest release of `as_of_month` and its figures, read from `published_db` (read-only);
    `churn_min_tier` is the rules file's `churn.min_tier`, the lowest tier that can get a churn warning."""
    if not Path(published_db).exists():
        raise ReleaseReportError(f"no published database at {published_db}: publish a release first")
    month = [month_end(as_of_month)]
    con = duckdb.connect(str(published_db), read_only=True)
    try:
        releases = _records(con, "SELECT * FROM main.release_log WHERE as_of_month = ? "
                                 "ORDER BY published_at DESC LIMIT 1", month)
        if not releases:
            raise ReleaseReportError(f"no release of {as_of_month:%Y-%m} in {published_db}: publish it first")
        churn, churn_population = _churn_records(con, month, releases[0]["rule_set"], churn_min_tier)
        return ReleaseData(
            release=releases[0],
            tier_summary=_records(con, "SELECT * FROM main.tier_summary WHERE as_of_month = ? "
                                       "ORDER BY rule_set, tier_rank DESC", month),
            migration=_records(con, "SELECT rule_set, from_tier, to_tier, customers FROM main.tier_migration "
                                    "WHERE as_of_month = ?", month),
            rfm=_records(con, "SELECT rfm_class, any_value(rfm_class_name) AS rfm_class_name, count(*) AS customers "
                              "FROM main.customer_segment WHERE as_of_month = ? AND rfm_class IS NOT NULL "
                              "GROUP BY ALL", month),
            quadrants=_records(con, "SELECT value_activity_quadrant AS quadrant, any_value(quadrant_action) AS "
                                    "action, count(*) AS customers FROM main.customer_segment "
                                    "WHERE as_of_month = ? AND value_activity_quadrant IS NOT NULL "
                                    "GROUP BY ALL", month),
            credit=_records(con, "SELECT cust_type, credit_grade, count(*) AS customers FROM main.customer_segment "
                                 "WHERE as_of_month = ? GROUP BY ALL ORDER BY cust_type", month),
            churn=churn,
            churn_population=churn_population,
            **_crm_records(con, month),
        )
    finally:
        con.close()


def _churn_records(con: duckdb.DuckDBPyConnection, month: list[date], rule_set: str,
                   min_tier: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Customers per churn reason among those eligible for a warning, and who that population is.

    A retail customer below `min_tier` gets `churn_warning = false` without ever being checked: counted as
    "no warning" they would dwarf the warnings. Corporate types have NULL (no churn rule) and are left out.
    """
    ladder = {r["tier"]: r for r in _records(con, "SELECT tier, tier_name, tier_rank FROM main.tier_summary "
                                                  "WHERE as_of_month = ? AND rule_set = ?", [*month, rule_set])}
    if min_tier not in ladder:
        raise ReleaseReportError(f"churn.min_tier {min_tier} of the rules file is not a tier of rule set {rule_set}, "
                                 f"which the release was published with: report it with the release's rules file")
    eligible_tiers = [t for t, r in ladder.items() if r["tier_rank"] >= ladder[min_tier]["tier_rank"]]
    rows = _records(con, "SELECT churn_reason, count(*) AS customers FROM main.customer_segment "
                         "WHERE as_of_month = ? AND churn_warning IS NOT NULL AND list_contains(?, value_tier) "
                         "GROUP BY ALL", [*month, eligible_tiers])
    retail = con.execute("SELECT count(*) FROM main.customer_segment WHERE as_of_month = ? "
                         "AND churn_warning IS NOT NULL", month).fetchone()[0]
    eligible = sum(r["customers"] for r in rows)
    return rows, {"min_tier": min_tier, "min_tier_name": ladder[min_tier]["tier_name"], "eligible": eligible,
                  "below": retail - eligible}


def _crm_records(con: duckdb.DuckDBPyConnection, month: list[date]) -> dict[str, list[dict[str, Any]]]:
    """Overrides and events of the month, when the release has them (releases before issue 11 do not)."""
    columns = {r[0] for r in con.execute("SELECT table_name || '.' || column_name FROM information_schema.columns "
                                         "WHERE table_name IN ('customer_segment', 'customer_event')").fetchall()}
    found: dict[str, list[dict[str, Any]]] = {}
    if "customer_segment.override_id" in columns:
        found["overrides"] = _records(
            con, "SELECT value_tier, value_tier_name, override_id, cust_id, cust_name_masked, branch_id, "
                 "implied_tier, override_until, override_tier_reason FROM main.customer_segment "
                 "WHERE as_of_month = ? AND override_id IS NOT NULL ORDER BY value_tier, override_id", month)
    if "customer_event.event_type" in columns:
        found["events"] = _records(con, "SELECT event_type, count(*) AS customers FROM main.customer_event "
                                        "WHERE as_of_month = ? GROUP BY ALL ORDER BY event_type", month)
    return found


def read_gate_run(working_db: Path, as_of_month: date, gate_run_id: str | None) -> GateRun | None:
    """Gate run `gate_run_id` (default: the month's latest) with its results; None when there is none."""
    if not Path(working_db).exists():
        return None
    con = duckdb.connect(str(working_db), read_only=True)
    try:
        has_gate = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'gate' "
                               "AND table_name IN ('run', 'result')").fetchone()[0] == 2
        if not has_gate:
            return None
        if gate_run_id is None:
            runs = _records(con, "SELECT * FROM gate.run WHERE as_of_month = ? ORDER BY started_at DESC LIMIT 1",
                            [month_end(as_of_month)])
        else:
            runs = _records(con, "SELECT * FROM gate.run WHERE gate_run_id = ?", [gate_run_id])
        if not runs:
            return None
        run = runs[0]
        results = _records(con, "SELECT table_name, expectation, severity, success, observed_value "
                                "FROM gate.result WHERE gate_run_id = ? "
                                "ORDER BY success, severity, table_name, expectation", [run["gate_run_id"]])
    finally:
        con.close()
    return GateRun(run["gate_run_id"], run["as_of_month"], run["started_at"], run["finished_at"],
                   bool(run["success"]), results)


def split_gate_run(gate: GateRun) -> tuple[GateRun, GateRun]:
    """(general, AML) parts of one gate run: the same run, its results split by the suite they belong to."""
    general, aml = split_aml(gate.results, table=lambda r: r["table_name"])
    return replace(gate, results=general), replace(gate, results=aml)


def read_aml_release(catalog: Path, as_of_month: date) -> dict[str, Any] | None:
    """The month's latest row of the restricted AML release_log in `catalog` (restricted/aml.duckdb; None
    when there is none or it is unreadable: the restricted report then says so, the general report is not
    held up)."""
    if not catalog.exists():
        return None
    try:
        con = duckdb.connect(str(catalog), read_only=True)
        try:
            rows = _records(con, "SELECT * FROM main.release_log WHERE as_of_month = ? "
                                 "ORDER BY published_at DESC LIMIT 1", [month_end(as_of_month)])
        finally:
            con.close()
    except duckdb.Error as exc:
        log.warning("AML release of %s not read from %s: %s", f"{as_of_month:%Y-%m}", catalog,
                    str(exc).splitlines()[0])
        return None
    return rows[0] if rows else None


# ---------------------------------------------------------------------------------------------- charts


def _plain(text: Any) -> str:
    """Data text for plotly labels: plotly reads its own pseudo-HTML, so data never supplies tags."""
    return escape("" if text is None else str(text), quote=False)


def _tier_label(name: Any, code: Any) -> str:
    return f"{_plain(name)}<br>{_plain(code)}"


def _money(value: Decimal | None) -> str:
    return f"{value or Decimal(0):,.2f}"


def _layout(fig: go.Figure, title: str, **more: Any) -> go.Figure:
    fig.update_layout(title={"text": _plain(title)}, height=CHART_HEIGHT, font={"family": FONT_STACK},
                      margin={"l": 60, "r": 30, "t": 70, "b": 60}, **more)
    return fig


def _published_rule_sets(data: ReleaseData) -> list[tuple[str, str]]:
    """(rule set, heading) of the published tiers: the active retail rule set, then corporate."""
    active = data.release["rule_set"]
    return [(active, f"零售 Retail · {active}"), (CORPORATE_RULE_SET, "对公 Corporate")]


def _ladder(data: ReleaseData, rule_set: str) -> list[dict[str, Any]]:
    """tier_summary rows of one rule set, lowest tier first."""
    return sorted((r for r in data.tier_summary if r["rule_set"] == rule_set), key=lambda r: r["tier_rank"])


def tier_figure(data: ReleaseData, chart_id: str) -> go.Figure:
    """Customers (tier distribution) or Σ avg daily AUM (AUM by tier) per tier of the published rule sets."""
    rule_sets = _published_rule_sets(data)
    fig = make_subplots(rows=1, cols=len(rule_sets), subplot_titles=[_plain(h) for _, h in rule_sets])
    aum = chart_id == "chart-aum-by-tier"
    for col, (rule_set, heading) in enumerate(rule_sets, start=1):
        rows = _ladder(data, rule_set)
        x = [_tier_label(r["tier_name"], r["tier"]) for r in rows]
        if aum:
            # Float only positions the bar; the label is the exact DECIMAL.
            y = [float(r["total_avg_daily_aum_cny"] or 0) for r in rows]
            text = [_money(r["total_avg_daily_aum_cny"]) for r in rows]
        else:
            y = [r["customers"] for r in rows]
            text = [f"{r['customers']:,}" for r in rows]
        fig.add_trace(go.Bar(x=x, y=y, text=text, textposition="outside", cliponaxis=False,
                             name=_plain(heading), hovertemplate="%{x}<br>%{text}<extra></extra>"),
                      row=1, col=col)
    fig.update_yaxes(title_text="CNY" if aum else "客户数 customers", rangemode="tozero")
    return _layout(fig, CHARTS[chart_id], showlegend=False)


def migration_figure(data: ReleaseData, rule_set: str, chart_id: str) -> go.Figure:
    """Previous tier × current tier of `rule_set` as a heat map, counts written in the cells."""
    ladder = _ladder(data, rule_set)
    names = {r["tier"]: _tier_label(r["tier_name"], r["tier"]) for r in ladder}
    order = [r["tier"] for r in ladder]
    rows = [r for r in data.migration if r["rule_set"] == rule_set]
    # Tiers a customer came from that the current ladder lacks (a changed rules file) still get a row.
    extra = sorted({r["from_tier"] for r in rows if r["from_tier"] is not None} - set(order))
    from_tiers = [None, *order, *extra]
    to_tiers = order + sorted({r["to_tier"] for r in rows} - set(order))
    counts = {(r["from_tier"], r["to_tier"]): r["customers"] for r in rows}
    z = [[counts.get((f, t), 0) for t in to_tiers] for f in from_tiers]
    fig = go.Figure(go.Heatmap(
        z=z, x=[names.get(t, _plain(t)) for t in to_tiers],
        y=[NEW_CUSTOMER if f is None else names.get(f, _plain(f)) for f in from_tiers],
        text=[[f"{n:,}" if n else "" for n in row] for row in z], texttemplate="%{text}",
        colorscale="Blues", colorbar={"title": {"text": "客户数<br>customers"}},
        hovertemplate="上月 previous: %{y}<br>本月 current: %{x}<br>%{z:,} 客户 customers<extra></extra>"))
    fig.update_xaxes(title_text="本月层级 current tier", type="category")
    fig.update_yaxes(title_text="上月层级 previous tier", type="category")
    return _layout(fig, f"{CHARTS[chart_id]} · {rule_set}")


def _counts_figure(chart_id: str, labels: list[str], counts: list[int], hover: list[str] | None = None,
                   y_title: str = "客户数 customers", title: str | None = None) -> go.Figure:
    fig = go.Figure(go.Bar(x=labels, y=counts, text=[f"{n:,}" for n in counts], textposition="outside",
                           cliponaxis=False, customdata=hover or [""] * len(labels),
                           hovertemplate="%{x}<br>%{y:,}<br>%{customdata}<extra></extra>"))
    fig.update_yaxes(title_text=y_title, rangemode="tozero")
    return _layout(fig, title or CHARTS[chart_id])


def rfm_figure(data: ReleaseData) -> go.Figure:
    """Customers per RFM class, in the contract's class order."""
    rows = sorted(data.rfm, key=lambda r: RFM_CLASSES.index(r["rfm_class"]) if r["rfm_class"] in RFM_CLASSES
                  else len(RFM_CLASSES))
    return _counts_figure("chart-rfm-classes", [_tier_label(r["rfm_class_name"], r["rfm_class"]) for r in rows],
                          [r["customers"] for r in rows])


def quadrant_figure(data: ReleaseData) -> go.Figure:
    """Customers per value × activity quadrant; the hover shows the quadrant's action from the rules."""
    rows = sorted(data.quadrants, key=lambda r: QUADRANTS.index(r["quadrant"]) if r["quadrant"] in QUADRANTS
                  else len(QUADRANTS))
    return _counts_figure("chart-quadrant",
                          [_tier_label(QUADRANT_NAMES.get(r["quadrant"], ""), r["quadrant"]) for r in rows],
                          [r["customers"] for r in rows], [_plain(r["action"]) for r in rows])


def credit_figure(data: ReleaseData) -> go.Figure:
    """Customers per credit grade, stacked by customer type."""
    grades = list(CREDIT_GRADES) + sorted({r["credit_grade"] for r in data.credit} - set(CREDIT_GRADES),
                                          key=str)
    x = [_tier_label(CREDIT_GRADE_NAMES.get(g, ""), g) for g in grades]
    fig = go.Figure()
    for cust_type in sorted({r["cust_type"] for r in data.credit}, key=str):
        counts = {r["credit_grade"]: r["customers"] for r in data.credit if r["cust_type"] == cust_type}
        fig.add_trace(go.Bar(x=x, y=[counts.get(g, 0) for g in grades],
                             name=_plain(CUST_TYPE_NAMES.get(cust_type, cust_type)),
                             hovertemplate="%{x}<br>%{y:,}<extra>%{fullData.name}</extra>"))
    # Small segments vanish in a stack: each bar's total is written above it.
    for label, grade in zip(x, grades, strict=True):
        total = sum(r["customers"] for r in data.credit if r["credit_grade"] == grade)
        fig.add_annotation(x=label, y=total, text=f"{total:,}", showarrow=False, yanchor="bottom")
    fig.update_yaxes(title_text="客户数 customers", rangemode="tozero")
    return _layout(fig, CHARTS["chart-credit-risk"], barmode="stack")


def _churn_label(reason: str | None) -> str:
    if reason is None:
        return NO_CHURN_WARNING
    return " + ".join(_plain(CHURN_REASON_NAMES.get(r, r)) for r in reason.split(","))


def _churn_eligible(data: ReleaseData) -> str:
    population = data.churn_population
    return (f"among {population['eligible']:,} customers eligible "
            f"({population['min_tier_name']} {population['min_tier']} and above)")


def churn_figure(data: ReleaseData) -> go.Figure:
    """Customers per churn-warning reason combination, and without a warning, among those eligible for one."""
    rows = sorted(data.churn, key=lambda r: (r["churn_reason"] is not None, r["churn_reason"] or ""))
    return _counts_figure("chart-churn", [_churn_label(r["churn_reason"]) for r in rows],
                          [r["customers"] for r in rows],
                          title=f"{CHARTS['chart-churn']} · {_churn_eligible(data)}")


def _churn_note(data: ReleaseData) -> str:
    population = data.churn_population
    return (f'<p class="note churn-note">Churn warnings {escape(_churn_eligible(data))}: only retail customers at '
            f'{escape(str(population["min_tier_name"]))} {escape(population["min_tier"])} or above can get one '
            f'(rules file <code>churn.min_tier</code>); the {population["below"]:,} below it and corporate '
            "customers are not charted.</p>")


def gate_figure(gate: GateRun) -> go.Figure:
    """Expectations passed and failed, per severity (the general ones: AML results are not counted)."""
    gate = split_gate_run(gate)[0]
    severities = sorted({r["severity"] for r in gate.results}, key=lambda s: (s != "blocking", s))
    x = [_plain(SEVERITY_NAMES.get(s, s)) for s in severities]
    fig = go.Figure()
    for label, passed, colour in ((PASSED, True, PASS_COLOUR), (FAILED, False, FAIL_COLOUR)):
        y = [sum(1 for r in gate.results if r["severity"] == s and bool(r["success"]) == passed)
             for s in severities]
        fig.add_trace(go.Bar(x=x, y=y, name=label, marker_color=colour, text=y, textposition="inside",
                             hovertemplate="%{x}<br>%{y}<extra>%{fullData.name}</extra>"))
    fig.update_yaxes(title_text="期望数 expectations", rangemode="tozero")
    return _layout(fig, CHARTS["chart-gate-results"], barmode="stack")


def build_figures(data: ReleaseData, gate: GateRun | None) -> dict[str, go.Figure]:
    """Every chart of the page by div id, in page order (no gate chart without a gate run)."""
    figures = {
        "chart-tier-distribution": tier_figure(data, "chart-tier-distribution"),
        "chart-aum-by-tier": tier_figure(data, "chart-aum-by-tier"),
        "chart-migration-matrix": migration_figure(data, data.release["rule_set"], "chart-migration-matrix"),
        "chart-migration-corporate": migration_figure(data, CORPORATE_RULE_SET, "chart-migration-corporate"),
        "chart-rfm-classes": rfm_figure(data),
        "chart-quadrant": quadrant_figure(data),
        "chart-credit-risk": credit_figure(data),
        "chart-churn": churn_figure(data),
    }
    if gate is not None:
        figures["chart-gate-results"] = gate_figure(gate)
    return figures


# ---------------------------------------------------------------------------------------------- page

CSS = f"""
body {{ font: 14px/1.45 {FONT_STACK}; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #1d2733; }}
h1 {{ font-size: 22px; margin: 0 0 6px; }}
h2 {{ font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #e3e7ec; padding-bottom: 4px; }}
.meta td, .meta th {{ border: none; padding: 2px 12px 2px 0; }}
nav a {{ margin-right: 18px; }}
table {{ border-collapse: collapse; width: 100%; margin: 8px 0 18px; }}
th, td {{ text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e7ec; vertical-align: top; }}
th {{ background: #f4f6f8; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
tr.comparison td {{ color: #6b7785; }}
tr.gate-failed td.status {{ color: {FAIL_COLOUR}; font-weight: 600; }}
tr.gate-passed td.status {{ color: {PASS_COLOUR}; }}
.note {{ color: #6b7785; }}
.chart {{ margin-bottom: 12px; }}
details summary {{ cursor: pointer; color: {PASS_COLOUR}; margin: 4px 0 8px; }}
"""


def _link(path: Path | None, page_dir: Path, label: str, missing: str) -> str:
    if path is None:
        return f'<span class="note">{escape(label)}: {escape(missing)}</span>'
    return f'<a href="{escape(os.path.relpath(path, page_dir).replace(os.sep, "/"))}">{escape(label)}</a>'


def _tier_table(data: ReleaseData) -> str:
    published = {rule_set for rule_set, _ in _published_rule_sets(data)}
    # The published rule sets first (active retail, corporate), then the comparison sets; top tier first.
    rows = sorted(data.tier_summary, key=lambda r: (r["rule_set"] not in published,
                                                    r["rule_set"] != data.release["rule_set"],
                                                    r["rule_set"], -r["tier_rank"]))
    body = []
    for r in rows:
        shown = r["rule_set"] in published
        share = r["share_of_customers"]
        body.append(
            f'<tr class="{"published" if shown else "comparison"}"><td>{escape(r["rule_set"])}'
            f'{"" if shown else " (对比 comparison)"}</td><td>{escape(r["tier"])}</td>'
            f'<td>{escape(str(r["tier_name"]))}</td><td class="num">{r["customers"]:,}</td>'
            f'<td class="num">{r["on_watch_customers"]:,}</td>'
            f'<td class="num">{"" if share is None else f"{share * 100:.2f}%"}</td>'
            f'<td class="num">{_money(r["total_avg_daily_aum_cny"])}</td></tr>')
    return ("<table><thead><tr><th>规则集 rule set</th><th>层级 tier</th><th>名称 name</th>"
            "<th>客户数 customers</th><th>观察期 on watch</th><th>占比 share</th>"
            "<th>Σ 日均AUM avg daily AUM (CNY)</th></tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def _override_section(data: ReleaseData) -> str:
    """Overrides by tier, then those whose last month this is (the computed tier returns next month)."""
    if not data.overrides:
        return '<p class="note">本月没有特批 no tier overrides apply this month.</p>'
    by_tier: dict[tuple[str, str], int] = {}
    for r in data.overrides:
        key = (r["value_tier"], r["value_tier_name"])
        by_tier[key] = by_tier.get(key, 0) + 1
    rows = "".join(f'<tr><td>{escape(code)}</td><td>{escape(str(name))}</td><td class="num">{n:,}</td></tr>'
                   for (code, name), n in sorted(by_tier.items()))
    html = ("<table class=\"overrides-by-tier\"><thead><tr><th>层级 tier</th><th>名称 name</th>"
            "<th>特批客户 overridden customers</th></tr></thead><tbody>" + rows + "</tbody></table>")
    month = data.release["as_of_month"]
    ending = [r for r in data.overrides if r["override_until"] == month]
    if ending:
        items = "".join(
            f'<tr><td><code>{escape(r["override_id"])}</code></td><td>{escape(r["cust_id"])}</td>'
            f'<td>{escape(str(r["cust_name_masked"]))}</td><td>{escape(str(r["branch_id"]))}</td>'
            f'<td>{escape(r["value_tier"])}</td><td>{escape(str(r["implied_tier"]))}</td>'
            f'<td>{escape(str(r["override_tier_reason"]))}</td></tr>' for r in ending)
        html += ("<h3>下月结束 Ending next month</h3><table class=\"overrides-ending\"><thead><tr><th>override</th>"
                 "<th>客户 customer</th><th>姓名 name</th><th>网点 branch</th><th>特批层级 override tier</th>"
                 "<th>测算层级 implied tier</th><th>原因 reason</th></tr></thead><tbody>" + items + "</tbody></table>")
    else:
        html += '<p class="note">没有下月结束的特批 no override ends after this month.</p>'
    return html


def _event_table(data: ReleaseData) -> str:
    if not data.events:
        return '<p class="note">没有客户事件 no change feed in this release.</p>'
    rows = "".join(f'<tr><td><code>{escape(r["event_type"])}</code></td><td class="num">{r["customers"]:,}</td></tr>'
                   for r in data.events)
    return ("<table class=\"events\"><thead><tr><th>事件 event</th><th>客户数 customers</th></tr></thead><tbody>"
            + rows + "</tbody></table><p class=\"note\">The feed: <code>exports/customer_event/</code> (Parquet) "
            f"and <code>exports/crm/{data.release['as_of_month']:%Y-%m}/customer_event.csv</code> (UTF-8 with BOM); "
            "<code>tiering events --as-of</code> prints it.</p>")


def _gate_table(gate: GateRun) -> str:
    """Failed expectations first, blocking before warning; the passed ones folded under "N passed checks"."""
    failed = sorted((r for r in gate.results if not r["success"]),
                    key=lambda r: (r["severity"] != "blocking", str(r["table_name"]), str(r["expectation"])))
    passed = [r for r in gate.results if r["success"]]
    html = (_gate_rows_table(failed) if failed
            else '<p class="note gate-all-passed">没有未通过的期望 no expectation failed.</p>')
    if passed:
        html += (f'<details class="gate-passed-checks"><summary>{len(passed)} passed checks</summary>'
                 f"{_gate_rows_table(passed)}</details>")
    return html


def _gate_rows_table(results: list[dict[str, Any]]) -> str:
    body = []
    for r in results:
        passed = bool(r["success"])
        body.append(
            f'<tr class="gate-row gate-{"passed" if passed else "failed"}">'
            f'<td><code>{escape(str(r["table_name"]))}</code></td><td><code>{escape(str(r["expectation"]))}</code></td>'
            f'<td>{escape(SEVERITY_NAMES.get(r["severity"], str(r["severity"])))}</td>'
            f'<td class="status">{escape(VERDICT_NAMES[check_verdict(r["severity"], passed)])}</td>'
            f'<td>{escape(str(r["observed_value"] or ""))}</td></tr>')
    return ("<table><thead><tr><th>表 table</th><th>期望 expectation</th><th>级别 severity</th>"
            "<th>结果 result</th><th>观测值 observed value</th></tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def _gate_times(gate: GateRun) -> str:
    return f"{escape(bank_time(gate.started_at))} → {escape(bank_time(gate.finished_at))}"


def _chart_html(fig: go.Figure, chart_id: str, first: bool) -> str:
    # plotly.js goes inline with the first chart only; later charts use the same global Plotly.
    return '<div class="chart">' + fig.to_html(full_html=False, include_plotlyjs=first, div_id=chart_id,
                                                 config=PLOTLY_CONFIG, default_height=f"{CHART_HEIGHT}px") + "</div>"


def render_release_report(data: ReleaseData, gate: GateRun | None, figures: dict[str, go.Figure],
                          page_dir: Path, gate_page: Path | None, dbt_docs_page: Path | None,
                          dbt_docs_note: str = "") -> str:
    """The report page's HTML: header and links, every chart, the tier table and the gate table.

    The gate figures are those of the general expectations: AML results get one neutral line, no number.
    """
    release = data.release
    month = f"{release['as_of_month']:%Y-%m}"
    charts = {chart_id: _chart_html(fig, chart_id, i == 0) for i, (chart_id, fig) in enumerate(figures.items())}
    if gate is None:
        gate_section = '<p class="note">没有闸门结果 no gate results found in the working database.</p>'
        gate_meta = "—"
    else:
        gate, aml = split_gate_run(gate)
        failed = sum(1 for r in gate.results if not r["success"])
        verdict = "通过 passed" if gate.success else "阻断 blocked"
        gate_meta = (f"<code>{escape(gate.gate_run_id)}</code> · {verdict} · {len(gate.results)} expectations, "
                     f"{failed} failed · {_gate_times(gate)}")
        gate_section = charts["chart-gate-results"] + _gate_table(gate)
        if aml.results:
            gate_section += f'<p class="note aml-note">{escape(AML_NOTE)}</p>'
    docs_note = f' <span class="note">({escape(dbt_docs_note)})</span>' if dbt_docs_note else ""
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>客户分层发布报告 Release report {escape(month)}</title>
<style>{CSS}</style></head>
<body>
<h1>客户分层发布报告 Release report — {escape(month)}</h1>
<table class="meta">
<tr><th>发布 release</th><td><code>{escape(str(release["release_id"]))}</code></td></tr>
<tr><th>发布时间 published at</th><td>{escape(bank_time(release["published_at"]))}</td></tr>
<tr><th>规则版本 rules version</th><td>{escape(str(release["rules_version"]))} · 规则集 rule set
{escape(str(release["rule_set"]))} ({escape(str(release["rule_set_version"]))})</td></tr>
<tr><th>质量闸门 gate run</th><td>{gate_meta}</td></tr>
</table>
<nav>{_link(gate_page, page_dir, "质量闸门页面 Gate results page", "not found")}
{_link(dbt_docs_page, page_dir, "dbt 文档 dbt docs", "not generated")}{docs_note}</nav>

<h2>客户层级 Tiers</h2>
{charts["chart-tier-distribution"]}
{charts["chart-aum-by-tier"]}
{_tier_table(data)}

<h2>层级迁移 Tier migration</h2>
{charts["chart-migration-matrix"]}
{charts["chart-migration-corporate"]}

<h2>特批 Tier overrides</h2>
{_override_section(data)}

<h2>客户事件 Changes for the CRM</h2>
{_event_table(data)}

<h2>客户分类 Classifications</h2>
{charts["chart-rfm-classes"]}
{charts["chart-quadrant"]}
{charts["chart-credit-risk"]}
{charts["chart-churn"]}
{_churn_note(data)}

<h2>质量闸门 Quality gate</h2>
{gate_section}
<p class="note">Generated {escape(bank_time(datetime.now(SHANGHAI)))} from published.duckdb;
charts by plotly, inline (no network needed).</p>
</body></html>
"""


def render_restricted_report(data: ReleaseData, gate: GateRun | None, aml_release: dict[str, Any] | None,
                             page_dir: Path, gate_page: Path | None, dbt_docs_page: Path | None) -> str:
    """The restricted report's HTML: the release, the AML release's row counts, links to the AML gate page
    and the AML dbt docs, and the AML results of the release's gate run."""
    release = data.release
    month = f"{release['as_of_month']:%Y-%m}"
    if gate is None:
        gate_meta = "—"
        gate_section = '<p class="note">没有闸门结果 no gate results found in the working database.</p>'
    else:
        aml = split_gate_run(gate)[1]
        failed = sum(1 for r in aml.results if not r["success"])
        gate_meta = (f"<code>{escape(gate.gate_run_id)}</code> · {len(aml.results)} AML expectations, "
                     f"{failed} failed · {_gate_times(gate)}")
        gate_section = (_gate_table(aml) if aml.results else
                        '<p class="note">这次闸门没有AML期望 no AML expectations in this gate run.</p>')
    if aml_release is None:
        counts = '<tr><th>AML 发布 AML release</th><td>not found in restricted/aml.duckdb</td></tr>'
    else:
        counts = (f'<tr><th>AML 发布 AML release</th><td><code>{escape(str(aml_release["release_id"]))}</code>'
                  f' · {escape(bank_time(aml_release["published_at"]))}</td></tr>'
                  + "".join(f'<tr><th>{escape(k.removesuffix("_rows"))} rows</th>'
                            f'<td class="num">{v:,}</td></tr>'
                            for k, v in aml_release.items() if k.endswith("_rows") and v is not None))
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AML 受限报告 Restricted AML report {escape(month)}</title>
<style>{CSS}</style></head>
<body>
<h1>AML 受限报告 Restricted AML report — {escape(month)}</h1>
<p class="note">仅限AML人员 AML staff only: confidential, kept out of the general release report.</p>
<table class="meta">
<tr><th>发布 release</th><td><code>{escape(str(release["release_id"]))}</code></td></tr>
{counts}
<tr><th>质量闸门 gate run</th><td>{gate_meta}</td></tr>
</table>
<nav>{_link(gate_page, page_dir, "AML 闸门页面 AML gate results page", "not found")}
{_link(dbt_docs_page, page_dir, "AML dbt 文档 AML dbt docs", "not generated")}</nav>

<h2>AML 质量闸门 AML quality gate</h2>
{gate_section}
<p class="note">Generated {escape(bank_time(datetime.now(SHANGHAI)))} from the working database's
gate results and restricted/aml.duckdb.</p>
</body></html>
"""


def write_restricted_report(settings: Settings, data: ReleaseData, gate: GateRun | None,
                            dbt_docs_page: Path | None) -> Path | None:
    """Write `<warehouse>/restricted/reports/<YYYY-MM>/index.html` (0700 folders, 0600 file); None, writing
    nothing, when the month has no AML gate result, AML gate page or AML dbt docs."""
    month = f"{data.release['as_of_month']:%Y-%m}"
    page_dir = settings.restricted_reports_dir / month
    gate_page = page_dir / GATE_PAGE
    gate_page = gate_page if gate_page.exists() else None
    has_aml = gate is not None and bool(split_gate_run(gate)[1].results)
    if not has_aml and gate_page is None and dbt_docs_page is None:
        return None
    html = render_restricted_report(data, gate, read_aml_release(settings.restricted_db, data.release["as_of_month"]),
                                    page_dir, gate_page, dbt_docs_page)
    path = write_restricted_text(settings, page_dir / REPORT_PAGE, html)
    log.info("restricted AML report for %s: %s", month, path)
    return path


def write_release_report(settings: Settings, as_of_month: date, gate_run_id: str | None = None,
                         dbt_docs: bool = True) -> ReleaseReport:
    """Write `<reports>/<YYYY-MM>/index.html` for the month's latest release, with dbt docs next to it, and
    the month's restricted AML report (`write_restricted_report`).

    The gate results are those of `gate_run_id`, by default the release's own gate run. dbt docs are
    generated against the working database (so nothing else may hold it); a dbt failure leaves the
    page without its docs link and is reported in `dbt_docs_error`, it never fails the report.
    """
    month = month_end(as_of_month)
    data = read_release(settings.published_db, month, load_rules(settings.rules_path).churn.min_tier)
    wanted = gate_run_id or data.release.get("gate_run_id")
    gate = read_gate_run(settings.working_db, month, wanted)
    if gate is None and gate_run_id is not None:
        raise ReleaseReportError(f"gate run {gate_run_id} not found in {settings.working_db}: "
                                 "pass the gate run of the release")
    if gate is not None and gate.as_of_month != month:
        raise ReleaseReportError(f"gate run {gate.gate_run_id} validated {gate.as_of_month:%Y-%m}, "
                                 f"not {month:%Y-%m}")
    docs_page, docs_seconds, docs_error, restricted_docs = None, None, None, None
    if dbt_docs:
        try:
            docs = write_dbt_docs(settings, month)
            docs_page, docs_seconds, restricted_docs = docs.path, docs.seconds, docs.restricted_path
        except DbtDocsError as exc:
            docs_error = str(exc)
            log.warning("%s", docs_error)
    existing = dbt_docs_path(settings.reports_dir, month)
    if docs_page is None and docs_error is None and existing.exists():
        docs_page = existing  # not regenerated this time: link the month's earlier docs
    existing = settings.restricted_reports_dir / f"{month:%Y-%m}" / DBT_DOCS_PAGE
    if restricted_docs is None and docs_error is None and existing.exists():
        restricted_docs = existing
    page_dir = settings.reports_dir / f"{month:%Y-%m}"
    page_dir.mkdir(parents=True, exist_ok=True)
    gate_page = page_dir / GATE_PAGE
    gate_page = gate_page if gate_page.exists() else None
    figures = build_figures(data, gate)
    html = render_release_report(data, gate, figures, page_dir, gate_page, docs_page,
                                 "generation failed, see the pipeline log" if docs_error else "")
    target = page_dir / REPORT_PAGE
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    log.info("release report for %s: %s", f"{month:%Y-%m}", target)
    restricted = write_restricted_report(settings, data, gate, restricted_docs)
    return ReleaseReport(path=target, as_of_month=month, release_id=str(data.release["release_id"]),
                         gate_run_id=gate.gate_run_id if gate else None, gate_page=gate_page,
                         dbt_docs_page=docs_page, charts=tuple(figures), dbt_docs_seconds=docs_seconds,
                         dbt_docs_error=docs_error, data=data, restricted_path=restricted,
                         restricted_dbt_docs_page=restricted_docs)
