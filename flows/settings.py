"""One typed settings object: where things are and how long to wait, from arguments or environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DEFAULT_RULES = PROJECT_ROOT / "rules" / "tiering_rules.yml"


@dataclass(frozen=True)
class Settings:
    """Paths of one warehouse and the knobs of a run.

    Environment: TIERING_WAREHOUSE (default ./warehouse), TIERING_RULES (default rules/tiering_rules.yml),
    TIERING_OK_WAIT_SECONDS / TIERING_OK_POLL_SECONDS (bounded wait for .ok files),
    TIERING_PUBLISH_POSTGRES (optional PostgreSQL URL the release is also published to).
    """

    warehouse: Path
    rules_path: Path = DEFAULT_RULES
    ok_wait_seconds: float = 60.0
    ok_poll_seconds: float = 5.0
    dbt_project_dir: Path = field(default=DBT_PROJECT_DIR)
    publish_postgres: str | None = field(default=None, repr=False)  # repr=False: the URL may hold a password

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
