"""Check before work: every misuse is refused in one line before Prefect, dbt or Great Expectations is even imported,
and nothing is written (the misuse table of issue 9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.rules_cases import INVALID, candidate_with

# Runs the CLI in a fresh interpreter and reports which heavy packages the refusal imported.
DRIVER = ("import sys; from flows.cli import main; code = main(sys.argv[1:]); "
          "print('IMPORTED', *sorted(m for m in ('prefect', 'dbt', 'great_expectations') "
          "if m in sys.modules)); sys.exit(code)")

MORE_INVALID = {
    # name: (old text, new text, problem in the message)
    "YAML syntax error": ("active_rule_set: cib_monthly", "active_rule_set: [cib_monthly", "not valid YAML"),
    "negative floor": ('floor_cny: "300000"', 'floor_cny: "-300000"', "must be a non-negative number"),
    "thousands separator": ('floor_cny: "300000"', 'floor_cny: "10,000"', "'10,000' is not a number"),
}


def tiering(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    result = subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, env=env,
                            cwd=cwd, timeout=120)
    imported = next(line for line in result.stdout.splitlines() if line.startswith("IMPORTED")).split()[1:]
    return result.returncode, result.stderr, imported


def assert_refused(code: int, err: str, imported: list[str], command: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith(f"tiering {command}: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert imported == [], f"refusal imported {imported}"


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("case", [*INVALID, *MORE_INVALID])
def test_a_bad_rules_file_is_refused_with_its_line_before_any_work(case, tmp_path, landing):
    old, new, problem = {**INVALID, **MORE_INVALID}[case]
    rules = candidate_with(tmp_path, old, new)
    warehouse = tmp_path / "warehouse"
    code, err, imported = tiering("run", "--landing", str(landing), "--as-of", "2026-10",
                                  "--warehouse", str(warehouse), "--rules", str(rules))
    assert_refused(code, err, imported, "run", f"{rules}, line ", problem)
    assert not warehouse.exists()


def test_a_missing_landing_folder_is_refused(tmp_path):
    warehouse = tmp_path / "warehouse"
    for command in (["run", "--as-of", "2026-10"], ["ingest"]):
        code, err, imported = tiering(*command, "--landing", str(tmp_path / "nowhere"), "--warehouse",
                                      str(warehouse))
        assert_refused(code, err, imported, command[0], f"landing folder not found: {tmp_path / 'nowhere'}")
    assert not warehouse.exists()


def test_a_warehouse_that_is_a_file_is_refused(tmp_path, landing):
    file = tmp_path / "warehouse.txt"
    file.write_text("not a folder")
    for command in (["run", "--landing", str(landing), "--as-of", "2026-10"], ["ingest", "--landing", str(landing)],
                    ["backtest", "--rules", "rules/tiering_rules.yml", "--as-of", "2026-10"]):
        code, err, imported = tiering(*command, "--warehouse", str(file), cwd=Path(__file__).parents[2])
        assert_refused(code, err, imported, command[0], f"warehouse {file} is a file, not a folder")
    assert file.read_text() == "not a folder"


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("TIERING_PREFECT_START_SECONDS", "soon", "is not a number of seconds"),
    ("TIERING_DUCKDB_MEMORY_LIMIT", "lots", "is not a memory size"),
    ("TIERING_PUBLISH_POSTGRES", "postgresql://tiering:s3cret@[db", "invalid PostgreSQL URL"),
])
def test_a_bad_setting_is_refused(variable, value, problem, tmp_path, landing):
    import os

    env = os.environ | {variable: value}
    code, err, imported = tiering("run", "--landing", str(landing), "--as-of", "2026-10", "--warehouse",
                                  str(tmp_path / "warehouse"), env=env)
    assert_refused(code, err, imported, "run", problem)
    assert "s3cret" not in err  # a password never reaches a message
    assert not (tmp_path / "warehouse").exists()
