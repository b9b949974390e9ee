"""Prefect flow `report`: what people look at after a publication.

Writes `<warehouse>/reports/<YYYY-MM>/index.html` (charts of the published month, linked to the gate page
and to the dbt docs built next to it, nothing about AML) and `<warehouse>/restricted/reports/<YYYY-MM>/`
(the AML gate results and the AML models' dbt docs; folders 0700, files 0600 like the AML database),
and shows the tier summary, the migration matrix and a link to the report as artifacts of this run. It
runs after `publish` (dbt opens the working database for the docs catalog, so nothing else may hold it);
it changes no release, so a failure here leaves the release as published, and the run fails so that
someone looks. A dbt docs failure alone does not fail it: the page says the docs were not generated.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from flows.reports.artifacts import publish_release_artifacts
from flows.settings import Settings


@flow(name="report")
def report_flow(as_of: date, settings: Settings | None = None, gate_run_id: str | None = None):
    """Write the release report of month `as_of` (its last day) in `settings`' warehouse (default:
    Settings.from_env(), for a direct call) and publish its artifacts; return the report page."""
    from flows.reports.release_report import write_release_report

    logger = get_run_logger()
    settings = settings or Settings.from_env()
    report = write_release_report(settings, as_of, gate_run_id)
    logger.info("release report %s (gate page %s, dbt docs %s)", report.path, report.gate_page,
                report.dbt_docs_page)
    if report.restricted_path:
        logger.info("restricted AML report %s (AML staff only)", report.restricted_path)
    if report.dbt_docs_error:
        logger.warning("dbt docs not generated: %s", report.dbt_docs_error)
    publish_release_artifacts(report)
    return report
