"""The Spark engine's pieces that need no Spark: settings, dbt arguments, type mapping, and that the DuckDB
default never loads the Spark engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.adapters.dbt_runner import dbt_args
from flows.adapters.spark_engine import _contract_orders, duckdb_type
from flows.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_comes_from_the_environment_and_is_checked(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TIERING_ENGINE", " Spark ")
    monkeypatch.setenv("TIERING_SPARK_WAREHOUSE", "/data/spark-warehouse")
    settings = Settings.from_env(warehouse=tmp_path)
    assert settings.engine == "spark" and settings.spark_warehouse_dir == "/data/spark-warehouse"
    assert dbt_args(["build"], settings)[-2:] == ["--target", "spark"]
    monkeypatch.setenv("TIERING_ENGINE", "postgres")
    with pytest.raises(ValueError, match="TIERING_ENGINE='postgres': choose one of duckdb, spark"):
        Settings.from_env(warehouse=tmp_path)


def test_duckdb_builds_with_the_default_target(tmp_path) -> None:
    settings = Settings(warehouse=tmp_path)
    assert settings.engine == "duckdb" and "--target" not in dbt_args(["build"], settings)
    assert settings.spark_warehouse_dir == str(tmp_path / "spark" / "warehouse")


def test_spark_column_types_map_to_duckdb_types() -> None:
    assert duckdb_type("decimal(38,8)") == "DECIMAL(38,8)"
    assert [duckdb_type(t) for t in ("string", "timestamp_ntz", "array<string>", "int")] == [
        "VARCHAR", "TIMESTAMP", "VARCHAR[]", "INTEGER"]
    with pytest.raises(ValueError, match="map<string,int>"):
        duckdb_type("map<string,int>")


def test_contract_column_order_comes_from_the_manifest(tmp_path) -> None:
    (tmp_path / "target").mkdir()
    node = {"resource_type": "model", "schema": "main_marts", "alias": "tier_summary",
            "config": {"contract": {"enforced": True}}, "columns": {"as_of_month": {}, "tier": {}}}
    loose = {**node, "alias": "scratch", "config": {"contract": {"enforced": False}}}
    (tmp_path / "target" / "manifest.json").write_text(json.dumps({"nodes": {"a": node, "b": loose}}))
    assert _contract_orders(tmp_path) == {("main_marts", "tier_summary"): ["as_of_month", "tier"]}
    assert _contract_orders(tmp_path / "nowhere") == {}


def test_the_duckdb_default_never_loads_the_spark_engine() -> None:
    """Nothing new to start on DuckDB: the pipeline's modules, CLI and gate load none of the Spark engine (GX
    imports pyspark's Python modules by itself when the package is installed; no JVM starts from that)."""
    code = ("import sys; import flows.cli, flows.pipeline, flows.stages.gate_checks, flows.stages.build, "
            "flows.stages.publishing; print(sorted(m for m in sys.modules if m.startswith(("
            "'flows.adapters.spark', 'flows.adapters.gx_spark', 'dbt.adapters.spark'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_backtest_on_the_spark_engine_stops_with_a_clear_message(tmp_path) -> None:
    import datetime as dt

    from flows.commands.backtest import BacktestError, run_backtest
    from flows.settings import DEFAULT_RULES

    settings = Settings(warehouse=tmp_path, engine="spark")
    with pytest.raises(BacktestError, match="builds on DuckDB only \\(TIERING_ENGINE=spark\\)"):
        run_backtest(DEFAULT_RULES, dt.date(2026, 3, 31), settings, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
