"""Prefect flow `build`: render the rule seeds, then `dbt build` the working database for one month.

A thin skin over flows.lib.dbt_runner. Inside the flow, prefect-dbt's PrefectDbtRunner runs dbt
in-process and shows one Prefect task per dbt node; dbt itself still runs one node at a time
(threads: 1 in profiles.yml), so DuckDB keeps its single writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.lib.dbt_runner import DbtBuildError, DbtRunResult, prepare_seeds, run_dbt
from flows.months import parse_as_of
from flows.settings import Settings

__all__ = ["DbtBuildError", "build_flow"]

# Bound on waiting for the per-node task runs to finish reporting after dbt is done.
NODE_TASK_RUNS_TIMEOUT_S = 300.0


@task(name="prepare-seeds", cache_policy=NO_CACHE)
def prepare_seeds_task(settings: Settings) -> list[str]:
    """Validate the rules file and write the rule_*.csv seeds."""
    return [path.name for path in prepare_seeds(settings)]


def prefect_invoke(settings: Settings):
    """An `invoke` for run_dbt backed by PrefectDbtRunner (one task per node), keeping dbt's own exception."""
    from dbt_common.events.base_types import EventLevel
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    runner = PrefectDbtRunner(
        # Per-node task runs show each node's state; dbt's INFO chatter (START/PASS per node) would
        # only repeat that in the log, so the log keeps warnings and errors.
        settings=PrefectDbtSettings(project_dir=settings.dbt_project_dir, profiles_dir=settings.dbt_project_dir,
                                    log_level=EventLevel.WARN),
        raise_on_failure=False,
    )
    seen: dict[str, Any] = {}

    @runner.on_run_end
    def _keep_error(context) -> None:
        # PrefectDbtRunner re-raises dbt's exception as a ValueError with the whole command line in it.
        seen["error"] = context.error

    def invoke(args: list[str]) -> Any:
        before = set(threading.enumerate())
        try:
            return runner.invoke(args)
        except ValueError as exc:
            original = seen.get("error")
            if isinstance(original, BaseException):
                return _FailedInvocation(original)
            return _FailedInvocation(exc)
        finally:
            _wait_for_node_task_runs(before)

    return invoke


def _wait_for_node_task_runs(before: set[threading.Thread], timeout: float = NODE_TASK_RUNS_TIMEOUT_S) -> None:
    """Let every per-node task run finish reporting its state before the build flow returns.

    PrefectDbtRunner reports each node's task run from a daemon thread (`Thread-N (run_task)`) that it
    never joins; on a loaded machine dbt can finish before those threads do, and the flow then ends with
    task runs missing in the UI, or the interpreter exits under them ("can't register atexit after
    shutdown"). Waiting here, bounded, keeps every node's task run.
    """
    deadline = time.monotonic() + timeout
    pending = [t for t in threading.enumerate() if t not in before and t.name.endswith("(run_task)")]
    for thread in pending:
        thread.join(max(0.0, deadline - time.monotonic()))
    if still := sum(t.is_alive() for t in pending):
        logging.getLogger(__name__).warning("%d dbt node task run(s) still reporting after %.0f s", still, timeout)


class _FailedInvocation:
    """Stands in for a dbtRunnerResult when dbt raised before producing node results."""

    def __init__(self, exception: BaseException):
        self.success = False
        self.result = None
        self.exception = exception


@contextmanager
def _quiet_task_run_logs() -> Iterator[None]:
    """Drop the ~230 "Task run 'model …' - Finished in state Completed()" lines of a build: each node's task
    run shows its state in the UI, and failures still log at ERROR."""
    task_runs = logging.getLogger("prefect.task_runs")
    level = task_runs.level
    task_runs.setLevel(logging.WARNING)
    try:
        yield
    finally:
        task_runs.setLevel(level)


@flow(name="build")
def build_flow(warehouse: str, as_of: str, rules: str | None = None) -> DbtRunResult:
    """Build staging → marts for every evaluated month up to `as_of`; raise DbtBuildError naming the failure."""
    logger = get_run_logger()
    month = parse_as_of(as_of)
    settings = Settings.from_env(warehouse=warehouse, rules=rules)
    seeds = prepare_seeds_task(settings)
    logger.info("rule seeds written: %s", ", ".join(seeds))
    with _quiet_task_run_logs():
        result = run_dbt(["build"], settings, as_of=month, invoke=prefect_invoke(settings))
    if not result.success:
        logger.error(result.error_message())
        raise DbtBuildError(result.error_message())
    logger.info("dbt build for %s: %d nodes succeeded", month, result.nodes_run)
    return result
