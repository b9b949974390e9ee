"""The scheduled deployments: schedules, parameters, retries, one run per warehouse, prefect.yaml in step."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

import flows  # noqa: F401  (no-telemetry environment before Prefect loads)
from flows import deployments
from flows.deployments import build_deployments
from flows.months import previous_month_end, schedule_text
from flows.settings import PROJECT_ROOT, Settings
from flows.warehouse_lock import warehouse_limit_name

UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(("moment", "expected"), [
    # 06:00 on 1 March in Shanghai is 22:00 UTC on 28 February: the bank's calendar decides.
    (datetime(2026, 2, 28, 22, 0, tzinfo=UTC), date(2026, 2, 28)),
    (datetime(2026, 3, 1, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai")), date(2026, 2, 28)),
    (datetime(2028, 3, 1, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai")), date(2028, 2, 29)),
    (datetime(2027, 1, 1, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai")), date(2026, 12, 31)),
    (datetime(2026, 7, 15, 12, 0), date(2026, 6, 30)),  # naive: taken as local
])
def test_previous_month_end_is_in_shanghai_time(moment, expected):
    assert previous_month_end(moment) == expected


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 2 * * *", "02:00 Asia/Shanghai every day = 18:00 UTC the day before"),
    ("0 6 1 * *", "06:00 Asia/Shanghai on the 1st = 22:00 UTC on the last day of the previous month"),
    ("30 9 * * *", "09:30 Asia/Shanghai every day = 01:30 UTC the same day"),
    ("0 7 22 * *", "07:00 Asia/Shanghai on the 22nd = 23:00 UTC on the 21st"),
])
def test_schedules_are_described_in_the_bank_zone_and_utc(cron, expected):
    assert schedule_text(cron) == expected


def test_build_deployments_schedules_parameters_and_limits(tmp_path: Path):
    settings = Settings.from_env(warehouse=tmp_path / "wh")
    daily, monthly = build_deployments(tmp_path / "landing", settings)

    assert (daily.flow_name, daily.name) == ("daily-ingest", "daily")
    assert (monthly.flow_name, monthly.name) == ("tiering-run", "monthly")
    for deployment, cron in ((daily, "0 2 * * *"), (monthly, "0 6 1 * *")):
        (schedule,) = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, "Asia/Shanghai")
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert warehouse_limit_name(settings.warehouse) in deployment.tags
        assert deployment.parameters["warehouse"] == str(settings.warehouse)
        assert deployment.parameters["landing"] == str((tmp_path / "landing").resolve())
    # The UI shows upcoming runs in the browser's zone: the description says the run time in both.
    assert daily.description.startswith("Runs 02:00 Asia/Shanghai every day = 18:00 UTC the day before")
    assert "22:00 UTC on the last day of the previous month" in monthly.description
    # The monthly run leaves as_of empty: the flow takes the month before its scheduled start.
    assert "as_of" not in monthly.parameters
    assert monthly.parameters["rules"] == str(settings.rules_path)


def test_deployment_entrypoints_load_the_flows_with_retries(tmp_path: Path):
    from prefect.flows import load_flow_from_entrypoint

    daily, monthly = build_deployments(tmp_path / "landing", Settings.from_env(warehouse=tmp_path / "wh"))
    daily_flow = load_flow_from_entrypoint(daily.entrypoint)
    monthly_flow = load_flow_from_entrypoint(monthly.entrypoint)
    assert (daily_flow.name, daily_flow.retries, daily_flow.retry_delay_seconds) == ("daily-ingest", 3, 1800)
    assert (monthly_flow.name, monthly_flow.retries, monthly_flow.retry_delay_seconds) == ("tiering-run", 2, 3600)


def test_prefect_yaml_declares_the_same_deployments():
    spec = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"]}
    assert set(declared) == {deployments.DAILY_DEPLOYMENT, deployments.MONTHLY_DEPLOYMENT}
    for name, cron, attribute, description in (
            (deployments.DAILY_DEPLOYMENT, deployments.DAILY_INGEST_CRON, "daily_ingest",
             deployments.DAILY_DESCRIPTION),
            (deployments.MONTHLY_DEPLOYMENT, deployments.MONTHLY_RUN_CRON, "monthly_tiering_run",
             deployments.MONTHLY_DESCRIPTION)):
        entry = declared[name]
        assert entry["schedules"] == [{"cron": cron, "timezone": deployments.BANK_TIMEZONE}]
        assert entry["description"] == description
        assert entry["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        assert entry["entrypoint"] == f"flows/deployments.py:{attribute}"
        assert (PROJECT_ROOT / entry["entrypoint"].split(":")[0]).is_file()
        assert hasattr(deployments, attribute)
        assert "as_of" not in entry["parameters"]


def test_warehouse_limit_name_is_stable_unique_and_valid(tmp_path: Path):
    a, b = tmp_path / "bank A" / "warehouse", tmp_path / "bank-b" / "warehouse"
    assert warehouse_limit_name(a) == warehouse_limit_name(a / ".." / "warehouse")
    assert warehouse_limit_name(a) != warehouse_limit_name(b)
    for name in (warehouse_limit_name(a), warehouse_limit_name(tmp_path / "仓库")):
        assert name.startswith("tiering-warehouse-")
        assert all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in name), name
