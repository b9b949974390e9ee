"""The two scheduled deployments of a warehouse and how `tiering serve` runs them.

- `daily-ingest/daily`: 02:00 Asia/Shanghai (18:00 UTC the day before), loads every pending batch of the
  landing folder; a batch whose files are late (no `.ok` yet) fails the run, which retries every 30 minutes,
  3 times.
- `tiering-run/monthly`: 06:00 Asia/Shanghai on the 1st (22:00 UTC on the last day of the previous month);
  `as_of` is left empty so the run evaluates the month before its scheduled start on the bank's calendar
  (flows.pipeline); retries twice, an hour apart, for late month-end files.

The crons are in the bank's zone; the Prefect UI shows every time in the browser's zone, so each description
states the run time in both zones (flows.months.schedule_text).

Each deployment's flow is the edge of its runs, as the CLI is of a command's: its parameters are plain text
(shown and editable in the UI), an `as_of` typed there is parsed by flows.months.parse_as_of when Prefect
validates the parameters, and the one Settings object of the run is built here and handed down.

Both hold the warehouse's global concurrency slot (limit 1) and lock file (flows.warehouse_lock); each deployment
enqueues a second run of itself instead of starting it. `prefect.yaml` declares the same deployments for
teams that run workers; tests/unit/test_deployments.py keeps the two in step.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from prefect import flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron
from pydantic import BeforeValidator

from flows.months import BANK_TIMEZONE, parse_as_of, schedule_text
from flows.pipeline import tiering_run
from flows.settings import Settings
from flows.stages.ingest import ingest_flow
from flows.warehouse_lock import warehouse_limit_name, warehouse_slot

DAILY_INGEST_CRON = "0 2 * * *"
MONTHLY_RUN_CRON = "0 6 1 * *"
DAILY_INGEST_RETRIES, DAILY_INGEST_RETRY_DELAY_SECONDS = 3, 1800
MONTHLY_RUN_RETRIES, MONTHLY_RUN_RETRY_DELAY_SECONDS = 2, 3600
DAILY_DEPLOYMENT, MONTHLY_DEPLOYMENT = "daily", "monthly"
# Shown on each deployment's page in the UI, beside upcoming runs in the browser's zone (prefect.yaml: the same).
UI_ZONE_NOTE = "the Prefect UI shows times in your browser's time zone"
DAILY_DESCRIPTION = (f"Runs {schedule_text(DAILY_INGEST_CRON)} ({UI_ZONE_NOTE}): load every pending batch "
                     "(late files retry).")
MONTHLY_DESCRIPTION = (f"Runs {schedule_text(MONTHLY_RUN_CRON)} ({UI_ZONE_NOTE}): ingest, build, gate, publish "
                       "and report the previous month (as_of empty = last day of the month before the scheduled "
                       "start, Asia/Shanghai).")

# A month's last day (or YYYY-MM) as a flow parameter: Prefect's parameter validation (pydantic) runs the
# CLI's parser on what the UI, the API or `prefect deployment run -p` sends, so a bad month fails the run
# before it starts, with the CLI's one-line message. The schema stays a date (the UI shows a date picker).
AsOf = Annotated[date, BeforeValidator(parse_as_of)]


@flow(name="daily-ingest", retries=DAILY_INGEST_RETRIES, retry_delay_seconds=DAILY_INGEST_RETRY_DELAY_SECONDS)
def daily_ingest(landing: str, warehouse: str | None = None, force: bool = False):
    """Load every complete, not yet loaded batch of `landing`; fail (and retry) if one is late or bad."""
    settings = Settings.from_env(warehouse=warehouse)
    with warehouse_slot(settings.warehouse, "daily-ingest flow"):
        # .fn: the ingest logs and the batch-load-summary artifact belong to this run, not a nested one.
        return ingest_flow.fn(landing=landing, settings=settings, force=force)


@flow(name="tiering-run", log_prints=True, retries=MONTHLY_RUN_RETRIES,
      retry_delay_seconds=MONTHLY_RUN_RETRY_DELAY_SECONDS)
def monthly_tiering_run(landing: str, as_of: AsOf | None = None, warehouse: str | None = None,
                        rules: str | None = None, force: bool = False, full_refresh: bool = False):
    """The monthly deployment's flow: `tiering run` with retries for late month-end files. `as_of` empty:
    the month before the run's scheduled start; `warehouse` and `rules` empty: $TIERING_WAREHOUSE and
    $TIERING_RULES, then the defaults."""
    settings = Settings.from_env(warehouse=warehouse, rules=rules)
    # .fn: this run is the tiering-run (its subflows, slot and scheduled start are this run's), not a parent.
    return tiering_run.fn(landing=landing, as_of=as_of, settings=settings, force=force, full_refresh=full_refresh)


def _one_at_a_time() -> ConcurrencyLimitConfig:
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def build_deployments(landing: Path, settings: Settings) -> list:
    """The daily and monthly RunnerDeployments of one landing folder and warehouse."""
    limit = warehouse_limit_name(settings.warehouse)
    tags = ["tiering", limit]
    daily = daily_ingest.to_deployment(
        name=DAILY_DEPLOYMENT, schedules=[Cron(DAILY_INGEST_CRON, timezone=BANK_TIMEZONE)],
        parameters={"landing": str(landing.resolve()), "warehouse": str(settings.warehouse)},
        concurrency_limit=_one_at_a_time(), tags=tags, entrypoint_type=EntrypointType.MODULE_PATH,
        description=DAILY_DESCRIPTION)
    monthly = monthly_tiering_run.to_deployment(
        name=MONTHLY_DEPLOYMENT, schedules=[Cron(MONTHLY_RUN_CRON, timezone=BANK_TIMEZONE)],
        parameters={"landing": str(landing.resolve()), "warehouse": str(settings.warehouse),
                    "rules": str(settings.rules_path)},
        concurrency_limit=_one_at_a_time(), tags=tags, entrypoint_type=EntrypointType.MODULE_PATH,
        description=MONTHLY_DESCRIPTION)
    return [daily, monthly]

