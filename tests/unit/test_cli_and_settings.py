"""The command line and settings: argument errors are one actionable line, settings fail loudly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.cli import main
from flows.months import complete_months, month_end, parse_as_of, parse_date
from flows.settings import DEFAULT_RULES, Settings


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


def test_dates_and_months():
    assert parse_date("20260105") == parse_date("2026-01-05") == dt.date(2026, 1, 5)
    assert month_end(dt.date(2023, 2, 10)) == dt.date(2023, 2, 28)
    # Only whole months inside the range count.
    assert complete_months(dt.date(2026, 1, 15), dt.date(2026, 4, 29)) == [dt.date(2026, 2, 28),
                                                                        dt.date(2026, 3, 31)]


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TIERING_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.delenv("TIERING_RULES", raising=False)
    settings = Settings.from_env()
    assert settings.working_db == tmp_path / "wh" / "tiering.duckdb"
    assert settings.published_db == tmp_path / "wh" / "published.duckdb"
    assert settings.rules_path == DEFAULT_RULES
    assert Settings.from_env(warehouse=tmp_path / "other").warehouse == tmp_path / "other"
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
