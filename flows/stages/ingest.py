"""Prefect flow `ingest`: landing batches → the warehouse's raw zone (logic in flows.stages.extracts, flows.stages.raw_zone)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, get_run_logger

from flows.reports import progress
from flows.reports.artifacts import publish_batch_load_summary
from flows.settings import Settings
from flows.stages.extracts import BatchResult, IngestError, IngestReport, ingest_batches

__all__ = ["IngestError", "ingest_flow"]


@flow(name="ingest")
def ingest_flow(
    landing: str,
    settings: Settings | None = None,
    date: dt.date | None = None,
    through: dt.date | None = None,
    force: bool = False,
) -> IngestReport:
    """Load every complete batch of `landing` into the warehouse's raw zone; fail if any did not load.

    `date` picks one batch, `through` the batches up to that day. The warehouse and the bounded wait for
    late `.ok` files come from `settings` (default: Settings.from_env(), for a direct call).
    Good batches stay loaded even when another fails: each batch is its own commit. Each loaded or failed
    batch is logged as soon as it is done, and reported to the progress sink (batches done of N).
    """
    logger = get_run_logger()
    settings = settings or Settings.from_env()
    settings.warehouse.mkdir(parents=True, exist_ok=True)

    def finished(batch: BatchResult) -> None:
        # Already-loaded batches are re-checked every day: counted in one line at the end, not one each.
        if batch.outcome != "unchanged":
            (logger.error if batch.failed else logger.info)(batch.summary_line())

    report = ingest_batches(
        Path(landing),
        settings.working_db,
        date=date,
        through=through,
        force=force,
        wait_seconds=settings.ok_wait_seconds,
        poll_seconds=settings.ok_poll_seconds,
        progress=logger.debug,  # per-table timings; the batch lines above are the INFO lines
        batches_done=lambda done, total: progress.report("ingest batches", done, total),
        batch_finished=finished,
        duckdb_config=settings.duckdb_config(),
    )
    unchanged = sum(b.outcome == "unchanged" for b in report.batches)
    if unchanged:
        logger.info("%d batch(es) already loaded with identical content", unchanged)
    if not report.batches:
        logger.info("no batches to ingest in %s", landing)
    publish_batch_load_summary(report)
    if report.failed:
        raise IngestError(report.failure_message())
    return report
