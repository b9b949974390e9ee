"""The release report page and the offline dbt docs, on a warehouse built and published by the real flows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import stat
import tempfile
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import plotly.offline
import pytest
from dbt.task.docs import DOCS_INDEX_FILE_PATH

from flows.months import bank_time
from flows.reports.dbt_docs import DBT_DOCS_PAGE, MANIFEST_SLOT
from flows.reports.gate_report import AML_NOTE, render_gate_report, write_gate_report
from flows.reports.release_report import (
    CHARTS,
    GATE_PAGE,
    REPORT_PAGE,
    ReleaseReportError,
    build_figures,
    read_gate_run,
    read_release,
    render_release_report,
    write_release_report,
)
from flows.rules import load_rules
from flows.settings import Settings
from flows.stages.gate_checks import CheckResult, GateResult
from flows.stages.publishing import AML_TABLES, RESTRICTED_DIR_MODE, RESTRICTED_FILE_MODE
from tests.support.isolation import settings_for
from tests.support.system_packages import CHROMIUM, CHROMIUM_ARGS, require

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


class _Tags(HTMLParser):
    """Every tag with its attributes; script and style bodies are text to the parser, never tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def report(published_warehouse, tmp_path_factory):
    """A copy of the published warehouse with the last month's report and dbt docs written into it."""
    _, warehouse, as_of = published_warehouse
    copy = tmp_path_factory.mktemp("release_report") / "warehouse"
    shutil.copytree(warehouse, copy)
    settings = settings_for(warehouse=copy)
    return settings, write_release_report(settings, as_of), as_of


def _page(report) -> str:
    return report[1].path.read_text(encoding="utf-8")


def test_report_is_written_next_to_the_gate_page_and_the_dbt_docs(report):
    settings, written, as_of = report
    month_dir = settings.reports_dir / f"{as_of:%Y-%m}"
    assert written.path == month_dir / REPORT_PAGE and written.path.exists()
    assert written.gate_page == month_dir / GATE_PAGE and written.gate_page.exists()
    assert written.dbt_docs_page == month_dir / DBT_DOCS_PAGE and written.dbt_docs_page.exists()
    assert written.dbt_docs_error is None and written.dbt_docs_seconds > 0
    assert not list(month_dir.glob("*.tmp"))
    with duckdb.connect(str(settings.published_db), read_only=True) as con:
        release_id, gate_run_id, published_at = con.execute(
            "SELECT release_id, gate_run_id, published_at FROM release_log "
            "WHERE as_of_month = ? ORDER BY published_at DESC LIMIT 1", [as_of]).fetchone()
    assert (written.release_id, written.gate_run_id) == (release_id, gate_run_id)
    page = _page(report)
    assert release_id in page and gate_run_id in page and f"{as_of:%Y-%m}" in page
    # Every time on the page is the bank's wall time to the second, with its zone (publication, gate, generated).
    assert f"<td>{bank_time(published_at)}</td>" in page
    text = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    times = re.findall(r"\d\d:\d\d\S*(?: \([^)]*\))?", text)
    assert len(times) >= 4, times
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d \(Asia/Shanghai, UTC\+08:00\)", t) for t in times), times


def test_every_chart_is_drawn_with_plotly_js_inlined_once(report):
    _, written, _ = report
    page = _page(report)
    assert written.charts == tuple(CHARTS)
    for chart_id in CHARTS:
        assert page.count(f'id="{chart_id}"') == 1, chart_id
    banner = plotly.offline.get_plotlyjs()[:200]
    assert page.count(banner) == 1
    # Bilingual labels, and a CJK font stack without any web font.
    assert "客户层级分布 Tier distribution" in page and "Noto Sans CJK SC" in page
    assert "@font-face" not in page and "@import" not in page


