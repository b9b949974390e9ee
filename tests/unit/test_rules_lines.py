"""flows.rules_lines: key paths → lines, and candidates refused with the line of their problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.rules import RulesError
from flows.rules_lines import check_candidate, line_map
from flows.settings import DEFAULT_RULES

SHIPPED = DEFAULT_RULES.read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "candidate.yml"
    path.write_text(text, encoding="utf-8")
    return path


def replaced(old: str, new: str) -> str:
    assert SHIPPED.count(old) == 1, old
    return SHIPPED.replace(old, new)


def test_line_map_names_keys_and_list_items():
    text = "a: 1\nb:\n  c:\n    - {x: 1}\n    - x: 2\n      y: 3\n"
    lines = line_map(text)
    assert lines["a"] == 1 and lines["b"] == 2 and lines["b.c"] == 3
    assert lines["b.c[0]"] == 4 and lines["b.c[0].x"] == 4
    assert lines["b.c[1]"] == 5 and lines["b.c[1].y"] == 6


def test_line_map_of_the_shipped_rules():
    lines = line_map(SHIPPED)
    assert lines["rule_sets.cib_monthly.tiers[2]"] == line_of(SHIPPED, "{code: GOLD,")
    assert lines["active_rule_set"] == line_of(SHIPPED, "active_rule_set:")


def test_the_shipped_rules_pass(tmp_path):
    assert check_candidate(write(tmp_path, SHIPPED)).version


@pytest.mark.parametrize(("old", "new", "path", "problem"), [
    ('PLATINUM, name: 白金客户,     floor_cny: "300000"', 'PLATINUM, name: 白金客户,     floor_cny: "100000"', "rule_sets.cib_monthly.tiers[3]", "must be above the tier below"),
    ('floor_cny: "1000000", grace_months: 3}\n      #', 'floor_cny: "200000", grace_months: 3}\n      #',
     "rule_sets.cib_monthly.tiers[4]", "floor of BLACK (200000) must be above the tier below (300000)"),
    ('{code: STANDARD,      name: 普通客户, floor_cny: "0"', '{code: STANDARD,      name: 普通客户, floor_cny: "5"',
     "rule_sets.abc_quarterly.tiers[0]", "the lowest tier's floor must be 0"),
    ("measure: avg_daily_aum_3m", "measure: avg_daily_aum_6m", "rule_sets.abc_quarterly.measure",
     "measure 'avg_daily_aum_6m' is not one of"),
    ("aum_product_types: [CASA, TD, WM, FUND, INS, GOLD]", "aum_product_types: [CASA, TD, WM, FUND, INS, SILVER]",
     "aum_product_types[5]", "unknown product type 'SILVER'"),
    ("cust_types: [C, I, F]", "cust_types: [C, X, F]", "corporate_tiers.cust_types[1]", "'X' is not C, I or F"),
    ("{code: GOLD,     name: 黄金客户,", "{code: GOLD,", "rule_sets.cib_monthly.tiers[2]", "missing 'name'"),
    ("{code: PLATINUM, name: 白金客户,", "{code: GOLD, name: 白金客户,", "rule_sets.cib_monthly.tiers[3]",
     "duplicate tier code"),
    ("active_rule_set: cib_monthly", "active_rule_set: cib_weekly", "active_rule_set", "is not a rule set"),
    ('deposit_floor_cny: "100000000"', 'deposit_floor_cny: "1000"', "corporate_tiers.tiers[2]",
     "floor of STRATEGIC (1000)"),
])
def test_problem_is_named_with_its_line_and_path(tmp_path, old, new, path, problem):
    text = replaced(old, new)
    candidate = write(tmp_path, text)
    with pytest.raises(RulesError) as info:
        check_candidate(candidate)
    expected_line = line_of(text, new.splitlines()[0])
    message = str(info.value)
    assert message.startswith(f"{candidate}, line {expected_line}: {path}: "), message
    assert problem in message


def test_missing_top_level_key_points_at_the_document(tmp_path):
    candidate = write(tmp_path, replaced('version: "2026.11.1"\n', ""))
    with pytest.raises(RulesError, match=r", line 1: \(document\): missing 'version'$"):
        check_candidate(candidate)


def test_yaml_syntax_error_names_its_line(tmp_path):
    text = replaced("active_rule_set: cib_monthly", "active_rule_set: cib_monthly\n  bad: [indent")
    candidate = write(tmp_path, text)
    with pytest.raises(RulesError) as info:
        check_candidate(candidate)
    assert f"{candidate}, line " in str(info.value) and "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_key_is_refused(tmp_path):
    text = replaced("active_rule_set: cib_monthly", "active_rule_set: cib_monthly\nactive_rule_set: abc_quarterly")
    candidate = write(tmp_path, text)
    with pytest.raises(RulesError, match=r"line \d+: active_rule_set: duplicate key 'active_rule_set'"):
        check_candidate(candidate)


def test_missing_file(tmp_path):
    with pytest.raises(RulesError, match="rules file not found"):
        check_candidate(tmp_path / "nope.yml")
