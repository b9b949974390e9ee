"""What the parent run's page says: published or not and why, the gate, customers per tier, where the report is.

`tiering-run` records its way through the stages in a `RunSummary` (flows.pipeline marks each stage); when the
run ends, completed or failed, the same facts go out twice: the `run-summary` markdown artifact on the parent
run's Artifacts tab, and one INFO line of its log. Figures come from where the stages left them: the gate
runs from the working database's `gate.run` / `gate.result`, customers per tier from `published.duckdb`
(only when this run published), the release in force from its `release_log`. Every time is bank time,
zone labelled (flows.months.bank_time): the Prefect UI shows its own times in the browser's zone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flows.months import SHANGHAI, bank_time
from flows.reports.artifacts import create_artifact, markdown_table, rule_set_label, rule_set_rank
from flows.reports.gate_report import GATE_PAGE
from flows.rules import CORPORATE_RULE_SET
from flows.settings import Settings

log = logging.getLogger(__name__)

RUN_SUMMARY = "run-summary"
# What people call each step of the run when it fails (the keys are what flows.pipeline marks).
STAGE_NAMES = {"lock": "warehouse lock", "ingest": "ingest", "plan": "month plan", "build": "build",
               "gate": "gate", "publish": "publish", "report": "report"}


@dataclass(frozen=True)
class GateOutcome:
    """One gate run of this run: month, verdict, counts (AML included, counted not named), its page."""

    as_of_month: date
    gate_run_id: str
    success: bool
    blocking_failures: int
    warnings_raised: int
    page: Path | None

    def describe(self) -> str:
        verdict = "passed 通过" if self.success else "FAILED 未通过"
        return (f"{self.as_of_month:%Y-%m} {verdict}: {self.blocking_failures} blocking failure(s), "
                f"{self.warnings_raised} warning(s) raised")


@dataclass
class RunSummary:
    """The facts of one monthly run, filled in as it goes."""

    settings: Settings
    as_of: date
    started_at: datetime
    # The release in force when the run started (release_log's latest row), None before the first one.
    release_in_force: dict[str, Any] | None
    stage: str = "lock"
    release_id: str | None = None
    report_page: Path | None = None
    failed_stage: str | None = None
    reason: str | None = None
    finished_at: datetime | None = None
    gates: list[GateOutcome] = field(default_factory=list)
    # Per published tier: rule set, tier, name, customers this month and last month (None: not published).
    tiers: list[dict[str, Any]] = field(default_factory=list)
    active_rule_set: str | None = None

    def at(self, stage: str) -> None:
        """The run enters `stage` (a key of STAGE_NAMES): a failure from here on is this stage's."""
        self.stage = stage

    @property
    def published(self) -> bool:
        return self.release_id is not None

    @property
    def previous_month(self) -> date:
        return self.as_of.replace(day=1) - timedelta(days=1)

    # ------------------------------------------------------------------------------------------ text

    def _in_force(self) -> str:
        release = self.release_in_force
        if release is None:
            return "no release has been published yet"
        return (f"release `{release['release_id']}` (release of {release['as_of_month']:%Y-%m}, current since "
                f"{bank_time(release['published_at'])})")

    def outcome(self) -> str:
        """Published or not, and why, in one sentence."""
        month = f"{self.as_of:%Y-%m}"
        failure = (f"the {STAGE_NAMES.get(self.failed_stage or '', self.failed_stage)} stage failed: {self.reason}"
                   if self.failed_stage else "")
        if not self.published:
            return f"{month} NOT published 未发布 — {failure or 'the run stopped'}; {self._in_force()} stays in force"
        replacing = f"replacing {self._in_force()}" if self.release_in_force else "the first release"
        after = f"; then {failure} (the release stays published)" if failure else ""
        return f"{month} published 已发布 as release `{self.release_id}`, {replacing}{after}"

    def headline(self) -> str:
        """The outcome in a few words, for the artifact's card in the UI."""
        month = f"{self.as_of:%Y-%m}"
        if self.published:
            gate = next((g for g in self.gates if g.as_of_month == self.as_of), None)
            checked = (f"; gate passed 通过 with {gate.warnings_raised} warning(s) raised" if gate else "")
            stage = f"; then the {STAGE_NAMES[self.failed_stage]} stage failed" if self.failed_stage else ""
            return f"{month}: published 已发布 — release `{self.release_id}`{checked}{stage}"
        stage = STAGE_NAMES.get(self.failed_stage or "", self.failed_stage or "run")
        kept = f"release `{self.release_in_force['release_id']}`" if self.release_in_force else "no release"
        return f"{month}: NOT published 未发布 — the {stage} stage failed; {kept} stays in force"

    def gate_text(self) -> str:
        if not self.gates:
            return "not run"
        pages = [str(g.page) for g in self.gates if g.page]
        return "; ".join(g.describe() for g in self.gates) + (f" — gate page {', '.join(pages)}" if pages else "")

    def tier_rows(self) -> list[dict[str, Any]]:
        return [{"rule set": rule_set_label(r["rule_set"], self.active_rule_set or ""), "tier": r["tier"],
                 "name 名称": r["tier_name"], "customers 客户数": r["customers"],
                 f"{self.previous_month:%Y-%m}": "" if r["last_month"] is None else r["last_month"],
                 "change 变化": _change(r)} for r in self.tiers]

    def log_line(self) -> str:
        """The summary as one log line: the same facts as the artifact."""
        by_rule_set: dict[str, list[str]] = {}
        for r in self.tiers:
            by_rule_set.setdefault(r["rule_set"], []).append(f"{r['tier']} {r['customers']:,} ({_change(r)})")
        parts = [f"run summary: {self.outcome()}", f"gate: {self.gate_text()}"]
        if by_rule_set:
            parts.append(f"customers per tier (change vs {self.previous_month:%Y-%m}): "
                         + "; ".join(f"{rule_set} {', '.join(tiers)}" for rule_set, tiers in by_rule_set.items()))
        if self.report_page:
            parts.append(f"release report {self.report_page}")
        return "; ".join(parts).replace("`", "")  # the artifact's code marks, not the log's

    def markdown(self) -> str:
        """The `run-summary` artifact: outcome, times, gate, release report, customers per tier."""
        report = _path_link(self.report_page) if self.report_page else "not written"
        finished = bank_time(self.finished_at or self.started_at)
        text = [f"### Monthly run 月度运行 {self.headline()}", "",
                f"- **outcome 结果**: {self.outcome()}",
                f"- **gate 发布闸门**: {self.gate_text()}",
                f"- **release report 发布报告**: {report}",
                f"- **run 运行**: started {bank_time(self.started_at)}, finished {finished}"]
        if self.tiers:
            text += ["", f"#### Customers per tier 各层级客户数 (change vs {self.previous_month:%Y-%m})", "",
                     markdown_table(self.tier_rows())]
        return "\n".join(text) + "\n"


