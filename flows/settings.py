"""One typed settings object: where things are and how long to wait, from arguments or environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DEFAULT_RULES = PROJECT_ROOT / "rules" / "tiering_rules.yml"
# DuckDB's own default is 80 % of RAM; a fixed bound keeps a 1 M-customer close within 6 GB (BENCHMARKS.md).
DEFAULT_MEMORY_LIMIT = "4GB"
# dbt nodes run in parallel in one process (DuckDB serves them from one database): tests overlap. Two, as the
# reference machine's cores: at 1 M customers more parallel heavy nodes only compete for the memory limit.
DEFAULT_DBT_THREADS = 2

# The warehouse layout (docs/ARCHITECTURE.md, "Warehouse layout"): each name below <warehouse> is given here
# once; code reaches the paths through Settings' properties (raw_zone and warehouse_lock, which work from a
# bare warehouse folder, use the names).
WORKING_DB = "tiering.duckdb"
PUBLISHED_DB = "published.duckdb"
RAW_DIR = "raw"
RELEASES_DIR = "releases"
EXPORTS_LINK = "exports"
RESTRICTED_DIR = "restricted"
RESTRICTED_DB = "aml.duckdb"
REPORTS_DIR = "reports"
BACKTESTS_DIR = "backtests"
LOCK_FILE = ".tiering.lock"
TEMP_DIR = "tmp"
POSTGRES_ENV = "TIERING_PUBLISH_POSTGRES"
SPARK_DIR = "spark"
# The engine dbt builds on: DuckDB in this process (default, nothing to start) or Spark (flows/adapters/spark_engine.py).
ENGINES = ("duckdb", "spark")
SPARK_METHODS = ("session", "thrift")


@dataclass(frozen=True)
class Settings:
    """Paths of one warehouse and the knobs of a run: built once where a command or a deployment's run
    starts, then handed to every flow and function of that run (never rebuilt on the way).

    Environment: TIERING_WAREHOUSE (default ./warehouse), TIERING_RULES (default rules/tiering_rules.yml),
    TIERING_OK_WAIT_SECONDS / TIERING_OK_POLL_SECONDS (bounded wait for .ok files),
    TIERING_PUBLISH_POSTGRES (optional PostgreSQL URL the release is also published to),
    TIERING_DUCKDB_MEMORY_LIMIT / TIERING_DUCKDB_THREADS / TIERING_DUCKDB_TEMP_DIR (every DuckDB connection
    of the pipeline: a month larger than the memory limit spills to the temp folder instead of failing),
    TIERING_DBT_THREADS (dbt nodes run at once), TIERING_DBT_PROJECT_DIR (the dbt project a run builds with and
    writes its rule seeds, target/ and logs/ into; the tests give each pytest worker its own copy).

    A frozen dataclass, not a pydantic model: Prefect validates it as a flow parameter by identity (the
    subflows get this very object) and stores it as its fields (`dataclasses.asdict`), and the CLI's
    refusals stay free of a pydantic import. The PostgreSQL URL is therefore no field: it may hold a
    password, and Prefect stores and shows flow parameters (see `publish_postgres`).
    """

    warehouse: Path
    rules_path: Path = DEFAULT_RULES
    ok_wait_seconds: float = 60.0
    ok_poll_seconds: float = 5.0
    dbt_project_dir: Path = field(default=DBT_PROJECT_DIR)
    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT
    duckdb_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    duckdb_temp_dir: Path | None = None  # None: <warehouse>/tmp
    dbt_threads: int = DEFAULT_DBT_THREADS
    engine: str = "duckdb"
    spark_method: str = "session"
    spark_master: str = "local[2]"
    spark_host: str = "localhost"
    spark_port: int = 10000
    spark_warehouse: str | None = None  # None: <warehouse>/spark/warehouse
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = 4

    def __post_init__(self) -> None:
        # Every path below is derived from an absolute warehouse: two Settings of one folder are equal, and
        # release manifests name files relative to it.
        object.__setattr__(self, "warehouse", Path(self.warehouse).resolve())
        if self.engine not in ENGINES:
            raise ValueError(f"TIERING_ENGINE={self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.spark_method not in SPARK_METHODS:
            raise ValueError(f"TIERING_SPARK_METHOD={self.spark_method!r}: choose one of {', '.join(SPARK_METHODS)}")

    @classmethod
    def from_env(cls, warehouse: str | Path | None = None, rules: str | Path | None = None) -> Settings:
        """Settings from explicit arguments first, then the environment, then defaults."""
        env = os.environ
        return cls(
            warehouse=Path(warehouse or env.get("TIERING_WAREHOUSE") or "warehouse").resolve(),
            rules_path=Path(rules or env.get("TIERING_RULES") or DEFAULT_RULES).resolve(),
            ok_wait_seconds=_float(env, "TIERING_OK_WAIT_SECONDS", 60.0),
            ok_poll_seconds=_float(env, "TIERING_OK_POLL_SECONDS", 5.0),
            dbt_project_dir=Path(env.get("TIERING_DBT_PROJECT_DIR") or DBT_PROJECT_DIR).resolve(),
            duckdb_memory_limit=_memory(env, "TIERING_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
            duckdb_threads=_positive_int(env, "TIERING_DUCKDB_THREADS", os.cpu_count() or 1),
            duckdb_temp_dir=Path(env["TIERING_DUCKDB_TEMP_DIR"]).resolve() if env.get("TIERING_DUCKDB_TEMP_DIR")
            else None,
            dbt_threads=_positive_int(env, "TIERING_DBT_THREADS", DEFAULT_DBT_THREADS),
            engine=(env.get("TIERING_ENGINE") or "duckdb").strip().lower(),
            spark_method=(env.get("TIERING_SPARK_METHOD") or "session").strip().lower(),
            spark_master=env.get("TIERING_SPARK_MASTER") or "local[2]",
            spark_host=env.get("TIERING_SPARK_HOST") or "localhost",
            spark_port=_positive_int(env, "TIERING_SPARK_PORT", 10000),
            spark_warehouse=env.get("TIERING_SPARK_WAREHOUSE") or None,
            spark_driver_memory=env.get("TIERING_SPARK_DRIVER_MEMORY") or "2g",
            spark_shuffle_partitions=_positive_int(env, "TIERING_SPARK_SHUFFLE_PARTITIONS", 4),
        )

    @property
    def publish_postgres(self) -> str | None:
        """The PostgreSQL URL the release is also published to ($TIERING_PUBLISH_POSTGRES, which
        `--publish-postgres` sets), or None. Read from the environment, never held in the object: Settings
        travels as a Prefect flow parameter, and the URL may hold a password."""
        return os.environ.get(POSTGRES_ENV) or None

    # --- the warehouse layout -------------------------------------------------------------------------

    @property
    def working_db(self) -> Path:
        """Working database: audit, raw views, ingest state, dbt layers, gate results (the pipeline only)."""
        return self.warehouse / WORKING_DB

    @property
    def published_db(self) -> Path:
        """Consumer catalog: views over the current release, release_log, release_months."""
        return self.warehouse / PUBLISHED_DB

    @property
    def raw_dir(self) -> Path:
        """The raw zone: raw/cbs_<table>/batch_date=<date>/load-<load_id>/part.parquet."""
        return self.warehouse / RAW_DIR

    @property
    def releases_dir(self) -> Path:
        """One folder per kept release: releases/<release_id>/<table>/as_of_month=<date>/data.parquet."""
        return self.warehouse / RELEASES_DIR

    @property
    def exports_dir(self) -> Path:
        """Symlink to the current release folder (relative: releases/<release_id>)."""
        return self.warehouse / EXPORTS_LINK

    @property
    def restricted_dir(self) -> Path:
        """AML staff only (0700): the AML release and the AML pages."""
        return self.warehouse / RESTRICTED_DIR

    @property
    def restricted_db(self) -> Path:
        """The AML release's catalog, restricted/aml.duckdb."""
        return self.restricted_dir / RESTRICTED_DB

    @property
    def restricted_releases_dir(self) -> Path:
        """The AML release folders, restricted/releases/<release_id>/."""
        return self.restricted_dir / RELEASES_DIR

    @property
    def reports_dir(self) -> Path:
        """reports/<YYYY-MM>/: release report, gate page, dbt docs (nothing about AML)."""
        return self.warehouse / REPORTS_DIR

    @property
    def restricted_reports_dir(self) -> Path:
        """restricted/reports/<YYYY-MM>/: the AML gate results, report and dbt docs."""
        return self.restricted_dir / REPORTS_DIR

    @property
    def backtests_dir(self) -> Path:
        """Default home of back-test reports: backtests/<YYYY-MM>-<timestamp>/."""
        return self.warehouse / BACKTESTS_DIR

    @property
    def lock_file(self) -> Path:
        """The warehouse lock every writer takes (flows.warehouse_lock)."""
        return self.warehouse / LOCK_FILE

    @property
    def temp_dir(self) -> Path:
        """Where DuckDB spills what does not fit in its memory limit."""
        return self.duckdb_temp_dir or self.warehouse / TEMP_DIR

    @property
    def spark_dir(self) -> Path:
        """The local Spark session's metastore and the Spark build's input copies (engine spark)."""
        return self.warehouse / SPARK_DIR

    @property
    def spark_warehouse_dir(self) -> str:
        """Where Spark keeps the tables dbt builds (TIERING_SPARK_WAREHOUSE, e.g. a cluster's hdfs:// or
        s3a:// location; default <warehouse>/spark/warehouse)."""
        return self.spark_warehouse or str(self.spark_dir / "warehouse")

    def duckdb_config(self) -> dict[str, str]:
        """`config=` for duckdb.connect: memory limit, threads and spill folder of every pipeline connection."""
        return {"memory_limit": self.duckdb_memory_limit, "threads": str(self.duckdb_threads),
                "temp_directory": str(self.temp_dir)}

    def spark_env(self) -> dict[str, str]:
        """The Spark target's connection for dbt's profile (profiles.yml reads it from the environment)."""
        return {"TIERING_SPARK_METHOD": self.spark_method, "TIERING_SPARK_HOST": self.spark_host,
                "TIERING_SPARK_PORT": str(self.spark_port)}

    def duckdb_env(self) -> dict[str, str]:
        """The same settings for dbt's profile (profiles.yml reads them from the environment)."""
        return {"TIERING_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
                "TIERING_DUCKDB_THREADS": str(self.duckdb_threads),
                "TIERING_DUCKDB_TEMP_DIR": str(self.temp_dir)}


def _float(env: os._Environ | dict, key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{key}={raw!r} must be ≥ 0")
    return value


def _memory(env: os._Environ | dict, key: str, default: str) -> str:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|%)", raw, flags=re.IGNORECASE):
        raise ValueError(f"{key}={raw!r} is not a memory size such as 4GB or 512MB")
    return raw


def _positive_int(env: os._Environ | dict, key: str, default: int) -> int:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{key}={raw!r} must be a whole number ≥ 1")
    return int(raw)
