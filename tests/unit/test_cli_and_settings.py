"""The command line and settings: argument errors are one actionable line, settings fail loudly."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main
from flows.months import complete_months, month_end, month_runs, parse_as_of, parse_date
from flows.settings import DBT_PROJECT_DIR, DEFAULT_RULES, Settings


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-02-29", dt.date(2024, 2, 29)),
    ("2026-02", dt.date(2026, 2, 28)),
    ("2026-04-30", dt.date(2026, 4, 30)),
])
def test_parse_as_of_accepts_month_ends(text, expected):
    assert parse_as_of(text) == expected


def test_parse_as_of_rejects_a_mid_month_date_and_suggests_the_month_end():
    with pytest.raises(ValueError, match="did you mean 2026-03-31"):
        parse_as_of("2026-03-15")
    with pytest.raises(ValueError, match="not a date"):
        parse_as_of("March")


def test_parse_as_of_checks_a_date_the_same_way():
    # The deployment's parameter validation hands it a date as often as text (flows.deployments.AsOf).
    assert parse_as_of(dt.date(2026, 2, 28)) == dt.date(2026, 2, 28)
    with pytest.raises(ValueError, match=r"^as-of 2026-02-27 is not a month's last day: did you mean 2026-02-28\?$"):
        parse_as_of(dt.date(2026, 2, 27))


def test_dates_and_months():
    assert parse_date("20260105") == parse_date("2026-01-05") == dt.date(2026, 1, 5)
    assert month_end(dt.date(2023, 2, 10)) == dt.date(2023, 2, 28)
    # Only whole months inside the range count.
    assert complete_months(dt.date(2026, 1, 15), dt.date(2026, 4, 29)) == [dt.date(2026, 2, 28),
                                                                        dt.date(2026, 3, 31)]



def test_long_month_lists_are_grouped_in_runs():
    months = complete_months(dt.date(2026, 1, 1), dt.date(2028, 12, 31))  # 36 month ends
    assert month_runs(months) == "2026-01 … 2028-12 (36 months)"
    gaps = [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 5, 31), *months[6:9]]
    assert month_runs(gaps) == "2026-01, 2026-02, 2026-05, 2026-07 … 2026-09 (3 months)"
    assert month_runs([]) == ""


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TIERING_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.delenv("TIERING_RULES", raising=False)
    settings = Settings.from_env()
    assert settings.working_db == tmp_path / "wh" / "tiering.duckdb"
    assert settings.published_db == tmp_path / "wh" / "published.duckdb"
    assert settings.rules_path == DEFAULT_RULES
    assert Settings.from_env(warehouse=tmp_path / "other").warehouse == tmp_path / "other"
    monkeypatch.delenv("TIERING_DBT_PROJECT_DIR", raising=False)
    assert Settings.from_env().dbt_project_dir == DBT_PROJECT_DIR
    monkeypatch.setenv("TIERING_DBT_PROJECT_DIR", str(tmp_path / "dbt"))
    assert Settings.from_env().dbt_project_dir == tmp_path / "dbt"
    monkeypatch.setenv("TIERING_OK_WAIT_SECONDS", "soon")
    with pytest.raises(ValueError, match="TIERING_OK_WAIT_SECONDS"):
        Settings.from_env()


def test_run_with_a_bad_as_of_exits_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--landing", "x", "--as-of", "2026-03-15"])
    assert exit_info.value.code == 2
    assert "did you mean 2026-03-31" in capsys.readouterr().err


def test_failure_is_one_line_on_stderr(capsys, tmp_path: Path):
    code = main(["demo", "--dir", str(tmp_path), "--start", "2026-01-15"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tiering demo: failed: ") and "first day" in err


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "tiering run --landing" in out


def test_serve_without_a_server_says_how_to_start_one(tmp_path: Path):
    # A subprocess: in this test session a Prefect test server may be active, and serve would then start.
    (tmp_path / "landing").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path)}
    done = subprocess.run([str(Path(sys.executable).parent / "tiering"), "serve", "--landing",
                           str(tmp_path / "landing"), "--warehouse", str(tmp_path / "wh")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("tiering serve: failed: no Prefect server")
    assert "prefect server start" in done.stderr


@pytest.mark.parametrize("command", ["generate", "ingest", "run", "serve", "status", "explain", "backtest"])
def test_every_command_help_has_an_example(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "example:\n  " in capsys.readouterr().out
