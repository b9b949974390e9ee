"""`tiering explain`: the explanation agrees with the published row and with an independent recomputation."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from flows.cli import main
from flows.commands.explain import EVIDENCE_UNAVAILABLE, explain_customer, render_text, to_json
from flows.months import bank_time
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES, Settings
from tests.integration.reference_model import read_extract
from tests.support.isolation import settings_for

AUM_PRODUCTS = {"CASA", "TD", "WM", "FUND", "INS", "GOLD"}


def _published(warehouse, sql, params=()):
    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def cases(published_warehouse):
    """Customers to explain in the last published month: retail on watch (if any), retail upgraded, corporate."""
    landing, warehouse, as_of = published_warehouse
    picks = {}
    for name, where in (("watch", "cust_type = 'P' and on_watch"), ("up", "cust_type = 'P' and tier_change = 'UP'"),
                        ("corporate", "cust_type <> 'P'"), ("retail", "cust_type = 'P'")):
        found = _published(warehouse, f"select cust_id from customer_segment where as_of_month = ? and {where} "
                                       "order by avg_daily_aum_cny desc, cust_id limit 1", [as_of])
        if found:
            picks[name] = found[0][0]
    assert {"up", "corporate", "retail"} <= picks.keys()
    return warehouse, as_of, picks, landing


def _independent_month_sum(landing, cust_id: str, start: dt.date, end: dt.date) -> Decimal:
    """Σ over the days of [start, end] of the customer's AUM balances × that day's rate, straight from the
    landing files (the account file of the balance's own day says whose it is), in Decimals."""
    total = Decimal(0)
    day = start
    while day <= end:
        owner = {row[0]: (row[1], row[2]) for row in read_extract(landing, "ACCOUNT", day)}
        rates = {row[0]: Decimal(row[2]) for row in read_extract(landing, "FX_RATE", day)}
        for acct, _bal_date, balance, currency in read_extract(landing, "BALANCE", day):
            cust, product = owner[acct]
            if cust == cust_id and product in AUM_PRODUCTS:
                total += Decimal(balance) * (Decimal(1) if currency == "CNY" else rates[currency])
        day += dt.timedelta(days=1)
    return total


def _round2(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.mark.parametrize("case", ["watch", "up", "corporate"])
def test_measure_and_evidence_agree_with_published_and_raw(cases, case):
    warehouse, as_of, picks, landing = cases
    if case not in picks:
        pytest.skip(f"no {case} customer in the fixture month")
    cust_id = picks[case]
    e = explain_customer(settings_for(warehouse=warehouse), cust_id)
    assert e.as_of_month == as_of and not e.notes
    (published_avg, published_3m, days), = _published(
        warehouse, "select avg_daily_aum_cny, aum_3m_avg_cny, aum_days from customer_segment "
                   "where cust_id = ? and as_of_month = ?", [cust_id, as_of])
    ev = e.evidence
    assert e.measures["avg_daily_aum_cny"] == published_avg
    assert ev["avg_daily_aum_rounded_cny"] == published_avg and ev["matches_published"]
    assert ev["days"] == days == as_of.day
    split_total = sum((s["balance_sum_cny"] for s in ev["aum_split"]), Decimal(0))
    independent = _independent_month_sum(landing, cust_id, as_of.replace(day=1), as_of)
    assert split_total == ev["aum_sum_cny"] == independent
    assert _round2(independent / days) == published_avg
    assert all(s["product_type"] in AUM_PRODUCTS for s in ev["aum_split"])
    assert all(s["product_type"] in {"LOAN", "CARD"} for s in ev["excluded_debts"])
    three = ev["three_month"]
    independent_3m = _independent_month_sum(landing, cust_id, three["window_start"], as_of)
    assert three["aum_sum_cny"] == independent_3m
    assert three["days"] == (as_of - three["window_start"]).days + 1
    assert _round2(independent_3m / three["days"]) == published_3m == three["avg_rounded_cny"]


@pytest.mark.parametrize("case", ["watch", "up", "retail"])
def test_ladder_and_hysteresis_follow_the_rules_file(cases, case):
    warehouse, as_of, picks, landing = cases
    if case not in picks:
        pytest.skip(f"no {case} customer in the fixture month")
    e = explain_customer(settings_for(warehouse=warehouse), picks[case])
    rules = load_rules(DEFAULT_RULES)
    rule_set = rules.rule_sets[e.rules["rule_set"]]
    assert e.rules["rule_set_version"] == rule_set.version and e.rules["rules_version"] == rules.version
    exact = e.evidence["aum_sum_cny"] / Decimal(e.evidence["days"])
    steps = {s["tier"]: s for s in e.ladder["steps"]}
    assert [t.code for t in rule_set.tiers] == list(steps)
    for tier in rule_set.tiers:
        assert steps[tier.code]["floor_cny"] == tier.floor_cny
        assert steps[tier.code]["crossed"] == (e.evidence["aum_sum_cny"] >= tier.floor_cny * e.evidence["days"])
        assert steps[tier.code]["crossed"] == (exact >= tier.floor_cny)
    assert e.ladder["implied_tier"] == e.result["implied_tier"] and e.ladder["agrees_with_published"]
    h = e.hysteresis
    held = rule_set.tier(h["tier_held_last_month"] or e.result["value_tier"])
    assert h["grace_months"] == held.grace_months
    assert h["grace_left"] == h["grace_months"] - h["months_below"]
    if case == "watch":
        assert h["on_watch"] and h["months_below"] > 0 and h["grace_left"] > 0
    if case == "up":
        assert h["tier_change"] == "UP" and h["months_below"] == 0 and not h["on_watch"]
    assert h["effective_from"] == as_of + dt.timedelta(days=1)


def test_corporate_is_measured_on_deposits_and_loans(cases):
    warehouse, _, picks, _landing = cases
    e = explain_customer(settings_for(warehouse=warehouse), picks["corporate"])
    assert e.ladder is None and e.hysteresis is None
    rules = load_rules(DEFAULT_RULES)
    k = e.corporate
    assert [s["tier"] for s in k["steps"]] == [t.code for t in rules.corporate_tiers]
    assert k["implied_tier"] == e.result["value_tier"] and k["agrees_with_published"]
    loans = sum((loan["outstanding_cny"] for loan in e.evidence["loans_at_month_end"]), Decimal(0))
    assert _round2(loans) == e.measures["loan_outstanding_cny"]


def test_corporate_text_names_no_grace_and_no_retail_classes(cases):
    """A company: no "mobile None" when it has no mobile, no RFM or other retail-only class, and its "months below"
    is explained (corporate tiers have no grace period), here and in the history."""
    warehouse, as_of, _, _landing = cases
    (cust_id, mobile), = _published(warehouse, "select cust_id, mobile_masked from customer_segment "
                                               "where as_of_month = ? and cust_type <> 'P' "
                                               "order by mobile_masked is null desc, cust_id limit 1", [as_of])
    text = render_text(explain_customer(settings_for(warehouse=warehouse), cust_id, as_of))
    assert "None" not in text and "RFM class" not in text and "\n  quadrant:" not in text
    assert ("mobile " in text.splitlines()[0]) == (mobile is not None)
    assert "corporate tiers have no grace period" in text and "months below" not in text.replace(
        "(months below is always 0)", "")
    assert "apply to retail customers only" in text and "service strategy" in text


def _months_after(month: dt.date, n: int) -> tuple[dt.date, dt.date]:
    """(last day of the month n months after `month`, first day of the month after that), by month numbers."""
    index = month.year * 12 + month.month - 1 + n
    first_after = dt.date((index + 1) // 12, (index + 1) % 12 + 1, 1)
    return first_after - dt.timedelta(days=1), first_after


def test_watch_says_when_the_downgrade_takes_effect(cases):
    """On watch with m of G grace months used: if the measure stays below, the evaluation G − m months on
    downgrades, effective the first day of the month after it."""
    warehouse, _, _, _landing = cases
    rows = _published(warehouse, "select cust_id, as_of_month, months_below, grace_months, value_tier "
                                 "from customer_segment where cust_type = 'P' and on_watch order by cust_id limit 1")
    if not rows:
        pytest.skip("no customer on watch in the fixture")
    cust_id, month, below, grace, tier = rows[0]
    e = explain_customer(settings_for(warehouse=warehouse), cust_id, month)
    evaluated, effective = _months_after(month, grace - below)
    assert e.hysteresis["downgrade_if_still_below"] == {"evaluated_in": evaluated, "effective_from": effective}
    assert (f"if the measure stays below the {tier} floor, the {evaluated:%Y-%m} evaluation downgrades"
            in render_text(e)) and f"effective from {effective}" in render_text(e)
    up = explain_customer(settings_for(warehouse=warehouse), cases[2]["up"])
    assert up.hysteresis["downgrade_if_still_below"] is None


def test_debts_show_the_average_daily_balance(cases):
    """A loan's month is shown as its average daily balance (Σ of daily balances ÷ days), labelled, not the Σ."""
    warehouse, as_of, _, _landing = cases
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        (cust_id,), = con.execute("select min(cust_id) from raw.cbs_account_versions where product_type = 'LOAN' "
                                  "and cust_id in (select cust_id from raw.cbs_customer_versions "
                                  "where cust_type = 'P')").fetchall()
    e = explain_customer(settings_for(warehouse=warehouse), cust_id, as_of)
    debt = next(d for d in e.evidence["excluded_debts"] if d["product_type"] == "LOAN")
    assert debt["avg_daily_balance_cny"] == _round2(debt["balance_sum_cny"] / e.evidence["days"])
    line = next(x for x in render_text(e).splitlines() if "excluded (debt, never AUM): LOAN" in x)
    assert f"average daily balance {debt['avg_daily_balance_cny']:,.2f} CNY" in line and f"÷ {e.evidence['days']} days" in line


def test_json_parses_and_matches(cases, capsys):
    warehouse, as_of, picks, landing = cases
    cust_id = picks.get("watch", picks["up"])
    assert main(["explain", cust_id, "--json", "--warehouse", str(warehouse), "--as-of", f"{as_of:%Y-%m}"]) == 0
    doc = json.loads(capsys.readouterr().out)
    e = explain_customer(settings_for(warehouse=warehouse), cust_id, as_of)
    assert doc == json.loads(to_json(e)) == e.to_dict()
    assert doc["measures"]["avg_daily_aum_cny"] == str(e.measures["avg_daily_aum_cny"])  # exact, a string
    assert Decimal(doc["evidence"]["aum_sum_cny"]) == e.evidence["aum_sum_cny"]
    assert doc["hysteresis"]["grace_left"] == doc["hysteresis"]["grace_months"] - doc["hysteresis"]["months_below"]


def test_text_and_earlier_month(cases, capsys):
    warehouse, as_of, picks, landing = cases
    assert main(["explain", picks["up"], "--warehouse", str(warehouse), "--as-of", "2026-02-28"]) == 0
    out = capsys.readouterr().out
    assert "month 2026-02" in out and "ladder" in out and "hysteresis" in out and "Σ daily AUM ÷ days" in out


def test_no_raw_personal_data_in_output(cases, capsys):
    warehouse, _, picks, _landing = cases
    for cust_id in set(picks.values()):
        with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
            raw = con.execute("select distinct cust_name, cert_no, mobile from raw.cbs_customer_versions "
                              "where cust_id = ?", [cust_id]).fetchall()
        assert raw
        for flag in ([], ["--json"]):
            assert main(["explain", cust_id, "--warehouse", str(warehouse), *flag]) == 0
            out = capsys.readouterr().out
            for values in raw:
                for value in values:
                    if value:
                        assert value not in out
        text = render_text(explain_customer(settings_for(warehouse=warehouse), cust_id))
        assert explain_customer(settings_for(warehouse=warehouse), cust_id).customer["cust_name_masked"] in text


@pytest.mark.parametrize("argv, message", [
    (["NO_SUCH_CUSTOMER"], "unknown customer NO_SUCH_CUSTOMER"),
    (["{cust}", "--as-of", "2025-12"], "not published"),
])
def test_unknown_customer_or_month_fails_with_one_line(cases, capsys, argv, message):
    warehouse, _, picks, _landing = cases
    argv = [a.replace("{cust}", picks["up"]) for a in argv]
    assert main(["explain", *argv, "--warehouse", str(warehouse)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err


def test_locked_working_database_still_prints_the_published_part(cases, tmp_path, capsys):
    warehouse, _, picks, _landing = cases
    copy = tmp_path / "warehouse"
    copy.mkdir()
    for name in ("published.duckdb", "tiering.duckdb"):
        shutil.copy(warehouse / name, copy / name)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
                               "time.sleep(60)", str(copy / "tiering.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        time.sleep(0.2)
        assert main(["explain", picks["up"], "--warehouse", str(copy)]) == 0
        out = capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    assert out.count(EVIDENCE_UNAVAILABLE) == 1
    assert "result:" in out and "hysteresis" in out and "ladder" in out


def test_classification_columns_are_shown_when_present_and_aml_never(cases, tmp_path):
    warehouse, as_of, picks, landing = cases
    copy = tmp_path / "warehouse"
    copy.mkdir()
    for name in ("published.duckdb", "tiering.duckdb"):
        shutil.copy(warehouse / name, copy / name)
    with duckdb.connect(str(copy / "published.duckdb")) as con:  # the copy gets (or keeps) the issue-3 columns
        # The published table is a view over the release's Parquet files: the copy makes it a table.
        con.execute("create table customer_segment_copy as select * from customer_segment")
        con.execute("drop view customer_segment")
        con.execute("alter table customer_segment_copy rename to customer_segment")
        con.execute("alter table customer_segment add column if not exists rfm_r integer default 10")
        con.execute("alter table customer_segment add column if not exists rfm_f integer default 3")
        con.execute("alter table customer_segment add column if not exists rfm_m decimal(18,2)")
        con.execute("alter table customer_segment add column if not exists customer_class varchar default 'C'")
        con.execute("alter table customer_segment add column if not exists credit_grade varchar default 'NONE'")
        con.execute("alter table customer_segment add column if not exists aml_level varchar default 'SECRET_HIGH'")
        con.execute("update customer_segment set rfm_m = avg_daily_aum_cny, rfm_r = case when cust_id = ? "
                    "then 400 else 10 end, customer_class = 'C', aml_level = 'SECRET_HIGH'", [picks["up"]])
    e = explain_customer(settings_for(warehouse=copy), picks["up"], as_of)
    k = e.classifications
    assert k["customer_class"] == "C" and "class_reason" in k and "aml_level" not in k
    assert k["rfm"]["measures"]["R"]["value"] == 400 and not k["rfm"]["measures"]["R"]["high"]
    assert "credit_grade_loans" in k
    assert "SECRET_HIGH" not in to_json(e) and "SECRET_HIGH" not in render_text(e)
    assert "RFM class" in render_text(e)


def test_aml_is_shown_only_on_request_from_the_restricted_database(cases, tmp_path, capsys):
    warehouse, as_of, _, _landing = cases
    with duckdb.connect(str(warehouse / "restricted" / "aml.duckdb"), read_only=True) as con:
        cust_id, level, triggers = con.execute(
            "select cust_id, aml_level, aml_triggers from aml_customer_risk where as_of_month = ? "
            "order by aml_level = 'HIGH' desc, cust_id limit 1", [as_of]).fetchone()
        trigger_txns = con.execute("select count(*) from aml_trigger_transactions "
                                   "where cust_id = ? and as_of_month = ?", [cust_id, as_of]).fetchone()[0]
    plain = explain_customer(settings_for(warehouse=warehouse), cust_id)
    assert plain.aml is None and "AML risk" not in render_text(plain)
    assert json.loads(to_json(plain))["aml"] is None and "aml_level" not in to_json(plain)

    e = explain_customer(settings_for(warehouse=warehouse), cust_id, include_aml=True)
    assert (e.aml["aml_level"], e.aml["aml_triggers"]) == (level, triggers)
    assert len(e.aml["trigger_transactions"]) == trigger_txns
    assert f"level {level}" in render_text(e)

    # Without the restricted file (a consumer's copy of the warehouse) the request fails in one line.
    copy = tmp_path / "consumer"
    copy.mkdir()
    shutil.copy(warehouse / "published.duckdb", copy / "published.duckdb")
    assert main(["explain", cust_id, "--aml", "--warehouse", str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "restricted AML database" in err and "not found" in err


def test_release_cites_the_current_release_and_the_rows_writer_after_a_republication(published_warehouse,
                                                                                     tmp_path, capsys):
    """Re-publishing the last month makes a new current release: that month's row is its own, an earlier
    month's row is still the one its original release wrote (carried unchanged), and both are cited."""
    from flows.pipeline import tiering_run

    landing, source, as_of = published_warehouse
    warehouse = tmp_path / "warehouse"
    shutil.copytree(source, warehouse, symlinks=True)
    earlier = dt.date(2026, 2, 28)
    (superseded, earlier_writer, earlier_at), = _published(
        warehouse, "select (select release_id from release_log where as_of_month = ?), m.release_id, m.published_at "
                   "from release_months m where m.table_name = 'customer_segment' and m.as_of_month = ?",
        [as_of, earlier])
    release = tiering_run(landing=str(landing), as_of=as_of, settings=Settings.from_env(warehouse=warehouse))
    assert release.release_id != superseded and release.months_published == [as_of]
    (cust_id,), = _published(warehouse, "select cust_id from customer_segment where as_of_month = ? "
                                        "and cust_type = 'P' order by cust_id limit 1", [earlier])
    zone = "Asia/Shanghai"
    current = {"release_id": release.release_id, "as_of_month": as_of.isoformat(),
               "published_at": release.published_at.isoformat() + "+08:00", "action": "publish",
               "rolled_back_from": None}

    # The re-published month: current release and row release are the same (the new one), restated.
    assert main(["explain", cust_id, "--json", "--warehouse", str(warehouse)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_of_month"] == as_of.isoformat()
    assert doc["release"]["current"] == current and doc["release"]["time_zone"] == zone
    assert doc["release"]["row"]["release_id"] == doc["rules"]["release_id"] == release.release_id
    assert doc["release"]["row"]["restated"] and doc["release"]["same"] is True
    assert superseded not in json.dumps(doc)
    assert main(["explain", cust_id, "--warehouse", str(warehouse)]) == 0
    text = capsys.readouterr().out
    assert f"release: current {release.release_id} (release of {as_of:%Y-%m}, published " in text
    assert f"{bank_time(release.published_at)}); this month's row: the same release" in text
    assert superseded not in text and "carries it unchanged" not in text

    # An earlier month: written by its own release, carried unchanged by the new one.
    assert main(["explain", cust_id, "--json", "--as-of", f"{earlier:%Y-%m}", "--warehouse", str(warehouse)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["release"]["current"] == current and doc["release"]["same"] is False
    row = doc["release"]["row"]
    assert row["release_id"] == doc["rules"]["release_id"] == earlier_writer != release.release_id
    assert (row["as_of_month"], row["published_at"], row["restated"]) == (
        earlier.isoformat(), earlier_at.isoformat() + "+08:00", False)
    sentence = (f"this month was published by release {earlier_writer} on {bank_time(earlier_at)}; "
                f"the current release {release.release_id} (published {bank_time(release.published_at)}) "
                "carries it unchanged")
    assert doc["release"]["statement"] == sentence
    assert main(["explain", cust_id, "--as-of", f"{earlier:%Y-%m}", "--warehouse", str(warehouse)]) == 0
    text = capsys.readouterr().out
    assert f"release: current {release.release_id} (release of {as_of:%Y-%m}" in text
    assert f"this month's row: {earlier_writer} (published {bank_time(earlier_at)})" in text
    assert sentence in text

    # Rolled back to the superseded release: it is the current release again, and the row's writer.
    from flows.commands.rollback import rollback_release

    rolled = warehouse
    rollback = rollback_release(settings_for(warehouse=rolled), superseded, release.rules_version)
    at = rollback.rolled_back_at
    with duckdb.connect(str(rolled / "published.duckdb"), read_only=True) as con:
        (superseded_at,), = con.execute("select published_at from release_log where release_id = ? "
                                        "and action = 'publish'", [superseded]).fetchall()
    e = explain_customer(settings_for(warehouse=rolled), cust_id)
    assert e.release["current"]["release_id"] == superseded == e.release["row"]["release_id"] == e.rules["release_id"]
    assert (e.release["current"]["action"], e.release["current"]["rolled_back_from"]) == ("rollback",
                                                                                          release.release_id)
    assert e.release["same"] and not e.release["row"]["restated"]
    assert e.release["row"]["published_at"] == superseded_at.replace(tzinfo=e.release["current"]["published_at"].tzinfo)
    assert (f"release: current {superseded} (release of {as_of:%Y-%m}, made current again by a rollback on "
            f"{bank_time(at)}, replacing {release.release_id}); this month's row: the same release"
            in render_text(e))
    e = explain_customer(settings_for(warehouse=rolled), cust_id, earlier)
    assert e.release["row"]["release_id"] == earlier_writer and e.release["same"] is False
    assert e.release["statement"].endswith(f"the current release {superseded} (made current again by a rollback "
                                           f"on {bank_time(at)}, replacing {release.release_id}) "
                                           "carries it unchanged")
