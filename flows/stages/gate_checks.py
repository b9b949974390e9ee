"""Run the gate's expectations on the built month, keep the results in `gate.*`, judge by severity.

GX validates where the month was built (Settings.engine): on DuckDB in SQL through `flows.adapters.gx_duckdb`
(read-only, NullPool), on Spark through `flows.adapters.gx_spark` (the same suites; their SQL's few
engine-specific spellings are in `expectations/dialect.py`). Only after validation has released the working
database are the results written, in one transaction, to its `gate.run` and `gate.result` (on both engines
the working DuckDB file keeps the pipeline's bookkeeping).
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import great_expectations as gx
from great_expectations.core.result_format import ResultFormat

from expectations import Check, GateParams
from expectations.suites import SUITES, build_checks, reference_queries
from flows.adapters.gx_duckdb import duckdb_gx
from flows.faults import crash_point
from flows.months import SHANGHAI
from flows.rules import Rules
from flows.settings import Settings

log = logging.getLogger(__name__)

# Rows / values kept per result in gate.result.details: enough to find the problem, bounded in size.
DETAIL_ROWS = 20

GATE_DDL = """
CREATE SCHEMA IF NOT EXISTS gate;
CREATE TABLE IF NOT EXISTS gate.run (
    gate_run_id VARCHAR PRIMARY KEY, as_of_month DATE, started_at TIMESTAMP, finished_at TIMESTAMP,
    success BOOLEAN, blocking_failures INTEGER);
CREATE TABLE IF NOT EXISTS gate.result (
    gate_run_id VARCHAR, table_name VARCHAR, expectation VARCHAR, severity VARCHAR, success BOOLEAN,
    observed_value VARCHAR, details VARCHAR);
"""


class GateFailed(RuntimeError):
    """At least one blocking expectation failed; the message names them on one line."""


def now_local() -> datetime:
    """Wall-clock time in Asia/Shanghai without tz, like every TIMESTAMP of the warehouse."""
    return datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: observed value as text, details as JSON text (bounded)."""

    table: str
    name: str
    severity: str
    success: bool
    observed_value: str
    details: str
    description: str
    # What failed, named from the offending rows (e.g. "cib_monthly GOLD +0.2500"); empty otherwise.
    summary: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.table}.{self.name}"


@dataclass
class GateResult:
    """One gate run: every check's result, the raw reference figures, and where the report went."""

    gate_run_id: str
    as_of_month: date
    started_at: datetime
    finished_at: datetime
    rules_version: str
    results: list[CheckResult]
    reference: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None

    @property
    def blocking_failures(self) -> list[str]:
        return [r.full_name for r in self.results if r.severity == "blocking" and not r.success]

    @property
    def warning_failures(self) -> list[str]:
        return [r.full_name for r in self.results if r.severity != "blocking" and not r.success]

    @property
    def success(self) -> bool:
        """Passed unless a blocking check failed (GX's own `success` also counts warnings)."""
        return not self.blocking_failures

    def failure_message(self) -> str:
        """One line for the CLI and the run's log, which everyone sees: AML failures are counted, not named."""
        from flows.reports.gate_report import split_aml

        general, aml = split_aml(r for r in self.results if r.severity == "blocking" and not r.success)
        failed = [f"{r.full_name} ({r.summary})" if r.summary else r.full_name for r in general]
        if aml:
            failed.append(f"{len(aml)} restricted AML expectation(s) (AML staff: restricted/reports/"
                          f"{self.as_of_month:%Y-%m}/gate.html)")
        where = f"; report: {self.report_path}" if self.report_path else ""
        return (f"gate {self.gate_run_id} for {self.as_of_month:%Y-%m}: {len(general) + len(aml)} blocking "
                f"expectation(s) failed: {', '.join(failed)}{where}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False,
                      default=lambda v: str(v) if isinstance(v, Decimal | date) else repr(v))


def _exception_messages(info: Any) -> list[str]:
    """Messages of every raised exception in GX's (possibly nested, per-metric) exception_info."""
    if not isinstance(info, dict):
        return []
    if info.get("raised_exception"):
        return [str(info.get("exception_message") or "error")]
    return [m for v in info.values() if isinstance(v, dict) for m in _exception_messages(v)]


