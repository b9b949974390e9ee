"""The parent flow of a monthly run: ingest → build → gate → publish → report, each a Prefect subflow.

The run holds the warehouse lock (and, under a deployment, the warehouse's concurrency slot; see
flows.warehouse_lock), so no two writers of one warehouse ever overlap.
"""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as runtime_flow_run

from flows.months import SHANGHAI, previous_month_end
from flows.reports.run_summary import RunSummary, run_summary
from flows.settings import Settings
from flows.stages.build import build_flow
from flows.stages.gate import gate_flow
from flows.stages.ingest import ingest_flow
from flows.stages.month_plan import plan_months, record_month_publication
from flows.stages.publish import publish_flow
from flows.stages.report import report_flow
from flows.warehouse_lock import warehouse_slot


def _default_as_of() -> date:
    """A scheduled run evaluates the month before its scheduled start; an ad-hoc one, the month before now."""
    scheduled = runtime_flow_run.scheduled_start_time
    return previous_month_end(scheduled if scheduled is not None else datetime.now(SHANGHAI))


@flow(name="tiering-run", log_prints=True)
def tiering_run(landing: str, as_of: date | None = None, settings: Settings | None = None, force: bool = False,
                full_refresh: bool = False):
    """Publish the tiers of month `as_of` (its last day; default: the month before the run's scheduled start)
    into `settings`' warehouse, or fail and leave the previous release as it was. Months whose batches
    changed since they were built are rebuilt first (restatement); `full_refresh` rebuilds every month from raw.

    `as_of` and `settings` come from the edge, parsed and built once: the `tiering` CLI, or the monthly
    deployment's entry (flows.deployments); every subflow gets this very date and Settings object.
    `settings` defaults to Settings.from_env() for a direct call.
    """
    month = as_of or _default_as_of()
    settings = settings or Settings.from_env()
    # The run's page shows the outcome (the `run-summary` artifact and log line), failed runs included.
    with run_summary(settings, month, get_run_logger()) as summary, \
            warehouse_slot(settings.warehouse, f"tiering-run flow ({month:%Y-%m})"):
        return _run_month(settings, landing, month, force, full_refresh, summary)


def _run_month(settings: Settings, landing: str, month: date, force: bool, full_refresh: bool,
               summary: RunSummary):
    logger = get_run_logger()
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    logger.info("monthly run for %s into %s", month, settings.warehouse)
    summary.at("ingest")
    # Only batches up to as_of matter for this month; later ones wait for their own runs.
    ingest_flow(landing=landing, settings=settings, through=month, force=force)
    summary.at("plan")
    plan = plan_months(settings.working_db, month, settings.rules_path, full_refresh=full_refresh)
    logger.info("plan: %s", plan.describe())
    if plan.build_needed:
        summary.at("build")
        build_flow(months=plan.months, settings=settings, full_refresh=plan.full_refresh,
                   inputs_loaded_at=plan.inputs_loaded_at)
    summary.at("gate")
    gate_runs: dict[date, str] = {}
    for gated_month in plan.published_months:
        gate = gate_flow(as_of=gated_month, settings=settings)
        gate_runs[gated_month] = gate.gate_run_id
    summary.at("publish")
    release = publish_flow(as_of=month, settings=settings, gate_runs=gate_runs, months=plan.published_months)
    summary.release_id = release.release_id
    record_month_publication(settings.working_db, plan.published_months, release.release_id)
    logger.info("published release %s for %s", release.release_id, month)
    summary.at("report")
    summary.report_page = report_flow(as_of=month, settings=settings, gate_run_id=gate_runs[month]).path
    return release