def _change(tier: dict[str, Any]) -> str:
    """Customers this month minus last month, signed (`+3`, `-2`, `±0`); `new` when last month is unpublished."""
    if tier["last_month"] is None:
        return "new"
    change = tier["customers"] - tier["last_month"]
    return f"{change:+,}" if change else "±0"


def _path_link(path: Path) -> str:
    # The React UI drops file:// hrefs, so the text is the path itself (open it on the machine that ran the flow).
    return f"[{path}]({path.resolve().as_uri()})"


# ------------------------------------------------------------------------------------------ reading


def release_in_force(published_db: Path) -> dict[str, Any] | None:
    """The current release of `published_db` (latest release_log row: `published_at` is when it became current,
    by a publication or a rollback), read-only; None if none or unreadable."""
    if not Path(published_db).exists():
        return None
    try:
        with duckdb.connect(str(published_db), read_only=True) as con:
            row = con.execute("SELECT release_id, as_of_month, published_at FROM main.release_log "
                              "ORDER BY published_at DESC LIMIT 1").fetchone()
    except duckdb.Error as exc:
        log.warning("release in force not read from %s: %s", published_db, _one_line(exc))
        return None
    return dict(zip(("release_id", "as_of_month", "published_at"), row, strict=True)) if row else None


def read_gates(settings: Settings, since: datetime) -> list[GateOutcome]:
    """The gate runs started at or after `since` (bank wall time): under the warehouse lock, this run's."""
    if not settings.working_db.exists():
        return []
    with duckdb.connect(str(settings.working_db), read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'gate' "
                           "AND table_name = 'run'").fetchone()[0]:
            return []
        rows = con.execute("""
            SELECT r.as_of_month, r.gate_run_id, r.success, r.blocking_failures,
                   count(*) FILTER (WHERE g.severity <> 'blocking' AND NOT g.success)
            FROM gate.run AS r LEFT JOIN gate.result AS g ON g.gate_run_id = r.gate_run_id
            WHERE r.started_at >= ? GROUP BY ALL ORDER BY r.as_of_month""", [since]).fetchall()
    gates = []
    for month, run_id, success, blocking, warnings in rows:
        page = settings.reports_dir / f"{month:%Y-%m}" / GATE_PAGE
        gates.append(GateOutcome(month, run_id, bool(success), int(blocking), int(warnings),
                                 page if page.is_file() else None))
    return gates


