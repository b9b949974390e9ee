"""End to end: generated extracts over four months → `tiering run` → published tiers, checked
customer by customer against an independent Python-decimal computation from the landing files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from flows.generate import generate
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES
from tests.integration.reference_model import compute

pytestmark = pytest.mark.integration

START, END = dt.date(2026, 1, 1), dt.date(2026, 4, 30)  # 31, 28, 31 and 30 days
MONTHS = [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31), dt.date(2026, 4, 30)]
CUSTOMERS = 400


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_ok(dat: Path) -> None:
    """Recompute a batch file's control totals, as the source system would for a genuine file."""
    data = dat.read_bytes()
    encoding = dat.with_suffix(".ok").read_text(encoding="ascii").strip().split("|")[4]
    lines = data.count(b"\n")
    dat.with_suffix(".ok").write_text(
        f"{dat.name}|{lines}|{len(data)}|{hashlib.md5(data).hexdigest()}|{encoding}\n", encoding="ascii")


def _run(capsys, landing: Path, warehouse: Path, as_of: dt.date) -> tuple[int, str]:
    code = main(["run", "--landing", str(landing), "--as-of", as_of.isoformat(), "--warehouse", str(warehouse)])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    generate(root, CUSTOMERS, START, END, seed=7)
    return root


def test_four_months_end_to_end(prefect_harness, landing, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIERING_OK_WAIT_SECONDS", "0")
    warehouse = tmp_path / "warehouse"
    published = warehouse / "published.duckdb"

    # A TXN record with a code outside the spec: quarantined, the rest of its batch loads.
    txn = landing / "20260310" / "CBS_TXN_20260310.dat"
    lines = txn.read_bytes().split(b"\n")
    fields = lines[2].split(b"|")
    fields[3] = b"XXX"
    lines[2] = b"|".join(fields)
    txn.write_bytes(b"\n".join(lines))
    _rewrite_ok(txn)

    code, err = _run(capsys, landing, warehouse, MONTHS[2])
    assert code == 0, err
    released_march = _sha256(published)

    # April: a balance file whose control totals do not match is rejected whole, nothing published.
    balance = landing / "20260415" / "CBS_BALANCE_20260415.dat"
    original = balance.read_bytes()
    balance.write_bytes(original.replace(b"|", b"|9", 1))
    code, err = _run(capsys, landing, warehouse, MONTHS[3])
    assert code != 0
    reason = err.strip().splitlines()[-1]
    assert "CBS_BALANCE_20260415.dat" in reason
    assert _sha256(published) == released_march, "a failed run must leave the release byte for byte"
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.cbs_balance where batch_date = '2026-04-15'").fetchone()[0] == 0
        assert con.execute("select count(*) from raw.cbs_customer where batch_date = '2026-04-15'").fetchone()[0] == 0

    # The source re-delivers the good file: April publishes.
    balance.write_bytes(original)
    code, err = _run(capsys, landing, warehouse, MONTHS[3])
    assert code == 0, err

    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        quarantined = con.execute(
            "select table_name, line_no, reason from audit.quarantine where batch_date = '2026-03-10'").fetchall()
        assert quarantined == [("CBS_TXN", 3, quarantined[0][2])]
        assert "txn_type" in quarantined[0][2]
        records, loaded, q = con.execute(
            "select records, loaded, quarantined from audit.batch_log "
            "where batch_date = '2026-03-10' and table_name = 'CBS_TXN'").fetchone()
        assert (loaded, q) == (records - 1, 1)

    rules = load_rules(DEFAULT_RULES)
    expected = compute(landing, rules, MONTHS)
    with duckdb.connect(str(published), read_only=True) as con:
        segment = {
            (row[0], row[1]): row[2:]
            for row in con.execute(
                "select as_of_month, cust_id, cust_type, avg_daily_aum_cny, aum_3m_avg_cny, value_tier, "
                "implied_tier, months_below, on_watch, tier_change from customer_segment").fetchall()
        }
        tiers = {
            (row[0], row[1], row[2]): row[3:]
            for row in con.execute(
                "select as_of_month, cust_id, rule_set, tier, implied_tier, months_below, on_watch, tier_change "
                "from customer_tier").fetchall()
        }
        releases = con.execute("select as_of_month from release_log order by published_at").fetchall()

    assert releases == [(MONTHS[2],), (MONTHS[3],)]
    assert set(segment) == set(expected), "one published row per eligible customer and month"
    active = rules.active_rule_set
    mismatches = []
    for key, exp in expected.items():
        cust_type, avg, avg_3m, tier, implied, below, watch, change = segment[key]
        rule_set = active if exp.cust_type == "P" else "corporate"
        e_tier, e_implied, e_below, e_watch, e_change = exp.tiers[rule_set]
        got = (cust_type, avg, avg_3m, tier, implied, below, watch)
        want = (exp.cust_type, exp.avg_daily_aum_cny, exp.aum_3m_avg_cny, e_tier, e_implied, e_below, e_watch)
        if exp.cust_type == "P":
            got, want = got + (change,), want + (e_change,)
        if got != want:
            mismatches.append((key, got, want))
        for name, (t, i, b, w, c) in exp.tiers.items():
            if name == "corporate":
                continue
            if tiers[(key[0], key[1], name)] != (t, i, b, w, c):
                mismatches.append(((*key, name), tiers[(key[0], key[1], name)], (t, i, b, w, c)))
    assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:3]}"

    # The data must exercise the rules, or the comparison above proves little.
    retail = [e for e in expected.values() if e.cust_type == "P"]
    assert len({e.tiers[active][0] for e in retail}) >= 4
    assert any(e.tiers[active][3] for e in retail), "some customer on watch"
    assert any(e.cust_type != "P" for e in expected.values())

