"""Prefect flow `gate`: validate the candidate month's marts with Great Expectations (in SQL).

Results go to `gate.run` / `gate.result` in the working database and to
`<warehouse>/reports/<YYYY-MM>/gate.html`; a failed blocking expectation raises `GateFailed`, naming it.
"""

from __future__ import annotations

import logging
from datetime import date

from prefect import flow, get_run_logger
from prefect.exceptions import MissingContextError

from flows.reports.artifacts import publish_gate_report
from flows.rules import load_rules
from flows.settings import Settings
from flows.stages.gate_checks import CheckResult, GateFailed, GateResult, run_gate

__all__ = ["CheckResult", "GateFailed", "GateResult", "gate_flow"]


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called as gate_flow.fn(...) outside a flow run
        return logging.getLogger("flows.stages.gate")


@flow(name="gate")
def gate_flow(as_of: date, settings: Settings | None = None) -> GateResult:
    """Run every expectation for month `as_of` (its last day) with `settings`' rules, store and render the
    results (default settings: Settings.from_env(), for a direct call).

    Raises GateFailed (naming them) when a blocking expectation fails.
    """
    settings = settings or Settings.from_env()
    log = _logger()
    result = run_gate(settings, as_of, load_rules(settings.rules_path))
    log.info("gate %s for %s: %d expectations, %d blocking failures, %d warnings; report %s",
             result.gate_run_id, f"{result.as_of_month:%Y-%m}", len(result.results),
             len(result.blocking_failures), len(result.warning_failures), result.report_path)
    for name in result.warning_failures:
        log.warning("gate warning: %s", name)
    publish_gate_report(result)
    if not result.success:
        raise GateFailed(result.failure_message())
    return result
