"""Prefect flow `ingest`: landing batches → raw.* of the working database (logic in flows.lib.extracts)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.lib.extracts import IngestError, IngestReport, ingest_batches, parse_date

__all__ = ["IngestError", "ingest_flow"]


@flow(name="ingest")
def ingest_flow(
    landing: str,
    warehouse: str,
    date: str | None = None,
    through: str | None = None,
    force: bool = False,
    wait_seconds: float = 60,
    poll_seconds: float = 5,
) -> IngestReport:
    """Load every complete batch of `landing` into `<warehouse>/tiering.duckdb`; fail if any did not load.

    Good batches stay loaded even when another fails: each batch is its own transaction.
    """
    logger = get_run_logger()
    warehouse_dir = Path(warehouse)
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    report = ingest_batches(
        Path(landing),
        warehouse_dir / "tiering.duckdb",
        date=parse_date(date),
        through=parse_date(through),
        force=force,
        wait_seconds=wait_seconds,
        poll_seconds=poll_seconds,
        progress=logger.debug,  # per-table timings; the batch summary below is the INFO line
    )
    for batch in report.batches:
        (logger.error if batch.failed else logger.info)(batch.summary_line())
    if not report.batches:
        logger.info("no batches to ingest in %s", landing)
    if report.failed:
        raise IngestError(report.failure_message())
    return report
