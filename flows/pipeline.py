"""The parent flow of a monthly run: ingest → build → gate → publish → report, each a Prefect subflow.

The run holds the warehouse lock (and, under a deployment, the warehouse's concurrency slot; see
flows.warehouse_lock), so no two writers of one warehouse ever overlap.
"""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as runtime_flow_run

from flows.build import build_flow
from flows.gate import gate_flow
from flows.ingest import ingest_flow
from flows.lib.month_plan import plan_months, record_month_publication
from flows.months import SHANGHAI, parse_as_of, previous_month_end
from flows.publish import publish_flow
from flows.report import report_flow
from flows.settings import Settings
from flows.warehouse_lock import warehouse_slot


def _default_as_of() -> date:
    """A scheduled run evaluates the month before its scheduled start; an ad-hoc one, the month before now."""
    scheduled = runtime_flow_run.scheduled_start_time
    return previous_month_end(scheduled if scheduled is not None else datetime.now(SHANGHAI))


@flow(name="tiering-run", log_prints=True)
def tiering_run(landing: str, as_of: str | None = None, warehouse: str | None = None, rules: str | None = None,
                force: bool = False, full_refresh: bool = False):
    """Publish the tiers of month `as_of` (default: the month before the run's scheduled start), or fail
    and leave the previous release as it was. Months whose batches changed since they were built are
    rebuilt first (restatement); `full_refresh` rebuilds every month from raw."""
    month = parse_as_of(as_of) if as_of else _default_as_of()
    settings = Settings.from_env(warehouse=warehouse, rules=rules)
    with warehouse_slot(settings.warehouse, f"tiering-run flow ({month:%Y-%m})"):
        return _run_month(settings, landing, month, force, full_refresh)


def _run_month(settings: Settings, landing: str, month: date, force: bool, full_refresh: bool):
    logger = get_run_logger()
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    wh, rules_path = str(settings.warehouse), str(settings.rules_path)
    logger.info("monthly run for %s into %s", month, wh)
    # Only batches up to as_of matter for this month; later ones wait for their own runs.
    ingest_flow(landing=landing, warehouse=wh, through=month.isoformat(), force=force,
                wait_seconds=settings.ok_wait_seconds, poll_seconds=settings.ok_poll_seconds)
    plan = plan_months(settings.working_db, month, settings.rules_path, full_refresh=full_refresh)
    logger.info("plan: %s", plan.describe())
    if plan.build_needed:
        build_flow(warehouse=wh, months=[m.isoformat() for m in plan.months], rules=rules_path,
                   full_refresh=plan.full_refresh,
                   inputs_loaded_at={m.isoformat(): (t.isoformat() if t else None)
                                     for m, t in plan.inputs_loaded_at.items()})
    gate_runs: dict[str, str] = {}
    for gated_month in plan.published_months:
        gate = gate_flow(warehouse=wh, as_of=gated_month.isoformat(), rules=rules_path)
        gate_runs[gated_month.isoformat()] = gate.gate_run_id
    release = publish_flow(warehouse=wh, as_of=month.isoformat(), gate_runs=gate_runs,
                           months=[m.isoformat() for m in plan.published_months])
    record_month_publication(settings.working_db, plan.published_months, release.release_id)
    logger.info("published release %s for %s", release.release_id, month)
    report_flow(warehouse=wh, as_of=month.isoformat(), gate_run_id=gate_runs[month.isoformat()])
    return release
