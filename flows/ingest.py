"""Prefect flow `ingest`: landing batches → raw.* of the working database (logic in flows.lib.extracts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import publish_batch_load_summary
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
    progress_bar: bool = False,
) -> IngestReport:
    """Load every complete batch of `landing` into `<warehouse>/tiering.duckdb`; fail if any did not load.

    Good batches stay loaded even when another fails: each batch is its own transaction.
    `progress_bar` draws a terminal progress bar over the batches (for `tiering ingest`).
    """
    logger = get_run_logger()
    warehouse_dir = Path(warehouse)
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    with _batch_progress(progress_bar) as batches_done:
        report = ingest_batches(
            Path(landing),
            warehouse_dir / "tiering.duckdb",
            date=parse_date(date),
            through=parse_date(through),
            force=force,
            wait_seconds=wait_seconds,
            poll_seconds=poll_seconds,
            progress=logger.debug,  # per-table timings; the batch summary below is the INFO line
            batches_done=batches_done,
        )
    for batch in report.batches:
        # Already-loaded batches are re-checked every day: one count line, not one line each.
        log_batch = logger.error if batch.failed else logger.debug if batch.outcome == "unchanged" else logger.info
        log_batch(batch.summary_line())
    unchanged = sum(b.outcome == "unchanged" for b in report.batches)
    if unchanged:
        logger.info("%d batch(es) already loaded with identical content", unchanged)
    if not report.batches:
        logger.info("no batches to ingest in %s", landing)
    publish_batch_load_summary(report)
    if report.failed:
        raise IngestError(report.failure_message())
    return report


@contextmanager
def _batch_progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("ingesting batches"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("ingest", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)

