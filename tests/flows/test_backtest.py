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
from flows.commands.backtest import MOVER_COLUMNS, BacktestError, run_backtest
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


def tier_line(code: str) -> str:
    return next(line for line in DEFAULT_RULES.read_text(encoding="utf-8").splitlines() if f"{{code: {code}," in line)


def predicted_cib_tiers(published_db: Path, as_of, floors: list[Decimal], codes: list[str], grace: list[int],
                        candidate: tuple[list[Decimal], list[int]] | None = None) -> dict[str, str]:
    """Independent model: cib_monthly tiers at as_of from the published monthly AUM, fast up, slow down; with
    `candidate` (floors, grace), those apply from as_of on (grace counted from as_of)."""
    with duckdb.connect(str(published_db), read_only=True) as con:
        months = [m for (m,) in con.execute("select distinct as_of_month from customer_segment "
                                            "where as_of_month <= ? order by 1", [as_of]).fetchall()]
        rows = con.execute("select cust_id, as_of_month, avg_daily_aum_cny from customer_segment "
                           "where cust_type = 'P' and as_of_month <= ? order by 1, 2", [as_of]).fetchall()
    index = {m: i for i, m in enumerate(months)}
    state: dict[str, tuple[int, int, int]] = {}  # cust → (month index, held rank, months below)
    for cust_id, month, aum in rows:
        month_floors, month_grace = candidate if candidate and month == as_of else (floors, grace)
        implied = max(rank for rank, floor in enumerate(month_floors) if aum >= floor or rank == 0)
        previous = state.get(cust_id)
        if previous is None or previous[0] + 1 != index[month]:
            state[cust_id] = (index[month], implied, 0)
            continue
        _, held, below = previous
        if implied >= held:
            state[cust_id] = (index[month], implied, 0)
        elif below + 1 < month_grace[held]:
            state[cust_id] = (index[month], held, below + 1)
        else:
            state[cust_id] = (index[month], implied, 0)
    last = index[as_of]
    return {cust: codes[rank] for cust, (i, rank, _) in state.items() if i == last}