def _expected(kwargs: dict[str, Any]) -> dict[str, Any]:
    keep = ("value", "value_set", "min_value", "max_value", "mostly", "column", "column_list")
    found = {k: kwargs[k] for k in keep if kwargs.get(k) is not None}
    if isinstance(found.get("value_set"), list) and len(found["value_set"]) > DETAIL_ROWS:
        found["value_set"] = found["value_set"][:DETAIL_ROWS] + ["…"]
    return found


def _to_result(check: Check, validation: Any) -> CheckResult:
    """Turn a GX ExpectationValidationResult into the gate's row."""
    result = dict(validation.result or {})
    errors = _exception_messages(validation.exception_info)
    summary = ""
    details: dict[str, Any] = {"type": check.expectation.expectation_type,
                               "expected": _expected(dict(validation.expectation_config.kwargs))}
    if errors:
        observed = "error"
        details["error"] = "; ".join(e.splitlines()[0] for e in errors)[:2000]
    elif check.wants_rows:
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        observed = f"{result.get('observed_value', len(rows))} unexpected row(s)"
        details["unexpected_rows"] = rows[:DETAIL_ROWS]
        if check.name_columns and rows:
            summary = "; ".join(" ".join(str(row.get(c)) for c in check.name_columns)
                                for row in rows[:DETAIL_ROWS] if isinstance(row, dict))
            observed = f"{observed}: {summary}"
    elif "unexpected_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        observed = f"{count} of {total} unexpected ({result.get('unexpected_percent') or 0:.4g}%)"
        details["partial_unexpected_list"] = (result.get("partial_unexpected_list") or [])[:DETAIL_ROWS]
    else:
        observed = str(result.get("observed_value"))
    success = bool(validation.success) and not errors
    return CheckResult(check.table, check.name, check.severity, success, observed, _json(details),
                       check.description, summary if not success else "")


def _failed(check: Check, reason: str) -> CheckResult:
    return CheckResult(check.table, check.name, check.severity, False, "error",
                       _json({"type": check.expectation.expectation_type, "error": reason[:2000]}),
                       check.description)


