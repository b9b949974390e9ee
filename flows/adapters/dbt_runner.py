"""dbt invocation as plain functions: render the rule seeds, run a dbt command, report failed nodes.

The Prefect flow in flows/stages/build.py is a thin skin over these; tests call them directly.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flows.rules import load_rules, write_seeds
from flows.settings import Settings

WORKING_DB_ENV = "TIERING_WORKING_DB"
DBT_THREADS_ENV = "TIERING_DBT_THREADS"
# Statuses of run results that mean a node did not do its job (dbt's RunStatus/TestStatus values).
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})


class DbtBuildError(RuntimeError):
    """A dbt command failed; the message is one line naming the first failing node and its message."""


@dataclass(frozen=True)
class FailedNode:
    """One dbt node that errored or failed, with dbt's message collapsed to one line."""

    unique_id: str
    status: str
    message: str


@dataclass(frozen=True)
class DbtRunResult:
    """Outcome of one dbt invocation."""

    success: bool
    command: list[str]
    failures: list[FailedNode] = field(default_factory=list)
    nodes_run: int = 0

    def error_message(self) -> str:
        """One line: the first failing node and why (or that dbt failed without a node)."""
        if self.success:
            return ""
        if not self.failures:
            return f"dbt {' '.join(self.command[:1])} failed"
        first = self.failures[0]
        more = f" (+{len(self.failures) - 1} more failing nodes)" if len(self.failures) > 1 else ""
        return f"dbt {self.command[0]} failed at {first.unique_id}: {first.message}{more}"

    def raise_on_failure(self) -> DbtRunResult:
        """Return self when dbt succeeded, else raise DbtBuildError."""
        if not self.success:
            raise DbtBuildError(self.error_message())
        return self


Invoke = Callable[[list[str]], Any]


def prepare_seeds(settings: Settings) -> list[Path]:
    """Validate the rules file and render it as the dbt seeds (dbt_project/seeds/rule_*.csv)."""
    rules = load_rules(settings.rules_path)
    return write_seeds(rules, settings.dbt_project_dir / "seeds")


def dbt_args(args: list[str], settings: Settings, as_of: date | None = None) -> list[str]:
    """The full dbt argument list: the command, our project and profiles dirs, and var as_of if given."""
    full = [*args, "--project-dir", str(settings.dbt_project_dir), "--profiles-dir", str(settings.dbt_project_dir)]
    if settings.engine == "spark":
        full += ["--target", "spark"]
    if as_of is not None:
        full += ["--vars", json.dumps({"as_of": as_of.isoformat()})]
    return full


def run_dbt(args: list[str], settings: Settings, as_of: date | None = None,
            invoke: Invoke | None = None, callbacks: list[Callable[[Any], None]] | None = None) -> DbtRunResult:
    """Run one dbt command against the settings' working database and collect its failed nodes.

    `invoke` defaults to dbt's programmatic dbtRunner (with `callbacks` for its events, e.g. progress).
    """
    full = dbt_args(args, settings, as_of)
    if invoke is None:
        from dbt.cli.main import dbtRunner

        invoke = dbtRunner(callbacks=callbacks or []).invoke
    if settings.engine == "spark" and settings.spark_method == "session":
        from flows.adapters.spark_engine import spark_session

        # Started here with the warehouse's catalog; dbt-spark's session method then finds it (getOrCreate).
        spark_session(settings)
    with _working_db_env(settings):
        try:
            res = invoke(full)
        except Exception as exc:  # any dbt crash becomes a reported failure, like a failed node
            return DbtRunResult(False, list(args), [exception_failure(exc)])
    return collect_result(res, list(args))


def collect_result(res: Any, command: list[str]) -> DbtRunResult:
    """Turn a dbtRunnerResult into a DbtRunResult (failed nodes in execution order)."""
    results = getattr(getattr(res, "result", None), "results", None) or []
    failures = []
    for node_result in results:
        status = str(getattr(node_result.status, "value", node_result.status)).lower()
        if status in FAILED_STATUSES:
            node = node_result.node
            message = node_result.message or f"{status} ({node_result.failures} failing rows)"
            failures.append(FailedNode(node.unique_id, status, one_line(str(message))))
    if not res.success and not failures and res.exception is not None:
        failures.append(exception_failure(res.exception))
    # on-run-start hooks come back as results too; they are not nodes of the DAG (nor of the progress bar).
    nodes = [r for r in results if getattr(getattr(r, "node", None), "resource_type", None) != "operation"]
    return DbtRunResult(bool(res.success), command, failures, len(nodes))


def exception_failure(exc: BaseException) -> FailedNode:
    """A dbt exception (e.g. the on-run-start completeness check) as a failed node with dbt's own message."""
    node = getattr(exc, "node", None)
    unique_id = getattr(node, "unique_id", None) or "dbt"
    return FailedNode(unique_id, "error", one_line(str(getattr(exc, "msg", None) or exc)))


def one_line(text: str) -> str:
    """Collapse dbt's multi-line messages (and ANSI colours) into one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join(text.split())


@contextmanager
def _working_db_env(settings: Settings) -> Iterator[None]:
    # profiles.yml reads the working database path and DuckDB's limits from the environment of this process.
    values = {WORKING_DB_ENV: str(settings.working_db), DBT_THREADS_ENV: str(settings.dbt_threads),
              **settings.duckdb_env(), **settings.spark_env()}
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
