"""Prefect flow `publish`: write-audit-publish the gated month to `published.duckdb` and Parquet exports,
and the confidential AML marts to `restricted/aml.duckdb` in the same step; then, when a PostgreSQL URL
is set, the same tables to PostgreSQL (one transaction) for BI tools."""

from __future__ import annotations

import logging
from datetime import date

from prefect import flow, get_run_logger
from prefect.exceptions import MissingContextError

from flows.months import month_runs
from flows.settings import Settings
from flows.stages.publishing import PublishFailed, PublishRefused, Release, publish_release

__all__ = ["PublishFailed", "PublishRefused", "Release", "publish_flow"]


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called as publish_flow.fn(...) outside a flow run
        return logging.getLogger("flows.stages.publish")


@flow(name="publish")
def publish_flow(as_of: date, settings: Settings | None = None, gate_run_id: str | None = None,
                 gate_runs: dict[date, str] | None = None, months: list[date] | None = None) -> Release:
    """Publish the gated months (default: `as_of` alone) as one release named by `as_of`, into `settings`'
    warehouse (default: Settings.from_env(), for a direct call).

    `gate_runs` maps each month (its last day) to its passing gate run (`gate_run_id` is that of `as_of`);
    months the current release already holds are recorded as restated. Raises PublishRefused (no passing
    gate for a month) or PublishFailed (release not built), or PostgresPublishFailed (the DuckDB release
    is out; PostgreSQL keeps its previous release).
    """
    # The PostgreSQL URL comes from the environment only (TIERING_PUBLISH_POSTGRES, Settings.publish_postgres),
    # never from a parameter: Prefect stores and shows flow parameters, and the URL may hold a password.
    settings = settings or Settings.from_env()
    gated = dict(gate_runs or {})
    if gate_run_id is not None:
        gated.setdefault(as_of, gate_run_id)
    release = publish_release(settings, list(months) if months else [as_of], gated, as_of_month=as_of)
    log = _logger()
    restated_note = (f"; restated {month_runs(release.restated_months)}"
                     if release.restated_months else "")
    log.info("release %s published for %s (wrote %s%s): %s", release.release_id, f"{release.as_of_month:%Y-%m}",
             month_runs(release.months_published), restated_note,
             ", ".join(f"{t} {n} rows" for t, n in release.row_counts.items()))
    if release.restricted_db is None:
        log.info("no AML marts in the working database: no restricted AML release")
    else:
        log.info("restricted AML release %s: %s", release.restricted_db,
                 ", ".join(f"{t} {n} rows" for t, n in release.restricted_row_counts.items()))
    if settings.publish_postgres:
        from flows.adapters.postgres_publish import publish_to_postgres

        copy = publish_to_postgres(settings.published_db, settings.publish_postgres)
        log.info("release %s also published to PostgreSQL %s, schema %s (read-only role %s): %s, months "
                 "written %s", copy.release_id, copy.target, copy.schema, copy.reader_role, copy.mode,
                 ", ".join(f"{m:%Y-%m}" for m in copy.months_written) or "none")
    return release
