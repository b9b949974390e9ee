"""`tiering backtest`: a candidate rules file evaluated on the published facts, nothing published."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from flows.cli import main
from flows.commands import backtest as backtest_module
from flows.commands.backtest import BacktestError, run_backtest
from flows.rules import RulesError
from flows.settings import DEFAULT_RULES
from tests.support.isolation import settings_for
from tests.support.rules_cases import INVALID, candidate_with


@pytest.fixture
def warehouse(published_warehouse, tmp_path) -> Path:
    _, source, _ = published_warehouse
    target = tmp_path / "warehouse"
    shutil.copytree(source, target)
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gold_line() -> str:
    return next(line for line in DEFAULT_RULES.read_text(encoding="utf-8").splitlines() if "{code: GOLD," in line)


def predicted_cib_tiers(published_db: Path, as_of, floors: list[Decimal], codes: list[str],
                        grace: list[int]) -> dict[str, str]:
    """Independent model: cib_monthly tiers at as_of from the published monthly AUM, fast up, slow down."""
    with duckdb.connect(str(published_db), read_only=True) as con:
        months = [m for (m,) in con.execute("select distinct as_of_month from customer_segment "
                                            "where as_of_month <= ? order by 1", [as_of]).fetchall()]
        rows = con.execute("select cust_id, as_of_month, avg_daily_aum_cny from customer_segment "
                           "where cust_type = 'P' and as_of_month <= ? order by 1, 2", [as_of]).fetchall()
    index = {m: i for i, m in enumerate(months)}
    state: dict[str, tuple[int, int, int]] = {}  # cust → (month index, held rank, months below)
    for cust_id, month, aum in rows:
        implied = max(rank for rank, floor in enumerate(floors) if aum >= floor or rank == 0)
        previous = state.get(cust_id)
        if previous is None or previous[0] + 1 != index[month]:
            state[cust_id] = (index[month], implied, 0)
            continue
        _, held, below = previous
        if implied >= held:
            state[cust_id] = (index[month], implied, 0)
        elif below + 1 < grace[held]:
            state[cust_id] = (index[month], held, below + 1)
        else:
            state[cust_id] = (index[month], implied, 0)
    last = index[as_of]
    return {cust: codes[rank] for cust, (i, rank, _) in state.items() if i == last}


def test_raised_gold_floor_moves_exactly_the_predicted_customers(warehouse, published_warehouse, tmp_path):
    as_of = published_warehouse[2]
    published, working = warehouse / "published.duckdb", warehouse / "tiering.duckdb"
    before = {path: sha256(path) for path in (published, working)}
    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))["rule_sets"]["cib_monthly"]["tiers"]
    codes = [t["code"] for t in rules]
    floors = [Decimal(t["floor_cny"]) for t in rules]
    grace = [t["grace_months"] for t in rules]
    # The independent model reproduces the published tiers with the shipped floors.
    with duckdb.connect(str(published), read_only=True) as con:
        current = dict(con.execute("select cust_id, value_tier from customer_segment "
                                   "where as_of_month = ? and cust_type = 'P'", [as_of]).fetchall())
        aum = dict(con.execute("select cust_id, avg_daily_aum_cny from customer_segment where as_of_month = ?",
                               [as_of]).fetchall())
    assert predicted_cib_tiers(published, as_of, floors, codes, grace) == current
    # Raise GOLD to the median AUM of this month's GOLD customers: some of them must fall to CORE.
    gold = codes.index("GOLD")
    gold_aums = sorted(aum[c] for c, tier in current.items() if tier == "GOLD")
    new_floor = gold_aums[len(gold_aums) // 2].to_integral_value()
    assert floors[gold] < new_floor < floors[gold + 1]
    line = gold_line()
    candidate = candidate_with(tmp_path, line, line.replace(f'"{floors[gold]}"', f'"{new_floor}"'))
    floors[gold] = new_floor
    predicted = predicted_cib_tiers(published, as_of, floors, codes, grace)
    expected = Counter((current[c], predicted[c]) for c in current if current[c] != predicted[c])
    assert expected, "the raised floor should move somebody"

    out = tmp_path / "report"
    result = run_backtest(candidate, as_of, settings_for(warehouse=warehouse), out)

    by_name = {c.name: c for c in result.classifications}
    for name in ("value_tier", "customer_tier.cib_monthly"):
        moved = Counter({(c.from_value, c.to_value): c.customers
                         for c in by_name[name].cells if c.from_value != c.to_value})
        assert moved == expected, name
        assert by_name[name].aum_moved_cny == sum(aum[c] for c in current if current[c] != predicted[c])
    assert by_name["customer_tier.abc_quarterly"].moved == 0
    assert by_name["customer_tier.corporate"].moved == 0
    assert {path: sha256(path) for path in (published, working)} == before
    assert not (out / "scratch").exists()
    with result.csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["classification", "from", "to", "customers", "aum_cny"]
    csv_moves = Counter({(r["from"], r["to"]): int(r["customers"]) for r in rows
                         if r["classification"] == "value_tier" and r["from"] != r["to"]})
    assert csv_moves == expected
    page = result.html_path.read_text(encoding="utf-8")
    assert "<style>" in page and not re.search(r"(src|href)=['\"]?(https?:)?//", page)


def test_unchanged_candidate_moves_nobody_and_cli_prints_the_report(warehouse, published_warehouse, tmp_path,
                                                                   capsys):
    as_of = published_warehouse[2]
    candidate = tmp_path / "same.yml"
    shutil.copy(DEFAULT_RULES, candidate)
    out = tmp_path / "report"
    code = main(["backtest", "--rules", str(candidate), "--as-of", f"{as_of:%Y-%m}",
                 "--warehouse", str(warehouse), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "customers moving" in printed and "value_tier" in printed
    with (out / "migration.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["from"] == r["to"] for r in rows)
    assert (out / "backtest.html").exists()




@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_candidate_is_refused_with_its_line_before_any_work(case, tmp_path, monkeypatch):
    old, new, problem = INVALID[case]
    candidate = candidate_with(tmp_path, old, new)
    expected_line = next(n for n, text in enumerate(candidate.read_text(encoding="utf-8").splitlines(), 1)
                         if new in text)
    started = []
    monkeypatch.setattr(backtest_module, "_prepare_scratch", lambda *a, **k: started.append(a))
    warehouse = tmp_path / "warehouse"  # not even needed: the candidate is refused first
    with pytest.raises(RulesError) as info:
        run_backtest(candidate, dt.date(2026, 3, 31), settings_for(warehouse=warehouse), tmp_path / "out")
    message = str(info.value)
    assert message.startswith(f"{candidate}, line {expected_line}: "), message
    assert problem in message and "\n" not in message
    assert not started and not (tmp_path / "out").exists() and not warehouse.exists()


def test_cli_refuses_an_invalid_candidate_in_one_line(tmp_path, capsys):
    candidate = candidate_with(tmp_path, 'floor_cny: "300000"', 'floor_cny: "50000"')
    code = main(["backtest", "--rules", str(candidate), "--as-of", "2026-03", "--warehouse", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2  # refused before any work, as a usage error
    assert err.startswith(f"tiering backtest: {candidate}, line ") and err.count("\n") == 1


def test_unpublished_month_is_refused(warehouse, tmp_path):
    with pytest.raises(BacktestError, match=r"2026-04 is not published \(published months: 2026-01 … 2026-03 \(3 months\)\)"):
        run_backtest(DEFAULT_RULES, dt.date(2026, 4, 30), settings_for(warehouse=warehouse), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_locked_working_database_is_refused_in_one_line(warehouse, published_warehouse, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(60)", str(warehouse / "tiering.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(BacktestError, match="is in use by a pipeline") as info:
            run_backtest(DEFAULT_RULES, published_warehouse[2], settings_for(warehouse=warehouse), tmp_path / "out")
        assert "\n" not in str(info.value) and time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def test_classification_columns_are_compared_when_both_sides_have_them(tmp_path):
    """Synthetic release and candidate: rfm_class in both, credit_grade only in the candidate."""
    from flows.commands.backtest import compare
    from flows.rules import load_rules

    as_of = dt.date(2026, 3, 31)
    segment = ("as_of_month date, cust_id varchar, avg_daily_aum_cny decimal(18,2), value_tier varchar, "
               "rfm_class varchar")
    tier = "as_of_month date, cust_id varchar, rule_set varchar, rule_set_version varchar, tier varchar"
    rows = [("P1", "100.00", "GOLD", "HHH", "HHL"), ("P2", "50.00", "CORE", "LLL", "LLL"),
            ("P3", "7.00", "CORE", None, "LHL")]
    for name, schema, pick in (("published", "main", 3), ("tiering", "main_marts", 4)):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            con.execute(f"create schema if not exists {schema}")
            extra = ", credit_grade varchar" if name == "tiering" else ""
            con.execute(f"create table {schema}.customer_segment ({segment}{extra})")
            con.execute(f"create table {schema}.customer_tier ({tier})")
            for cust, aum, value_tier, *classes in rows:
                values = [as_of, cust, Decimal(aum), value_tier, classes[pick - 3]] + (["LOW"] if extra else [])
                con.execute(f"insert into {schema}.customer_segment values ({', '.join('?' * len(values))})",
                            values)
                con.execute(f"insert into {schema}.customer_tier values (?, ?, 'cib_monthly', 'v', ?)",
                            [as_of, cust, value_tier])
    results, versions = compare(tmp_path / "published.duckdb", tmp_path / "tiering.duckdb", as_of,
                                load_rules(DEFAULT_RULES))
    by_name = {c.name: c for c in results}
    assert set(by_name) == {"value_tier", "rfm_class", "customer_tier.cib_monthly"}
    assert by_name["value_tier"].moved == 0
    rfm = by_name["rfm_class"]
    assert (rfm.moved, rfm.aum_moved_cny) == (2, Decimal("107.00"))
    assert rfm.count("(none)", "LHL") == 1 and rfm.count("HHH", "HHL") == 1
    assert versions == [("cib_monthly", "v", "v")]
