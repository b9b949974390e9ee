"""Prefect flow `build`: render the rule seeds, then `dbt build` the months of a run's plan, one by one.

A thin skin over flows.adapters.dbt_runner and flows.stages.month_plan. Each month is one `dbt build --vars
as_of=…` (one Prefect task run per month) with dbt's own threads in one process; every node's result (model,
test, seed, with its time) goes to the month's `dbt-node-results` artifact, so the Prefect UI shows each
node without a task run per node (DECISIONLOG O7). After each month's build, `audit.month_build` records
it: the plan of the next run starts from there.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.adapters.dbt_runner import DbtBuildError, DbtRunResult, prepare_seeds, run_dbt
from flows.faults import crash_point
from flows.reports import progress
from flows.reports.artifacts import publish_dbt_node_results
from flows.rules import load_rules
from flows.settings import Settings
from flows.stages.month_plan import record_month_build

__all__ = ["BuildResult", "DbtBuildError", "build_flow"]

# Unit tests pin logic, not data: they run in CI (`make test`), not in every production build.
PRODUCTION_BUILD = ["build", "--exclude-resource-type", "unit_test"]


@dataclass
class BuildResult:
    """The months a build flow built, with each month's dbt result and seconds."""

    months: list[dt.date] = field(default_factory=list)
    results: dict[dt.date, DbtRunResult] = field(default_factory=dict)
    seconds: dict[dt.date, float] = field(default_factory=dict)

    @property
    def nodes_run(self) -> int:
        return sum(r.nodes_run for r in self.results.values())


def _refresh_inputs(settings: Settings) -> int:
    """Point the raw views at this warehouse's files (they hold absolute paths: a moved warehouse reads on)
    and copy the tier-override log in: the build uses the overrides decided before it started. Returns the
    override log's rows."""
    import duckdb

    from flows.overrides import snapshot_into
    from flows.stages import raw_zone

    con = duckdb.connect(str(settings.working_db), config=settings.duckdb_config())
    try:
        raw_zone.refresh_views(con, settings.warehouse)
        actions = snapshot_into(con, settings)
    finally:
        con.close()
    if settings.engine == "spark":
        from flows.stages.spark_inputs import register_inputs

        # The same committed batches and override log, as Spark catalog partitions and views.
        register_inputs(settings)
    return actions


@task(name="prepare-seeds", cache_policy=NO_CACHE)
def prepare_seeds_task(settings: Settings) -> list[str]:
    """Validate the rules file and write the rule_*.csv seeds."""
    return [path.name for path in prepare_seeds(settings)]


class NodeProgress:
    """dbt event callback: counts finished nodes for the progress bar and keeps each node's result."""

    def __init__(self, stage: str):
        self.stage, self.done, self.total = stage, 0, None
        self.nodes: list[dict[str, Any]] = []

    def __call__(self, event: Any) -> None:
        name = event.info.name
        if name == "LogStartLine" and self.total is None:
            self.total = int(event.data.total)
            progress.report(self.stage, self.done, self.total)
        elif name == "NodeFinished":
            info = event.data.node_info
            self.done += 1
            self.nodes.append({"node": info.unique_id, "type": info.resource_type, "status": info.node_status,
                               "started": info.node_started_at, "finished": info.node_finished_at})
            progress.report(self.stage, self.done, self.total)
            crash_point("build:node-finished")


@task(name="dbt-build", cache_policy=NO_CACHE, task_run_name="dbt build {month:%Y-%m}")
def dbt_build_month(settings: Settings, month: dt.date, full_refresh: bool) -> DbtRunResult:
    """`dbt build` one month (models, seeds and data tests); the node results become an artifact."""
    nodes = NodeProgress(f"build {month:%Y-%m}")
    args = [*PRODUCTION_BUILD, *(["--full-refresh"] if full_refresh else [])]
    started = time.perf_counter()
    result = run_dbt(args, settings, as_of=month, callbacks=[nodes])
    publish_dbt_node_results(month, nodes.nodes, result, time.perf_counter() - started)
    return result


@flow(name="build")
def build_flow(months: list[dt.date], settings: Settings | None = None, full_refresh: bool = False,
               inputs_loaded_at: dict[dt.date, dt.datetime | None] | None = None) -> BuildResult:
    """Build the given months (their last days) in order (the first with `--full-refresh` when asked) in
    `settings`' warehouse with its rules (default: Settings.from_env(), for a direct call); raise
    DbtBuildError naming the first failing node. `inputs_loaded_at` (from the month plan) is recorded with
    each build."""
    logger = get_run_logger()
    settings = settings or Settings.from_env()
    seeds = prepare_seeds_task(settings)
    logger.debug("rule seeds written: %s", ", ".join(seeds))
    rules_version = load_rules(settings.rules_path).version
    override_actions = _refresh_inputs(settings)
    logger.info("tier-override log: %d action(s) as of this build", override_actions)
    outcome = BuildResult()
    for index, month in enumerate(months):
        started = time.perf_counter()
        result = dbt_build_month(settings, month, full_refresh and index == 0)
        if not result.success:
            logger.error(result.error_message())
            raise DbtBuildError(result.error_message())
        record_month_build(settings.working_db, month, (inputs_loaded_at or {}).get(month), rules_version,
                           settings.rules_path, full_refresh, dt.datetime.now())
        outcome.months.append(month)
        outcome.results[month] = result
        outcome.seconds[month] = time.perf_counter() - started
        logger.info("dbt build for %s: %d nodes succeeded in %.1f s", f"{month:%Y-%m}", result.nodes_run,
                    outcome.seconds[month])
    if settings.engine == "spark" and outcome.months:
        from flows.adapters.spark_engine import mount_built_tables

        # Publication, explain and the reports read the Spark build through the working DuckDB file.
        logger.info("Spark build: %d table(s) shown to %s", mount_built_tables(settings), settings.working_db.name)
    return outcome
