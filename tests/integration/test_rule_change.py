"""Changing one rule in the rules file changes the build and what `explain` says, with no other edit.

The class-A minimum tier goes from PLATINUM to BLACK: the month is rebuilt (the rules file changed),
published, and explain words the new bound from the published reason.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from flows.cli import main
from flows.settings import DEFAULT_RULES, Settings

pytestmark = pytest.mark.integration

CLASS_A_RULE = "A: {min_tier: PLATINUM, credit_grades: [LOW, NONE]}"
CLASS_A_CHANGED = "A: {min_tier: BLACK, credit_grades: [LOW, NONE]}"


def _published(warehouse, sql, params=()):
    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_changing_the_class_a_minimum_tier_reaches_the_build_and_explain(published_warehouse, tmp_path, capsys):
    from flows.pipeline import tiering_run

    landing, source, as_of = published_warehouse
    warehouse = tmp_path / "warehouse"
    shutil.copytree(source, warehouse, symlinks=True)
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    assert text.count(CLASS_A_RULE) == 1 and text.count('version: "2026.11.1"') == 1
    rules = tmp_path / "tiering_rules.yml"
    rules.write_text(text.replace(CLASS_A_RULE, CLASS_A_CHANGED)
                     .replace('version: "2026.11.1"', 'version: "2026.12.1"'), encoding="utf-8")
    before = dict(_published(warehouse, "select cust_id, customer_class from customer_segment "
                                        "where as_of_month = ? and cust_type = 'P'", [as_of]))

    tiering_run(landing=str(landing), as_of=as_of, settings=Settings.from_env(warehouse=warehouse, rules=rules))

    rows = _published(warehouse, "select cust_id, value_tier, credit_grade, customer_class, customer_class_reason, "
                                 "rules_version from customer_segment where as_of_month = ? and cust_type = 'P'",
                      [as_of])
    assert {r[5] for r in rows} == {"2026.12.1"}
    class_a = [r for r in rows if r[3] == "A"]
    assert all(r[1] in ("BLACK", "DIAMOND") for r in class_a)
    assert {r[4] for r in class_a} <= {"TIER_AT_LEAST=BLACK,CREDIT_GRADE_IN=LOW|NONE"}
    demoted = [r for r in rows if before[r[0]] == "A" and r[3] != "A"]
    assert demoted and all(r[1] == "PLATINUM" for r in demoted)

    cust_id, tier, grade, klass, _, _ = demoted[0]
    assert main(["explain", cust_id, "--warehouse", str(warehouse), "--as-of", as_of.isoformat()]) == 0
    out = capsys.readouterr().out
    assert f"class: {klass}" in out
    assert f"because: tier {tier} ≥ GOLD, credit grade {grade} not in HIGH" in out
    if class_a:
        assert main(["explain", class_a[0][0], "--warehouse", str(warehouse), "--as-of", as_of.isoformat()]) == 0
        assert f"because: tier {class_a[0][1]} ≥ BLACK, credit grade" in capsys.readouterr().out
