"""The release report page and the offline dbt docs, on a warehouse built and published by the real flows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
import tempfile
from html.parser import HTMLParser

import duckdb
import plotly.offline
import pytest

from flows.lib.dbt_docs import DBT_DOCS_PAGE
from flows.lib.release_report import (
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
from flows.settings import Settings
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
    settings = Settings(warehouse=copy)
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
        release_id, gate_run_id = con.execute("SELECT release_id, gate_run_id FROM release_log "
                                              "WHERE as_of_month = ? ORDER BY published_at DESC LIMIT 1",
                                              [as_of]).fetchone()
    assert (written.release_id, written.gate_run_id) == (release_id, gate_run_id)
    page = _page(report)
    assert release_id in page and gate_run_id in page and f"{as_of:%Y-%m}" in page


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


def test_gate_table_has_every_result_of_the_run(report):
    settings, written, _ = report
    with duckdb.connect(str(settings.working_db), read_only=True) as con:
        results = con.execute("SELECT count(*), count(*) FILTER (WHERE NOT success) FROM gate.result "
                              "WHERE gate_run_id = ?", [written.gate_run_id]).fetchone()
    page = _page(report)
    assert results[0] > 0
    assert page.count('<tr class="gate-row ') == results[0]
    assert page.count('<tr class="gate-row gate-failed">') == results[1]


def test_data_text_is_escaped(report):
    settings, _, as_of = report
    data = read_release(settings.published_db, as_of)
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