def read_tiers(published_db: Path, as_of: date, previous: date) -> tuple[str | None, list[dict[str, Any]]]:
    """(active rule set, customers per tier of the published rule sets this month and last month)."""
    with duckdb.connect(str(published_db), read_only=True) as con:
        active = con.execute("SELECT rule_set FROM main.release_log WHERE as_of_month = ? "
                             "ORDER BY published_at DESC LIMIT 1", [as_of]).fetchone()
        if active is None:
            return None, []
        cursor = con.execute("""
            SELECT t.rule_set, t.tier, t.tier_name, t.tier_rank, t.customers, p.customers AS last_month
            FROM main.tier_summary AS t
            LEFT JOIN main.tier_summary AS p
                ON p.as_of_month = ? AND p.rule_set = t.rule_set AND p.tier = t.tier
            WHERE t.as_of_month = ? AND t.rule_set IN (?, ?)""", [previous, as_of, active[0], CORPORATE_RULE_SET])
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    rows.sort(key=lambda r: (rule_set_rank(r["rule_set"], active[0]), -r["tier_rank"]))
    return active[0], rows


# ------------------------------------------------------------------------------------------ the run


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def finish(summary: RunSummary) -> None:
    """Read what the stages left (gate runs, published tiers); a figure that cannot be read is left out."""
    summary.finished_at = datetime.now(SHANGHAI)
    try:
        summary.gates = read_gates(summary.settings, summary.started_at.replace(tzinfo=None, microsecond=0))
    except duckdb.Error as exc:
        log.warning("gate runs not read for the run summary: %s", _one_line(exc))
    if summary.published:
        try:
            summary.active_rule_set, summary.tiers = read_tiers(summary.settings.published_db, summary.as_of,
                                                                summary.previous_month)
        except duckdb.Error as exc:
            log.warning("tiers not read for the run summary: %s", _one_line(exc))


@contextmanager
def run_summary(settings: Settings, as_of: date, logger: Any) -> Iterator[RunSummary]:
    """Summarise the run inside this block: on the way out, completed or failed (the error is re-raised),
    log the summary line and create the `run-summary` artifact."""
    summary = RunSummary(settings, as_of, datetime.now(SHANGHAI), release_in_force(settings.published_db))
    try:
        yield summary
    except BaseException as exc:
        summary.failed_stage, summary.reason = summary.stage, _one_line(exc)
        raise
    finally:
        try:
            finish(summary)
            logger.info(summary.log_line())
        except Exception as exc:  # noqa: BLE001 - the summary is a view; the run's outcome (or error) stands
            log.warning("run summary not written: %s", _one_line(exc))
        create_artifact(RUN_SUMMARY, lambda: _create_markdown(summary))


def _create_markdown(summary: RunSummary) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=summary.markdown(), key=RUN_SUMMARY,
                             description=f"**Monthly run 月度运行 {summary.headline()}**")
