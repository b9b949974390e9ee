"""Check before work: what a command was given is checked before Prefect starts or anything is read or written.

Every refusal is one line naming the problem and how to fix it, and costs well under 2 seconds (no Prefect,
dbt or Great Expectations import): a wrong path or a bad rules file no longer waits for a server start-up and an ingest.
The rules file goes through the same validator as `tiering backtest` (flows.rules_lines), so a problem
is named with its file and line.
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.settings import Settings


class PreflightError(ValueError):
    """An argument, path, setting or the rules file is unusable; nothing was started."""


def load_settings(warehouse: str | Path | None, rules: str | Path | None = None) -> Settings:
    """Settings from arguments and environment; a bad TIERING_* value is one line."""
    try:
        return Settings.from_env(warehouse=warehouse, rules=rules)
    except ValueError as exc:
        raise PreflightError(str(exc)) from None


def check_warehouse(warehouse: Path, *, must_exist: bool = False) -> None:
    """The warehouse is a folder this user can write, or one that can be created."""
    if warehouse.exists() and not warehouse.is_dir():
        raise PreflightError(f"warehouse {warehouse} is a file, not a folder (check --warehouse or "
                             f"$TIERING_WAREHOUSE)")
    if must_exist and not warehouse.is_dir():
        raise PreflightError(f"no warehouse at {warehouse} (check --warehouse or $TIERING_WAREHOUSE)")
    existing = warehouse
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"cannot create warehouse {warehouse}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write to warehouse" if existing == warehouse else f"create warehouse {warehouse}: no write access to"
        raise PreflightError(f"cannot {what} {existing}")


def check_landing(landing: Path) -> None:
    if not landing.exists():
        raise PreflightError(f"landing folder not found: {landing}")
    if not landing.is_dir():
        raise PreflightError(f"landing {landing} is a file, not a folder of <YYYYMMDD>/ batches")
    if not os.access(landing, os.R_OK | os.X_OK):
        raise PreflightError(f"landing folder {landing} is not readable")


def check_rules(rules_path: Path) -> str:
    """Validate the rules file as `tiering backtest` does; return its version."""
    from flows.rules import RulesError
    from flows.rules_lines import check_candidate

    try:
        return check_candidate(rules_path).version
    except RulesError as exc:
        raise PreflightError(str(exc)) from None


def check_postgres_url(url: str | None) -> None:
    """A URL or key=value string libpq can parse (whether the server answers is the publish step's check)."""
    if not url:
        return
    from psycopg.conninfo import conninfo_to_dict

    from flows.adapters.postgres_publish import redact_url

    try:
        conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - libpq's message quotes the string (and its password): not shown
        raise PreflightError(f"invalid PostgreSQL URL {redact_url(url)} (--publish-postgres or "
                             f"$TIERING_PUBLISH_POSTGRES)") from None


def check_prefect_start_timeout() -> float:
    from flows.adapters.local_server import start_timeout

    try:
        return start_timeout()
    except ValueError as exc:
        raise PreflightError(str(exc)) from None
