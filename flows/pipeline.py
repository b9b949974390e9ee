"""The parent flow of a monthly run: ingest → build → gate → publish, each a Prefect subflow."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.build import build_flow
from flows.gate import gate_flow
from flows.ingest import ingest_flow
from flows.months import parse_as_of
from flows.publish import publish_flow
from flows.settings import Settings


@flow(name="tiering-run", log_prints=True)
def tiering_run(landing: str, as_of: str, warehouse: str | None = None, rules: str | None = None,
                force: bool = False):
    """Publish the tiers of month `as_of`, or fail and leave the previous release as it was."""
    logger = get_run_logger()
    month = parse_as_of(as_of)
    settings = Settings.from_env(warehouse=warehouse, rules=rules)
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    wh, rules_path = str(settings.warehouse), str(settings.rules_path)
    logger.info("monthly run for %s into %s", month, wh)
    # Only batches up to as_of matter for this month; later ones wait for their own runs.
    ingest_flow(landing=landing, warehouse=wh, through=month.isoformat(), force=force,
                wait_seconds=settings.ok_wait_seconds, poll_seconds=settings.ok_poll_seconds)
    build_flow(warehouse=wh, as_of=month.isoformat(), rules=rules_path)
    gate = gate_flow(warehouse=wh, as_of=month.isoformat(), rules=rules_path)
    release = publish_flow(warehouse=wh, as_of=month.isoformat(), gate_run_id=gate.gate_run_id)
    logger.info("published release %s for %s", release.release_id, month)
    return release
