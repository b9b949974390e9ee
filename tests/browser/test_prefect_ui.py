"""Browser check: the monthly flow run against a real Prefect server, then the UI and the release report
in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright without its browser download).

Everything lands in build/browser-check/ (or $TIERING_BROWSER_CHECK_DIR), rebuilt on every run: the sample
landing folder, the warehouse, the server's PREFECT_HOME and, for people to look at, the screenshots in
warehouse/reports/screenshots/. A screenshot is taken whether its assertions pass or fail.

Prefect 3.8 serves two UIs: the React one under /v2 (the default: `/` redirects there) and the older Vue
one at `/`, which is where the "View at …/runs/flow-run/<id>" link in the run log opens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from flows.commands.generate import generate
from tests.support.prefect_server import PrefectServer, prefect_server
from tests.support.system_packages import CHROMIUM, CHROMIUM_ARGS, require

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
MARKER = ".tiering-browser-check"  # only a folder holding this is wiped

AS_OF, MONTH = dt.date(2026, 2, 28), "2026-02"
STAGES = ("ingest", "build", "gate", "publish", "report")
# The stage whose run creates each artifact (flows/reports/artifacts.py), so it shows on that run's Artifacts tab.
ARTIFACT_OWNERS = {
    "batch-load-summary": "ingest",
    "dbt-node-results": "build",
    "gate-report": "gate",
    "gate-results-page": "gate",
    "tier-summary": "report",
    "tier-migration": "report",
    "release-report": "report",
    "run-summary": "tiering-run",  # the parent run's own
}


@pytest.fixture(scope="module")
def chromium() -> Path:
    require(f"{CHROMIUM} not found (Debian package chromium)", CHROMIUM.is_file())
    return CHROMIUM


def test_a_chinese_font_is_installed_for_the_screenshots():
    """Tier names are Chinese; without a CJK font Chromium draws them as empty boxes in every screenshot."""
    families = ""
    if shutil.which("fc-list"):
        families = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    require("no Chinese font for Chromium (Debian package fonts-wqy-microhei)", bool(families.strip()))


@dataclass(frozen=True)
class MonthlyRun:
    """`tiering run` of 2026-02 against a live server, and what the server recorded about it."""

    server: PrefectServer
    warehouse: Path
    screenshots: Path
    returncode: int
    log: str  # the CLI's stdout and stderr
    flow_run: dict  # the `tiering-run` flow run, as the REST API returns it
    stages: dict[str, dict]  # stage (subflow name) → its flow run
    artifacts: dict[str, dict]  # artifact key → its latest artifact

    def stage(self, name: str) -> dict:
        assert name in self.stages, f"no {name!r} subflow run under tiering-run; found {sorted(self.stages)}"
        return self.stages[name]

    def artifact(self, key: str) -> dict:
        assert key in self.artifacts, f"no {key!r} artifact on the server; found {sorted(self.artifacts)}"
        return self.artifacts[key]

    def ui(self, path: str) -> str:
        return f"{self.server.ui_url}{path}"


def _check_dir() -> Path:
    """build/browser-check (or $TIERING_BROWSER_CHECK_DIR), emptied; refuses a folder it did not make."""
    path = Path(os.environ.get("TIERING_BROWSER_CHECK_DIR") or REPO / "build" / "browser-check").resolve()
    if path.exists() and any(path.iterdir()) and not (path / MARKER).exists():
        pytest.fail(f"{path} is not empty and has no {MARKER}: not wiping it; choose another "
                    "TIERING_BROWSER_CHECK_DIR")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by tests/browser; wiped at the start of every browser check\n")
    return path


def _tiering() -> list[str]:
    """The `tiering` console script of this environment (or the module behind it)."""
    script = Path(sys.executable).with_name("tiering")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]


def _api(server: PrefectServer, path: str, body: dict):
    request = urllib.request.Request(f"{server.api_url}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def monthly_run(chromium) -> Iterator[MonthlyRun]:
    root = _check_dir()
    landing, warehouse = root / "landing", root / "warehouse"
    generate(landing, 200, dt.date(2026, 1, 1), AS_OF, seed=7)
    # The server's database stays in build/browser-check/prefect-home for a look afterwards.
    with prefect_server(home=root / "prefect-home") as server:
        # As a person would: the CLI with PREFECT_API_URL set. One run of February loads January too,
        # so the migration matrix has a previous month.
        cli = subprocess.run(
            [*_tiering(), "run", "--landing", str(landing), "--as-of", AS_OF.isoformat(),
             "--warehouse", str(warehouse)],
            env=server.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=900)
        (root / "tiering-run.log").write_text(cli.stdout)
        runs = _api(server, "flow_runs/filter", {"flows": {"name": {"any_": ["tiering-run"]}}})
        assert len(runs) == 1, f"expected 1 tiering-run on the server, got {len(runs)}:\n{cli.stdout[-3000:]}"
        children = _api(server, "flow_runs/filter",
                        {"flow_runs": {"parent_flow_run_id": {"any_": [runs[0]["id"]]}}})
        flows = _api(server, "flows/filter", {"flows": {"id": {"any_": [c["flow_id"] for c in children]}}})
        flow_names = {f["id"]: f["name"] for f in flows}
        artifacts: dict[str, dict] = {}
        latest_first = {"artifacts": {"key": {"any_": list(ARTIFACT_OWNERS)}}, "sort": "CREATED_DESC"}
        for artifact in _api(server, "artifacts/filter", latest_first):
            artifacts.setdefault(artifact["key"], artifact)
        screenshots = warehouse / "reports" / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)
        yield MonthlyRun(server=server, warehouse=warehouse, screenshots=screenshots,
                         returncode=cli.returncode, log=cli.stdout, flow_run=runs[0],
                         stages={flow_names[c["flow_id"]]: c for c in children}, artifacts=artifacts)


@pytest.fixture(scope="module")
def browser(chromium) -> Iterator[Browser]:
    expect.set_options(timeout=30_000)  # a loaded 2-core CI machine renders slowly
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class UIPage:
    page: Page
    outside: list[str]  # "METHOD url" of every request that would have left the machine (all blocked)


@pytest.fixture(scope="module")
def ui(browser: Browser, monthly_run: MonthlyRun) -> Iterator[UIPage]:
    """One browser profile and tab for the UI tests (its HTTP cache spares reloading the UI's scripts);
    every request that is not for the server is recorded and blocked."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    outside: list[str] = []
    local = monthly_run.server.ui_url + "/"

    def route(route):
        if route.request.url.startswith(local):
            route.continue_()
        else:
            outside.append(f"{route.request.method} {route.request.url}")
            route.abort()

    context.route("**/*", route)
    yield UIPage(context.new_page(), outside)
    context.close()


@contextlib.contextmanager
def screenshot(page: Page, run: MonthlyRun, name: str) -> Iterator[None]:
    """Save a full-page screenshot after the block, passed or failed (a failure is what people look at)."""
    try:
        yield
    finally:
        # Let the run graph and lists finish loading; a page that never settles is shot as it is.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_load_state("networkidle", timeout=5_000)
        page.screenshot(path=str(run.screenshots / name), full_page=True)


def _table_rows(page: Page) -> list[list[str]]:
    """The cells of the artifact table's current page (Prefect shows 10 rows a page)."""
    expect(page.locator("table tbody tr").first).to_be_visible()
    return page.locator("table tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def _published(run: MonthlyRun, sql: str) -> list[tuple]:
    with duckdb.connect(str(run.warehouse / "published.duckdb"), read_only=True) as con:
        return con.execute(sql, [AS_OF]).fetchall()


def test_monthly_run_completes_against_the_server(monthly_run: MonthlyRun):
    assert monthly_run.returncode == 0, (f"tiering run exited with {monthly_run.returncode}:\n"
                                         f"{monthly_run.log[-4000:]}")
    assert monthly_run.flow_run["state_type"] == "COMPLETED"
    states = {name: run["state_type"] for name, run in monthly_run.stages.items()}
    assert states == dict.fromkeys(STAGES, "COMPLETED")


def test_build_shows_a_task_run_per_month_and_every_node_in_its_artifact(ui: UIPage, monthly_run: MonthlyRun):
    """One task run per month built (not per node: DECISIONLOG O7); the month's dbt-node-results artifact
    lists every node dbt ran, and the UI shows it."""
    months = re.findall(r"dbt build for (\S+): (\d+) nodes succeeded", monthly_run.log)
    assert [m for m, _ in months] == ["2026-01", "2026-02"], "February's run builds January first"
    build = {"flow_runs": {"id": {"any_": [monthly_run.stage("build")["id"]]}}}
    completed = {"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
    counts = (_api(monthly_run.server, "task_runs/count", build),
              _api(monthly_run.server, "task_runs/count", build | completed))
    assert counts == (1 + len(months), 1 + len(months))  # prepare-seeds + one dbt build per month
    artifact = monthly_run.artifact("dbt-node-results")  # the latest: February's
    rows = artifact["data"] if isinstance(artifact["data"], list) else json.loads(artifact["data"])
    assert len(rows) == int(months[-1][1])
    assert {r["status"] for r in rows} == {"success", "pass"}  # models and seeds, data tests
    page = ui.page
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{artifact['id']}"))
    with screenshot(page, monthly_run, "artifact-dbt-node-results.png"):
        expect(page.get_by_role("main")).to_contain_text("dbt build 2026-02")
        expect(page.get_by_role("main")).to_contain_text(f"{months[-1][1]} nodes in")


def test_the_link_in_the_run_log_opens_the_run(ui: UIPage, monthly_run: MonthlyRun):
    run = monthly_run.flow_run
    link = monthly_run.ui(f"/runs/flow-run/{run['id']}")
    assert f"View at {link}" in monthly_run.log
    page = ui.page
    page.goto(link)
    with screenshot(page, monthly_run, "flow-run-logged-link.png"):
        header = page.locator("header").filter(has_text=run["name"])  # the Vue UI's run header
        expect(header).to_contain_text("tiering-run")
        expect(header).to_contain_text("Completed")


def test_flow_run_page_shows_the_completed_run_and_its_stages(ui: UIPage, monthly_run: MonthlyRun):
    run, page = monthly_run.flow_run, ui.page
    page.goto(monthly_run.ui(f"/v2/runs/flow-run/{run['id']}?tab=SubflowRuns"))
    with screenshot(page, monthly_run, "flow-run.png"):
        # The header is the block around the breadcrumb that ends in the run's name (a plain span there;
        # the subflow cards' breadcrumbs are links).
        header = page.locator("main div:has(> nav [data-slot='breadcrumb-page'])")
        expect(header.locator("[data-slot='breadcrumb-page']")).to_have_text(run["name"])
        expect(header.locator("[data-slot='badge']")).to_have_text("Completed")
        expect(header).to_contain_text("tiering-run")
        expect(page.get_by_role("tab", name="Subflow Runs")).to_have_attribute("aria-selected", "true")
        panel = page.get_by_role("tabpanel")
        for stage in STAGES:
            sub = monthly_run.stage(stage)
            card = panel.locator("li").filter(has=page.locator(f"a[href$='/runs/flow-run/{sub['id']}']"))
            expect(card.get_by_role("link", name=stage, exact=True)).to_be_visible()  # "<flow> / <run>"
            expect(card.locator("[data-slot='badge']")).to_have_text("Completed")


def test_the_ui_sends_no_usage_events(ui: UIPage, monthly_run: MonthlyRun):
    """PREFECT_SERVER_ANALYTICS_ENABLED=false reaches the UI: the browser uploads nothing.

    Prefect 3.8's React UI always fetches Amplitude's remote configuration (a GET, blocked here); its
    events are POSTs to api2.amplitude.com, sent only when /api/admin/settings reports analytics enabled.
    """
    with urllib.request.urlopen(f"{monthly_run.server.api_url}/admin/settings", timeout=30) as response:
        assert json.load(response)["server"]["analytics_enabled"] is False
    page = ui.page
    page.goto(monthly_run.ui("/"))  # redirects to /v2, which reports "Web App Loaded" if analytics are on
    expect(page.get_by_role("link", name="Runs").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(3000)  # the analytics client sends in batches, about a second apart
    assert [r for r in ui.outside if not r.startswith("GET ")] == []


@pytest.mark.parametrize("stage", sorted(set(ARTIFACT_OWNERS.values()) - {"tiering-run"}))
def test_each_stage_run_shows_its_artifacts(ui: UIPage, monthly_run: MonthlyRun, stage: str):
    page, sub = ui.page, monthly_run.stage(stage)
    page.goto(monthly_run.ui(f"/v2/runs/flow-run/{sub['id']}?tab=Artifacts"))
    with screenshot(page, monthly_run, f"{stage}-run-artifacts.png"):
        panel = page.get_by_role("tabpanel")
        for key in (k for k, owner in ARTIFACT_OWNERS.items() if owner == stage):
            # one per month the stage ran (the build of February's run builds January too)
            expect(panel.get_by_text(key, exact=True).first).to_be_visible()


def test_artifacts_page_lists_every_artifact(ui: UIPage, monthly_run: MonthlyRun):
    page = ui.page
    page.goto(monthly_run.ui("/v2/artifacts"))
    with screenshot(page, monthly_run, "artifacts.png"):
        main = page.get_by_role("main")
        for key in ARTIFACT_OWNERS:
            expect(main.get_by_text(key, exact=True)).to_be_visible()


def test_batch_load_summary_artifact_shows_the_loaded_batches(ui: UIPage, monthly_run: MonthlyRun):
    page = ui.page
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{monthly_run.artifact('batch-load-summary')['id']}"))
    with screenshot(page, monthly_run, "artifact-batch-load-summary.png"):
        expect(page.get_by_role("main")).to_contain_text("59 batch(es)")  # 2026-01-01 … 2026-02-28
        rows = _table_rows(page)  # one row per batch and data file
        assert len(rows) == 10, rows
        for row in rows:
            assert "loaded" in row and any(re.fullmatch(r"2026-0[12]-\d\d", cell) for cell in row), row


def test_gate_report_artifact_shows_a_passed_gate(ui: UIPage, monthly_run: MonthlyRun):
    page = ui.page
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{monthly_run.artifact('gate-report')['id']}"))
    with screenshot(page, monthly_run, "artifact-gate-report.png"):
        expect(page.get_by_role("main")).to_contain_text(f"{MONTH}: passed")
        rows = _table_rows(page)
        # Failures would be listed first; a warning is never "passed", only raised or not.
        assert rows and all(any(cell == "passed" or cell.startswith("warning not raised — bound: ") for cell in row)
                            for row in rows), rows


def test_tier_summary_artifact_shows_the_published_tiers(ui: UIPage, monthly_run: MonthlyRun):
    page = ui.page
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{monthly_run.artifact('tier-summary')['id']}"))
    with screenshot(page, monthly_run, "artifact-tier-summary.png"):
        expect(page.get_by_role("main")).to_contain_text(f"客户分层汇总 {MONTH}")
        published = _published(monthly_run, "SELECT rule_set, tier, tier_name, customers FROM tier_summary "
                                             "WHERE as_of_month = ?")
        (active,), = _published(monthly_run, "SELECT rule_set FROM release_log WHERE as_of_month = ?")
        rows = _table_rows(page)
        assert len(rows) == len(published) > 10  # every row on one page (a markdown table does not page)
        assert rows[0][0] == f"{active} (active 生效)"
        for row in rows:  # each row shown is a published row: rule set (with its role), tier, name, customers
            assert any(row[0].startswith(f"{rule_set} (") and {tier, name, f"{customers:,}"} <= set(row)
                       for rule_set, tier, name, customers in published), row


def test_parent_run_page_shows_the_run_summary(ui: UIPage, monthly_run: MonthlyRun):
    """The `tiering-run` page's Artifacts tab has the run summary: published, the gate, customers per tier."""
    run, page = monthly_run.flow_run, ui.page
    (release_id,), = _published(monthly_run, "SELECT release_id FROM release_log WHERE as_of_month = ?")
    page.goto(monthly_run.ui(f"/v2/runs/flow-run/{run['id']}?tab=Artifacts"))
    with screenshot(page, monthly_run, "tiering-run-artifacts.png"):
        card = page.get_by_role("tabpanel").locator("a[href$='/artifacts/key/run-summary']")
        expect(card).to_contain_text(f"{MONTH}: published 已发布 — release {release_id}")
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{monthly_run.artifact('run-summary')['id']}"))
    with screenshot(page, monthly_run, "artifact-run-summary.png"):
        main = page.get_by_role("main")
        expect(main).to_contain_text(f"{MONTH} published 已发布 as release {release_id}")
        expect(main).to_contain_text(f"{MONTH} passed 通过: 0 blocking failure(s)")
        expect(main).to_contain_text(str(monthly_run.warehouse / "reports" / MONTH / "index.html"))
        rows = _table_rows(page)
        published = _published(monthly_run, "SELECT t.rule_set, t.tier, t.customers FROM tier_summary t "
                                             "JOIN release_log r USING (as_of_month) WHERE as_of_month = ? "
                                             "AND t.rule_set IN (r.rule_set, 'corporate')")
        assert {(row[0].split(" ")[0], row[1], row[3]) for row in rows} == {
            (rule_set, tier, f"{customers:,}") for rule_set, tier, customers in published}


def test_tier_migration_artifact_shows_moves_from_the_previous_month(ui: UIPage, monthly_run: MonthlyRun):
    page = ui.page
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{monthly_run.artifact('tier-migration')['id']}"))
    with screenshot(page, monthly_run, "artifact-tier-migration.png"):
        expect(page.get_by_role("main")).to_contain_text(f"层级迁移矩阵 {MONTH}")
        published: dict[tuple[str, str | None], int] = {}
        sql = "SELECT rule_set, from_tier, customers FROM tier_migration WHERE as_of_month = ?"
        for rule_set, from_tier, customers in _published(monthly_run, sql):
            published[rule_set, from_tier] = published.get((rule_set, from_tier), 0) + customers
        from_tiers = {from_tier for _, from_tier in published if from_tier}
        assert from_tiers, "the matrix has no previous month: every customer counts as new"
        rows = _table_rows(page)
        shown_rule_sets = {row[0] for row in rows}  # the release's rule set, or all of them
        assert len(rows) == min(10, sum(rule_set in shown_rule_sets for rule_set, _ in published)), rows
        seen_from_tiers = set()
        for row in rows:  # a row: rule set, previous tier, then one count per tier of this month
            labels = [cell for cell in row if not re.fullmatch(r"[\d,]+", cell)]
            counts = [int(cell.replace(",", "")) for cell in row if re.fullmatch(r"[\d,]+", cell)]
            rule_set, from_label = labels[0], labels[1]
            from_tier = from_label if from_label in from_tiers else None
            assert sum(counts) == published[rule_set, from_tier], row
            seen_from_tiers.add(from_tier)
        assert seen_from_tiers - {None}, "no row of a customer moving from a previous month's tier"


@pytest.mark.parametrize(("key", "target"), [("release-report", f"{MONTH}/index.html"),
                                             ("gate-results-page", f"{MONTH}/gate.html")])
def test_link_artifacts_show_the_page_path(ui: UIPage, monthly_run: MonthlyRun, key: str, target: str):
    """The React UI drops file:// hrefs, so the link text carries the path for people to open."""
    page = ui.page
    page.goto(monthly_run.ui(f"/v2/artifacts/artifact/{monthly_run.artifact(key)['id']}"))
    with screenshot(page, monthly_run, f"artifact-{key}.png"):
        expect(page.get_by_role("main")).to_contain_text(str(monthly_run.warehouse / "reports" / target))


def test_release_report_renders_its_charts_offline(browser: Browser, monthly_run: MonthlyRun):
    report = monthly_run.warehouse / "reports" / MONTH / "index.html"
    assert report.is_file(), f"no release report at {report}"
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route(re.compile(r"^(https?|wss?|ftp)://"), lambda route: route.abort())  # nothing leaves
    page = context.new_page()
    try:
        page.goto(report.as_uri())
        with screenshot(page, monthly_run, "release-report.png"):
            charts = page.locator("[id^='chart-']")
            expect(charts.first).to_be_attached()
            for index in range(charts.count()):
                expect(charts.nth(index).locator("svg.main-svg").first).to_be_visible()
            assert page.locator(".js-plotly-plot .main-svg").count() >= 5
        page.screenshot(path=str(monthly_run.screenshots / "release-report-top.png"))  # the first screen
        # One self-contained file: plotly.js inline, no CDN, no fonts or tiles from the network.
        assert [url for url in requests if not url.startswith(("file:", "data:", "blob:"))] == []
    finally:
        context.close()
