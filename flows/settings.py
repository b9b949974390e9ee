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


@dataclass(frozen=True)
class Settings:
    """Paths of one warehouse and the knobs of a run.

    Environment: TIERING_WAREHOUSE (default ./warehouse), TIERING_RULES (default rules/tiering_rules.yml),
    TIERING_OK_WAIT_SECONDS / TIERING_OK_POLL_SECONDS (bounded wait for .ok files),
    TIERING_PUBLISH_POSTGRES (optional PostgreSQL URL the release is also published to),
    TIERING_DUCKDB_MEMORY_LIMIT / TIERING_DUCKDB_THREADS / TIERING_DUCKDB_TEMP_DIR (every DuckDB connection
    of the pipeline: a month larger than the memory limit spills to the temp folder instead of failing),
    TIERING_DBT_THREADS (dbt nodes run at once).
    """

    warehouse: Path
    rules_path: Path = DEFAULT_RULES
    ok_wait_seconds: float = 60.0
    ok_poll_seconds: float = 5.0
    dbt_project_dir: Path = field(default=DBT_PROJECT_DIR)
    publish_postgres: str | None = field(default=None, repr=False)  # repr=False: the URL may hold a password
    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT
    duckdb_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    duckdb_temp_dir: Path | None = None  # None: <warehouse>/tmp
    dbt_threads: int = DEFAULT_DBT_THREADS

    @classmethod
    def from_env(cls, warehouse: str | Path | None = None, rules: str | Path | None = None) -> Settings:
        """Settings from explicit arguments first, then the environment, then defaults."""
        env = os.environ
        return cls(
            warehouse=Path(warehouse or env.get("TIERING_WAREHOUSE") or "warehouse").resolve(),
            rules_path=Path(rules or env.get("TIERING_RULES") or DEFAULT_RULES).resolve(),
            ok_wait_seconds=_float(env, "TIERING_OK_WAIT_SECONDS", 60.0),
            ok_poll_seconds=_float(env, "TIERING_OK_POLL_SECONDS", 5.0),
            publish_postgres=env.get("TIERING_PUBLISH_POSTGRES") or None,
            duckdb_memory_limit=_memory(env, "TIERING_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
            duckdb_threads=_positive_int(env, "TIERING_DUCKDB_THREADS", os.cpu_count() or 1),
            duckdb_temp_dir=Path(env["TIERING_DUCKDB_TEMP_DIR"]).resolve() if env.get("TIERING_DUCKDB_TEMP_DIR")
            else None,
            dbt_threads=_positive_int(env, "TIERING_DBT_THREADS", DEFAULT_DBT_THREADS),
        )

    @property
    def working_db(self) -> Path:
        return self.warehouse / "tiering.duckdb"

    @property
    def published_db(self) -> Path:
        return self.warehouse / "published.duckdb"

    @property
    def exports_dir(self) -> Path:
        return self.warehouse / "exports"

    @property
    def reports_dir(self) -> Path:
        return self.warehouse / "reports"

    @property
    def temp_dir(self) -> Path:
        """Where DuckDB spills what does not fit in its memory limit."""
        return self.duckdb_temp_dir or self.warehouse / "tmp"

    def duckdb_config(self) -> dict[str, str]:
        """`config=` for duckdb.connect: memory limit, threads and spill folder of every pipeline connection."""
        return {"memory_limit": self.duckdb_memory_limit, "threads": str(self.duckdb_threads),
                "temp_directory": str(self.temp_dir)}

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
