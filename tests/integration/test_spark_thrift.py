"""dbt-spark's `thrift` method against a real Spark Thrift server started from the pip pyspark
(flows/adapters/spark_thrift.py): dbt seeds a rule table through it, and PyHive reads it back exactly."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from flows.adapters.spark_thrift import local_thrift_server
from tests.support.isolation import copy_dbt_project, free_port
from tests.support.system_packages import require

pytestmark = [pytest.mark.spark, pytest.mark.integration]

SEED = "rule_value_tiers"


def _expected(seeds: Path) -> list[tuple]:
    """The seed CSV in the types dbt_project.yml gives it (floor_cny decimal(18,2))."""
    with (seeds / f"{SEED}.csv").open(encoding="utf-8", newline="") as handle:
        return sorted((row["rule_set"], row["rule_set_version"], row["measure"], row["is_active"] == "true",
                       row["tier_code"], row["tier_name"], int(row["tier_rank"]),
                       Decimal(row["floor_cny"]).quantize(Decimal("0.01")), int(row["grace_months"]))
                      for row in csv.DictReader(handle))


def test_dbt_seeds_through_a_local_thrift_server(tmp_path):
    require("Java ≥ 17 (openjdk-17-jre-headless)", bool(shutil.which("java") or os.environ.get("JAVA_HOME")))
    from pyhive import hive

    project = copy_dbt_project(tmp_path / "dbt_project")
    port = free_port()
    env = {**os.environ, "TIERING_SPARK_METHOD": "thrift", "TIERING_SPARK_HOST": "127.0.0.1",
           "TIERING_SPARK_PORT": str(port), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = [str(Path(sys.executable).with_name("dbt")), "seed", "--target", "spark", "--select", SEED,
           "--project-dir", str(project), "--profiles-dir", str(project)]
    started = time.monotonic()
    with local_thrift_server(tmp_path / "warehouse" / "spark", port):
        listening = time.monotonic()
        done = subprocess.run(dbt, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:]
        seeded = time.monotonic()
        connection = hive.connect(host="127.0.0.1", port=port, username="tiering")
        try:
            cursor = connection.cursor()
            cursor.execute(f"SELECT * FROM main_rules.{SEED}")
            rows = sorted(cursor.fetchall())
            cursor.execute(f"DESCRIBE main_rules.{SEED}")
            types = {name: data_type for name, data_type, _ in cursor.fetchall()}
        finally:
            connection.close()
    print(f"thrift server listening after {listening - started:.1f} s, dbt seed {seeded - listening:.1f} s")

    assert types["floor_cny"] == "decimal(18,2)"
    assert rows == _expected(project / "seeds")
    # Exact decimals, not floats that happen to compare equal: the tier floors keep their two places.
    assert all(type(row[7]) is Decimal and row[7].as_tuple().exponent == -2 for row in rows)