def test_candidate_applies_from_the_month_with_grace_counted_from_it(warehouse, published_warehouse, tmp_path):
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
        previous = dict(con.execute(
            "select cust_id, value_tier || ':' || months_below from customer_segment "
            "where as_of_month = (select max(as_of_month) from customer_segment where as_of_month < ?)",
            [as_of]).fetchall())
        published_rows = {r[0]: tuple(v or "" for v in r[1:]) for r in con.execute(
            "select cust_id, branch_id, cust_name_masked, mobile_masked from customer_segment "
            "where as_of_month = ?", [as_of]).fetchall()}
    assert predicted_cib_tiers(published, as_of, floors, codes, grace) == current
    # GOLD's floor up to the median AUM of this month's GOLD customers, its grace 3 → 2, PLATINUM's floor
    # down to the GOLD customers' upper quartile: downs held by grace, ups at once.
    gold, platinum = codes.index("GOLD"), codes.index("PLATINUM")
    gold_aums = sorted(aum[c] for c, tier in current.items() if tier == "GOLD")
    new_gold = gold_aums[len(gold_aums) // 2].to_integral_value()
    new_platinum = gold_aums[len(gold_aums) * 3 // 4].to_integral_value() + 1
    assert floors[gold] < new_gold < new_platinum < floors[platinum]
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    for code, old, new in (("GOLD", f'"{floors[gold]}",  grace_months: 3', f'"{new_gold}",  grace_months: 2'),
                           ("PLATINUM", f'"{floors[platinum]}"', f'"{new_platinum}"')):
        text = text.replace(tier_line(code), tier_line(code).replace(old, new))
    candidate = tmp_path / "candidate.yml"
    candidate.write_text(text, encoding="utf-8")
    new_floors, new_grace = list(floors), list(grace)
    new_floors[gold], new_floors[platinum], new_grace[gold] = new_gold, new_platinum, 2
    predicted = predicted_cib_tiers(published, as_of, floors, codes, grace, (new_floors, new_grace))
    expected = Counter((current[c], predicted[c]) for c in current if current[c] != predicted[c])
    assert expected[("GOLD", "PLATINUM")], "the lowered PLATINUM floor should lift somebody"
    # Below the new GOLD floor, but not below GOLD last month: one month below, fewer than the grace.
    held = {c for c, tier in current.items()
            if tier == "GOLD" and aum[c] < new_gold and previous.get(c) == "GOLD:0"}
    assert held, "somebody should be newly below the raised GOLD floor"

    out = tmp_path / "report"
    result = run_backtest(candidate, as_of, settings_for(warehouse=warehouse), out)

    assert result.changes == [f"cib_monthly GOLD floor 100,000 → {new_gold:,}", "cib_monthly GOLD grace months 3 → 2",
                              f"cib_monthly PLATINUM floor 300,000 → {new_platinum:,}"]
    by_name = {c.name: c for c in result.classifications}
    for name in ("value_tier", "customer_tier.cib_monthly"):
        moved = Counter({(c.from_value, c.to_value): c.customers
                         for c in by_name[name].cells if c.from_value != c.to_value})
        assert moved == expected, name
        assert by_name[name].aum_moved_cny == sum(aum[c] for c in current if current[c] != predicted[c])
    assert by_name["customer_tier.abc_quarterly"].moved == 0
    assert by_name["customer_tier.corporate"].moved == 0
    movers = {m.cust_id: m for m in result.movers}
    assert not held & set(movers), "grace counted from now: nobody newly below a floor drops"
    assert result.on_watch[1] >= len(held)
    assert {path: sha256(path) for path in (published, working)} == before
    assert not (out / "scratch").exists()
    # movers.csv: UTF-8 with BOM, every mover, published masking, exact amounts, no certificate number.
    raw = result.movers_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"cert" not in raw
    with result.movers_path.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert Counter((r["tier_published"], r["tier_candidate"]) for r in rows) == expected
    for row in rows:
        assert (row["branch_id"], row["cust_name_masked"], row["mobile_masked"]) == published_rows[row["cust_id"]]
        assert row["measure"] == "avg_daily_aum_1m" and row["measure_value_cny"] == str(aum[row["cust_id"]])
        assert row["direction"] == ("up" if codes.index(row["tier_candidate"]) > codes.index(row["tier_published"])
                                    else "down")
    assert [Decimal(r["measure_value_cny"]) for r in rows] == sorted((aum[c] for c in movers), reverse=True)
    with result.csv_path.open(encoding="utf-8") as handle:
        migration = list(csv.DictReader(handle))
    assert list(migration[0]) == ["classification", "from", "to", "customers", "aum_cny"]
    assert Counter({(r["from"], r["to"]): int(r["customers"]) for r in migration
                    if r["classification"] == "value_tier" and r["from"] != r["to"]}) == expected
    page = result.html_path.read_text(encoding="utf-8")
    assert "<style>" in page and not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert f"GOLD floor 100,000 → {new_gold:,}" in page and "the grace counts from" in page
    assert "bump `version`" in page  # the candidate kept the published version
    assert str(result.movers_path) in page and page.count("<td>avg_daily_aum_1m</td>") == min(len(rows), 20)


def test_matrix_labels_are_never_cut():
    """Chinese labels wider than the terminal: columns numbered and listed, every label whole."""
    from flows.commands.backtest import Cell, Classification, matrix_lines
    from flows.reports.text_columns import display_width

    labels = ["自助服务 + 自动化营销", "私人银行专属顾问 + 定制化资产配置", "标准化产品 + 线上渠道"]
    cells = [Cell(a, b, 1000 * i + j, Decimal(1)) for i, a in enumerate(labels) for j, b in enumerate(labels)]
    for width in (200, 60):
        lines = matrix_lines(Classification("service_strategy", cells), width)
        table = lines[1:5]
        assert len({display_width(line) for line in table}) == 1, "columns aligned by display width"
        assert all(label in "\n".join(lines) for label in labels)
    assert "[1]" in lines[1] and any(line.strip() == "[2] 私人银行专属顾问 + 定制化资产配置" for line in lines)


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
    assert "no rule changed" in printed and "bump `version`" not in printed
    assert f"{out / 'movers.csv'} (0 movers)" in printed
    with (out / "migration.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["from"] == r["to"] for r in rows)
    assert (out / "movers.csv").read_text(encoding="utf-8-sig").splitlines() == [",".join(MOVER_COLUMNS)]
    assert "no rule changed" in (out / "backtest.html").read_text(encoding="utf-8")




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