def _reference(session: Any, queries: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run each scalar reference query; a failing one is recorded, not raised."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, sql in queries.items():
        try:
            values[name] = session.scalar(sql)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check, the gate goes on
            errors[name] = str(exc).splitlines()[0]
    return values, errors


def last_release_month(published_db: Path) -> date | None:
    """as_of_month of the latest release in `published_db` (read-only; None if none or unreadable)."""
    if not Path(published_db).exists():
        return None
    try:
        con = duckdb.connect(str(published_db), read_only=True)
        try:
            row = con.execute("SELECT as_of_month FROM main.release_log "
                              "ORDER BY published_at DESC LIMIT 1").fetchone()
        finally:
            con.close()
    except duckdb.Error as exc:
        log.warning("last release of %s not read (%s): drift compares with the previous month only",
                    published_db, str(exc).splitlines()[0])
        return None
    return row[0] if row else None


def gx_session(settings: Settings) -> AbstractContextManager[Any]:
    """The GX session of the engine the month was built on: `month_batch`, `scalar` and release on exit."""
    if settings.engine == "spark":
        from flows.adapters.gx_spark import spark_gx  # pyspark only when the engine is Spark
        from flows.stages.spark_inputs import register_inputs

        # The batch log and raw partitions as committed now (a gate may run apart from its build).
        register_inputs(settings)
        return spark_gx(settings, schemas={suite.SCHEMA for suite in SUITES})
    return duckdb_gx(settings.working_db, read_only=True, config=settings.duckdb_config())


def run_checks(settings: Settings, as_of: date, rules: Rules,
               tables: tuple[str, ...] | None = None) -> tuple[list[CheckResult], dict[str, Any]]:
    """Validate the month's marts/audit rows with every check (or those of `tables`), on the engine of
    `settings`; return results and reference figures. The published database gives the last release's
    month to the drift check."""
    results: dict[str, CheckResult] = {}
    released = last_release_month(settings.published_db)
    with gx_session(settings) as session:
        params = GateParams(as_of=as_of, rules=rules, last_release_month=released, engine=settings.engine)
        reference, errors = _reference(session, reference_queries(params))
        params = replace(params, reference=reference, reference_errors=errors)
        checks = [c for c in build_checks(params) if tables is None or c.table in tables]
        by_name = {c.full_name: c for c in checks}
        for suite in SUITES:
            mine = [c for c in checks if c.table == suite.TABLE]
            if not mine:
                continue
            for c in mine:
                if c.skip_reason:
                    results[c.full_name] = _failed(c, c.skip_reason)
            runnable = [c for c in mine if not c.skip_reason]
            try:
                batch = session.month_batch(suite.TABLE, suite.SCHEMA, suite.MONTH_COLUMN, as_of.replace(day=1),
                                            as_of)
            except Exception as exc:  # noqa: BLE001 - a missing table fails its checks, not the gate run
                reason = f"{suite.SCHEMA}.{suite.TABLE} could not be read: {str(exc).splitlines()[0]}"
                results.update({c.full_name: _failed(c, reason) for c in runnable})
                continue
            # Custom-SQL checks need their offending rows (COMPLETE); column checks a bounded summary.
            for wants_rows in (False, True):
                group = [c for c in runnable if c.wants_rows == wants_rows]
                if not group:
                    continue
                suite_obj = gx.ExpectationSuite(name=f"{suite.TABLE}{'_rows' if wants_rows else ''}")
                for c in group:
                    suite_obj.add_expectation(c.expectation)
                fmt = ResultFormat.COMPLETE if wants_rows else ResultFormat.BASIC
                validation = batch.validate(suite_obj, result_format=fmt)
                for vr in validation.results:
                    name = (vr.expectation_config.meta or {}).get("gate_check")
                    if name in by_name:
                        results[name] = _to_result(by_name[name], vr)
                for c in group:  # belt and braces: a check GX returned nothing for is a failure
                    results.setdefault(c.full_name, _failed(c, "no validation result returned"))
    if reference.get("records"):
        rate = Decimal(reference["quarantined"]) / Decimal(reference["records"])
        reference["quarantine_rate"] = rate.quantize(Decimal("0.000001"))
    reference = {**reference, **{f"{k}_error": v for k, v in errors.items()}}
    reference["drift_baseline_month"] = params.drift_baseline_month
    return [results[c.full_name] for c in checks], reference


def store_gate_run(working_db: Path, result: GateResult) -> None:
    """Write the run and its results to gate.run / gate.result in one transaction."""
    con = duckdb.connect(str(working_db))
    try:
        con.execute(GATE_DDL)
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO gate.run VALUES (?, ?, ?, ?, ?, ?)",
                    [result.gate_run_id, result.as_of_month, result.started_at, result.finished_at,
                     result.success, len(result.blocking_failures)])
        con.executemany("INSERT INTO gate.result VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [[result.gate_run_id, r.table, r.name, r.severity, r.success, r.observed_value,
                          r.details] for r in result.results])
        con.execute("COMMIT")
    except Exception:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # nothing was begun
        raise
    finally:
        con.close()


def run_gate(settings: Settings, month: date, rules: Rules) -> GateResult:
    """Run every check for `month` (its last day), store the results in the working database, render the
    report; never raises on failed checks."""
    from flows.reports.gate_report import write_gate_report

    working_db = settings.working_db
    if not working_db.exists():
        raise FileNotFoundError(f"working database not found: {working_db}")
    started = now_local()
    results, reference = run_checks(settings, month, rules)
    result = GateResult(
        gate_run_id=str(uuid.uuid4()), as_of_month=month, started_at=started, finished_at=now_local(),
        rules_version=rules.version, results=results, reference=reference)
    crash_point("gate:before-store")
    store_gate_run(working_db, result)
    result.report_path = write_gate_report(result, settings)
    log.info("gate %s for %s: %s (%d blocking, %d warning failures)", result.gate_run_id, f"{month:%Y-%m}",
             "passed" if result.success else "FAILED", len(result.blocking_failures),
             len(result.warning_failures))
    return result