def test_page_fetches_nothing(report):
    settings, _, as_of = report
    tags = _tags(_page(report))
    assert not [t for t, a in tags if t == "script" and a.get("src")]
    assert not [t for t, _ in tags if t in ("link", "img", "iframe", "object", "embed", "base")]
    references = [v for _, a in tags for k, v in a.items() if k in ("src", "href") and v]
    assert not [v for v in references if re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", v, re.I)], references
    # The links are relative and land on the files next to the page.
    page_dir = settings.reports_dir / f"{as_of:%Y-%m}"
    assert sorted(references) == sorted([DBT_DOCS_PAGE, GATE_PAGE])
    assert all((page_dir / href).is_file() for href in references)


def test_tables_show_the_exact_decimal_totals(report):
    settings, _, as_of = report
    page = _page(report)
    with duckdb.connect(str(settings.published_db), read_only=True) as con:
        rows = con.execute("SELECT rule_set, tier, customers, total_avg_daily_aum_cny FROM tier_summary "
                           "WHERE as_of_month = ?", [as_of]).fetchall()
    assert rows
    for rule_set, tier, customers, total in rows:
        assert f'<td class="num">{total:,.2f}</td>' in page, (rule_set, tier, total)
        assert f'<td class="num">{customers:,}</td>' in page


def test_gate_table_has_every_general_result_of_the_run(report):
    settings, written, _ = report
    with duckdb.connect(str(settings.working_db), read_only=True) as con:
        results = con.execute("SELECT count(*), count(*) FILTER (WHERE NOT success) FROM gate.result "
                              "WHERE gate_run_id = ? AND table_name NOT IN ?",
                              [written.gate_run_id, list(AML_TABLES)]).fetchone()
    page = _page(report)
    assert results[0] > 0
    assert page.count('<tr class="gate-row ') == results[0]
    assert page.count('<tr class="gate-row gate-failed">') == results[1]
    assert f"<summary>{results[0] - results[1]} passed checks</summary>" in page
    assert AML_NOTE in page  # the one neutral line about AML


def test_gate_table_lists_failures_first_and_folds_the_passed_checks(report):
    settings, written, as_of = report
    gate = read_gate_run(settings.working_db, as_of, written.gate_run_id)
    passed = [r for r in gate.results if r["success"] and r["table_name"] not in AML_TABLES]
    failed = [{**passed[0], "expectation": name, "severity": severity, "success": False}
              for name, severity in (("warning_failed", "warning"), ("blocking_failed", "blocking"))]
    gate = dataclasses.replace(gate, results=[*passed, *failed])
    html = render_release_report(written.data, gate, build_figures(written.data, gate), settings.reports_dir,
                                 None, None)
    section = html[html.index("<h2>质量闸门 Quality gate</h2>"):]
    folded = section.index(f"<details class=\"gate-passed-checks\"><summary>{len(passed)} passed checks</summary>")
    # Blocking failures, then warnings, all above the fold; every pass below it.
    assert section.index("blocking_failed") < section.index("warning_failed") < folded
    assert section.count('<tr class="gate-row gate-passed">') == section[folded:].count(
        '<tr class="gate-row gate-passed">') == len(passed)
    # A warning is raised or not, never "passed" / "failed".
    warning_row = section[section.index("warning_failed"):].split("</tr>")[0]
    assert "已触发 warning raised" in warning_row and "failed" not in warning_row.replace("warning_failed", "")
    warnings_passed = sum(r["severity"] == "warning" for r in passed)
    assert warnings_passed and section[folded:].count("未触发 warning not raised") == warnings_passed


def test_churn_chart_counts_only_customers_who_can_get_a_warning(report):
    settings, written, as_of = report
    rules = load_rules(settings.rules_path)
    ladder = sorted(rules.active.tiers, key=lambda t: t.rank)
    page = _page(report)
    for min_tier in (rules.churn.min_tier, ladder[-1].code):
        eligible_tiers = [t.code for t in ladder if t.rank >= rules.active.tier(min_tier).rank]
        with duckdb.connect(str(settings.published_db), read_only=True) as con:
            eligible, warned, below = con.execute(
                "SELECT count(*) FILTER (WHERE list_contains(?, value_tier)), count(*) FILTER (WHERE churn_warning), "
                "count(*) FILTER (WHERE NOT list_contains(?, value_tier)) FROM customer_segment "
                "WHERE as_of_month = ? AND churn_warning IS NOT NULL",
                [eligible_tiers, eligible_tiers, as_of]).fetchone()
        assert below > 0, "the fixture has retail customers who cannot get a warning"
        data = read_release(settings.published_db, as_of, min_tier)
        assert data.churn_population["eligible"] == eligible and data.churn_population["below"] == below
        figure = build_figures(data, None)["chart-churn"]
        assert sum(figure.data[0].y) == eligible  # the ineligible are not in the "no warning" bar
        title = figure.layout.title.text
        assert f"among {eligible:,} customers eligible" in title and f"{min_tier} and above" in title
        if min_tier == rules.churn.min_tier:  # the page's population: every warning is charted, and it says whose
            assert sum(r["customers"] for r in data.churn if r["churn_reason"]) == warned
            assert f"among {eligible:,} customers eligible" in page and f"the {below:,} below it" in page


def test_data_text_is_escaped(report):
    settings, _, as_of = report
    data = read_release(settings.published_db, as_of, load_rules(settings.rules_path).churn.min_tier)
    hostile = "<img src=x onerror=alert(1)>&"
    rows = [{**r, "tier_name": hostile} for r in data.tier_summary]
    data = dataclasses.replace(data, tier_summary=rows, release={**data.release, "rule_set_version": hostile})
    gate = read_gate_run(settings.working_db, as_of, data.release["gate_run_id"])
    page_dir = settings.reports_dir / f"{as_of:%Y-%m}"
    html = render_release_report(data, gate, build_figures(data, gate), page_dir, None, None)
    assert hostile not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;" in html
    assert not [t for t, _ in _tags(html) if t == "img"]


def test_unknown_gate_run_other_month_and_unpublished_month_are_refused(report):
    settings, _, as_of = report
    with pytest.raises(ReleaseReportError, match="gate run no-such-run not found"):
        write_release_report(settings, as_of, "no-such-run", dbt_docs=False)
    previous_month = as_of.replace(day=1) - dt.timedelta(days=1)
    with duckdb.connect(str(settings.working_db), read_only=True) as con:
        other_run = con.execute("SELECT gate_run_id FROM gate.run WHERE as_of_month = ? LIMIT 1",
                                [previous_month]).fetchone()[0]
    with pytest.raises(ReleaseReportError, match=f"validated {previous_month:%Y-%m}, not {as_of:%Y-%m}"):
        write_release_report(settings, as_of, other_run, dbt_docs=False)
    with pytest.raises(ReleaseReportError, match="no release of 2025-12"):
        write_release_report(settings, dt.date(2025, 12, 31), dbt_docs=False)


def test_failed_dbt_docs_leave_the_report_without_docs(report, tmp_path):
    settings, _, as_of = report
    warehouse = tmp_path / "warehouse"
    shutil.copytree(settings.warehouse, warehouse, ignore=shutil.ignore_patterns(DBT_DOCS_PAGE))
    broken = Settings(warehouse=warehouse, dbt_project_dir=tmp_path / "no_dbt_project")
    written = write_release_report(broken, as_of)
    assert written.path.exists() and written.dbt_docs_page is None
    assert written.dbt_docs_error and "dbt docs" in written.dbt_docs_error
    assert "dbt docs: not generated" in written.path.read_text(encoding="utf-8")


def test_dbt_docs_page_has_its_network_hooks_disabled(report):
    _, written, _ = report
    docs = written.dbt_docs_page.read_text(encoding="utf-8")
    assert "track:!1" in docs
    assert "cloudfront.net" not in docs
    assert "model.tiering.customer_segment" in docs  # the manifest is inlined


# ---------------------------------------------------------------------------------------------- AML


def _aml_results(settings, gate_run_id) -> tuple[list[tuple], list[tuple]]:
    """(general, AML) (table, expectation, observed value) rows of a gate run."""
    with duckdb.connect(str(settings.working_db), read_only=True) as con:
        rows = con.execute("SELECT table_name, expectation, observed_value FROM gate.result "
                           "WHERE gate_run_id = ?", [gate_run_id]).fetchall()
    return [r for r in rows if r[0] not in AML_TABLES], [r for r in rows if r[0] in AML_TABLES]


def _inline_manifest(docs_page) -> dict:
    """The manifest inlined in a dbt docs page: the JSON object where dbt's own page has its slot."""
    template = Path(DOCS_INDEX_FILE_PATH).read_text(encoding="utf-8")
    marker = template[:template.index(MANIFEST_SLOT)][-40:]
    html = docs_page.read_text(encoding="utf-8")
    assert html.count(marker) == 1
    manifest, _ = json.JSONDecoder().raw_decode(html, html.index(marker) + len(marker))
    assert "nodes" in manifest and "child_map" in manifest
    return manifest


def test_general_report_folder_carries_nothing_about_aml(report):
    settings, written, as_of = report
    general, aml = _aml_results(settings, written.gate_run_id)
    assert len(aml) >= 10, "the fixture's gate run validates the AML marts"
    restricted_docs = _inline_manifest(written.restricted_dbt_docs_page)
    aml_models = {n["name"] for n in restricted_docs["nodes"].values()
                  if n["resource_type"] in ("model", "seed") and "aml" in n["name"]}
    assert set(AML_TABLES) | {"int_aml_trigger_transactions", "int_customer_monthly_aml_triggers",
                              "rule_aml_kyc_levels"} <= aml_models
    aml_columns = {c for uid, n in restricted_docs["nodes"].items() if n["name"] in aml_models
                   for c in n["columns"] if c.startswith("aml_")}
    assert {"aml_level", "aml_triggers"} <= aml_columns
    general_names = {name for _, name, _ in general}
    general_observed = {observed for _, _, observed in general}
    forbidden = (set(AML_TABLES) | aml_models | aml_columns
                 | {name for _, name, _ in aml if name not in general_names}
                 # AML counts: every observed value of an AML expectation that no general one shares.
                 | {observed for _, _, observed in aml if observed not in general_observed and
                    re.search(r"\d", observed)})
    month_dir = settings.reports_dir / f"{as_of:%Y-%m}"
    files = sorted(p for p in month_dir.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {REPORT_PAGE, GATE_PAGE, DBT_DOCS_PAGE}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        found = sorted(f for f in forbidden if f in text)
        assert not found, f"{path.name} mentions {found}"
    # The general dbt docs still document the general models, their lineage and tests, as before.
    general_docs = _inline_manifest(written.dbt_docs_page)
    assert "model.tiering.customer_segment" in general_docs["nodes"]
    assert not [uid for uid in (*general_docs["nodes"], *general_docs["unit_tests"], *general_docs["child_map"])
                if "aml" in uid]
    for page in (REPORT_PAGE, GATE_PAGE):
        assert AML_NOTE in (month_dir / page).read_text(encoding="utf-8"), page


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_restricted_report_holds_the_aml_gate_results_and_docs_with_the_aml_database_modes(report):
    settings, written, as_of = report
    restricted = settings.warehouse / "restricted"
    month_dir = restricted / "reports" / f"{as_of:%Y-%m}"
    assert written.restricted_path == month_dir / REPORT_PAGE and written.restricted_path.is_file()
    assert written.restricted_dbt_docs_page == month_dir / DBT_DOCS_PAGE
    _, aml = _aml_results(settings, written.gate_run_id)
    page = written.restricted_path.read_text(encoding="utf-8")
    assert written.gate_run_id in page and written.release_id in page
    assert page.count('<tr class="gate-row ') == len(aml)
    for table, name, observed in aml:
        assert f"<code>{table}</code>" in page and f"<code>{name}</code>" in page
        assert escape(observed or "") in page
    hrefs = [a["href"] for t, a in _tags(page) if t == "a"]
    assert sorted(hrefs) == [DBT_DOCS_PAGE, GATE_PAGE]
    # The gate flow wrote the AML gate page; the report the AML models' docs, with their lineage.
    gate_page = (month_dir / GATE_PAGE).read_text(encoding="utf-8")
    assert all(name in gate_page for _, name, _ in aml)
    docs = _inline_manifest(month_dir / DBT_DOCS_PAGE)
    assert {"model.tiering.aml_customer_risk", "model.tiering.aml_trigger_transactions",
            "model.tiering.int_customer_monthly_aml_triggers", "seed.tiering.rule_aml_kyc_levels",
            "model.tiering.stg_core_banking__txns"} <= set(docs["nodes"])
    assert "model.tiering.customer_segment" not in docs["nodes"]
    assert "track:!1" in (month_dir / DBT_DOCS_PAGE).read_text(encoding="utf-8")
    # Folders 0700 and files 0600, as restricted/aml.duckdb.
    assert _mode(restricted) == RESTRICTED_DIR_MODE
    assert _mode(restricted / "aml.duckdb") == RESTRICTED_FILE_MODE
    tree = [restricted / "reports", *(restricted / "reports").rglob("*")]
    assert {p.name for p in tree} >= {"reports", month_dir.name, REPORT_PAGE, GATE_PAGE, DBT_DOCS_PAGE}
    wrong = [(str(p), oct(_mode(p))) for p in tree
             if _mode(p) != (RESTRICTED_DIR_MODE if p.is_dir() else RESTRICTED_FILE_MODE)]
    assert not wrong
    assert not list(month_dir.glob("*.tmp"))


def _check(table: str, name: str, success: bool, observed: str) -> CheckResult:
    return CheckResult(table, name, "blocking", success, observed, "{}", f"{name} holds")


def test_a_failed_aml_expectation_blocks_the_general_gate_page_without_naming_it(tmp_path):
    result = GateResult(
        gate_run_id="run-1", as_of_month=dt.date(2026, 10, 31), started_at=dt.datetime(2026, 11, 1, 8),
        finished_at=dt.datetime(2026, 11, 1, 8, 1), rules_version="rules/v1",
        results=[_check("customer_segment", "one_row_per_customer_month", True, "0 of 300 unexpected (0%)"),
                 _check("aml_trigger_transactions", "transactions_meet_their_trigger", False,
                        "5642 unexpected row(s): CASH_LARGE T123")],
        reference={"eligible_customers": 300,
                   "candidate_columns": "customer_segment.cust_id,aml_customer_risk.aml_level"})
    general = render_gate_report(result)
    assert "Blocked by restricted AML expectations" in general and AML_NOTE in general
    assert "customer_segment.cust_id" in general and "one_row_per_customer_month" in general
    for secret in ("aml_", "transactions_meet_their_trigger", "5642", "T123"):
        assert secret not in general, secret
    # The one-line failure (CLI, the run's log: everyone sees it) counts the AML failure without naming it.
    message = result.failure_message()
    assert ("1 blocking expectation(s) failed: 1 restricted AML expectation(s) (AML staff: "
            "restricted/reports/2026-10/gate.html)") in message
    for secret in ("transactions_meet_their_trigger", "5642", "T123"):
        assert secret not in message, secret
    restricted = render_gate_report(result, restricted=True)
    assert "transactions_meet_their_trigger" in restricted and "5642 unexpected" in restricted
    assert "one_row_per_customer_month" not in restricted
    # write_gate_report: the general page under reports/, the AML one under restricted/ (0700 / 0600).
    warehouse = tmp_path / "warehouse"
    page = write_gate_report(result, settings_for(warehouse=warehouse))
    assert page == warehouse / "reports" / "2026-10" / GATE_PAGE and "5642" not in page.read_text("utf-8")
    aml_page = warehouse / "restricted" / "reports" / "2026-10" / GATE_PAGE
    assert "5642" in aml_page.read_text(encoding="utf-8")
    assert [oct(_mode(p)) for p in (aml_page.parent.parent.parent, aml_page.parent.parent, aml_page.parent)] \
        == [oct(RESTRICTED_DIR_MODE)] * 3
    assert _mode(aml_page) == RESTRICTED_FILE_MODE
    # Without AML results nothing is written under restricted/.
    other = dataclasses.replace(result, as_of_month=dt.date(2026, 9, 30), results=result.results[:1])
    write_gate_report(other, settings_for(warehouse=warehouse))
    assert not (warehouse / "restricted" / "reports" / "2026-09").exists()


# ---------------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser():
    require(f"{CHROMIUM} not installed", CHROMIUM.exists())
    from playwright.sync_api import sync_playwright

    # A fresh profile: no cache or service worker from an earlier run can stand in for the network.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True,
                                                       args=CHROMIUM_ARGS)
        yield context
        context.close()


def _open(browser, url: str):
    """A page at `url` and the list of every request it makes."""
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    return page, requests


@pytest.mark.browser
def test_report_renders_offline_in_chromium(report, browser):
    _, written, _ = report
    page, requests = _open(browser, written.path.as_uri())
    try:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {len(CHARTS)}",
                               timeout=30_000)
        for chart_id in CHARTS:
            assert page.locator(f"#{chart_id}.js-plotly-plot .main-svg").count() >= 1, chart_id
        assert page.locator("#chart-migration-matrix .hm, #chart-migration-matrix .heatmaplayer").count() >= 1
    finally:
        page.close()
    assert [u for u in requests if not u.startswith(LOCAL_SCHEMES)] == []


@pytest.mark.browser
def test_dbt_docs_render_offline_in_chromium(report, browser):
    _, written, _ = report
    page, requests = _open(browser, written.dbt_docs_page.as_uri() + "#!/model/model.tiering.customer_segment")
    try:
        page.wait_for_function("document.body.innerText.includes('avg_daily_aum_cny')", timeout=30_000)
        text = page.inner_text("body")
        for model in ("customer_segment", "customer_tier", "tier_summary", "tier_migration"):
            assert model in text, model
        assert "Grain: one row per customer per as_of_month" in text
    finally:
        page.close()
    assert [u for u in requests if not u.startswith(LOCAL_SCHEMES)] == []
