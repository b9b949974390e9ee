"""End to end, month by month: generated extracts over four months → `tiering run` each month → published
tiers, checked customer by customer against an independent Python-decimal computation from the landing
files; the same four months rebuilt at once with `--full-refresh` give the same published tables; a
re-delivered February restates February … April and nothing before."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import shutil
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from flows.commands.generate import generate
from flows.rules import load_rules
from flows.settings import DEFAULT_RULES
from flows.stages.publishing import PUBLISHED_TABLES
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


def _replace_field(dat: Path, line: int, field: int, value: bytes) -> None:
    """Change one field of one record of a batch file, with control totals the source would send."""
    lines = dat.read_bytes().split(b"\n")
    fields = lines[line].split(b"|")
    fields[field] = value
    lines[line] = b"|".join(fields)
    dat.write_bytes(b"\n".join(lines))
    _rewrite_ok(dat)


def _run(landing: Path, warehouse: Path, as_of: dt.date, *flags: str) -> tuple[int, str]:
    """`tiering run` in-process; returns the exit code and what it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--landing", str(landing), "--as-of", as_of.isoformat(), "--warehouse",
                     str(warehouse), *flags])
    return code, err.getvalue()


def _published_rows(published: Path) -> dict[str, list[tuple]]:
    """Every row of every published table (release ids and times live only in release_log)."""
    with duckdb.connect(str(published), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in PUBLISHED_TABLES}


def _builds(warehouse: Path) -> list[dt.date]:
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT as_of_month FROM audit.month_build ORDER BY built_at").fetchall()]


def _assert_matches_reference(published: Path, landing: Path, months: list[dt.date]) -> None:
    rules = load_rules(DEFAULT_RULES)
    expected = compute(landing, rules, months)
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
        for name, values in exp.tiers.items():
            if name != "corporate" and tiers[(key[0], key[1], name)] != values:
                mismatches.append(((*key, name), tiers[(key[0], key[1], name)], values))
    assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:3]}"
    # The data must exercise the rules, or the comparison above proves little.
    retail = [e for e in expected.values() if e.cust_type == "P"]
    assert len({e.tiers[active][0] for e in retail}) >= 4
    assert any(e.tiers[active][3] for e in retail), "some customer on watch"
    assert any(e.cust_type != "P" for e in expected.values())


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    generate(root, CUSTOMERS, START, END, seed=7)
    # A TXN record with a code outside the spec: quarantined, the rest of its batch loads.
    _replace_field(root / "20260310" / "CBS_TXN_20260310.dat", line=2, field=3, value=b"XXX")
    return root


@pytest.fixture(scope="module", autouse=True)
def no_ok_wait():
    """This module's runs do not wait for late .ok files; the variable is restored after the module, so the
    tests that follow on the same worker see the environment they would alone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIERING_OK_WAIT_SECONDS", "0")
        yield


@pytest.fixture(scope="module")
def month_by_month(prefect_harness, landing, tmp_path_factory):
    """The four months run one by one, as a bank runs them: each run builds only its month."""
    warehouse = tmp_path_factory.mktemp("month_by_month") / "warehouse"
    published = warehouse / "published.duckdb"
    for month in MONTHS[:3]:
        code, err = _run(landing, warehouse, month)
        assert code == 0, err
        assert _builds(warehouse)[-1] == month
    assert _builds(warehouse) == MONTHS[:3], "each run built its own month only"
    released_march = _sha256(published)

    # April: a balance file whose control totals do not match is rejected whole, nothing published.
    balance = landing / "20260415" / "CBS_BALANCE_20260415.dat"
    original = balance.read_bytes()
    balance.write_bytes(original.replace(b"|", b"|9", 1))
    try:
        code, err = _run(landing, warehouse, MONTHS[3])
    finally:
        balance.write_bytes(original)
    assert code != 0
    reason = err.strip().splitlines()[-1]
    assert "CBS_BALANCE_20260415.dat" in reason
    assert _sha256(published) == released_march, "a failed run must leave the release byte for byte"
    with duckdb.connect(str(warehouse / "tiering.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.cbs_balance where batch_date = '2026-04-15'").fetchone()[0] == 0
        assert not list((warehouse / "raw" / "cbs_balance" / "batch_date=2026-04-15").glob("*.parquet"))

    # The source re-delivers the good file: April publishes, building April alone.
    code, err = _run(landing, warehouse, MONTHS[3])
    assert code == 0, err
    assert _builds(warehouse) == MONTHS
    return warehouse


def test_month_by_month_matches_the_independent_model(month_by_month, landing):
    published = month_by_month / "published.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        releases = con.execute("select as_of_month, months_published, restated_months from release_log "
                               "order by published_at").fetchall()
    assert releases == [(m, m.isoformat(), None) for m in MONTHS], "each release wrote its own month only"
    with duckdb.connect(str(month_by_month / "tiering.duckdb"), read_only=True) as con:
        quarantined = con.execute(
            "select table_name, line_no, reason from audit.quarantine where batch_date = '2026-03-10'").fetchall()
        assert quarantined == [("CBS_TXN", 3, quarantined[0][2])]
        assert "txn_type" in quarantined[0][2]
        records, loaded, q = con.execute(
            "select records, loaded, quarantined from audit.batch_log "
            "where batch_date = '2026-03-10' and table_name = 'CBS_TXN'").fetchone()
        assert (loaded, q) == (records - 1, 1)
    _assert_matches_reference(published, landing, MONTHS)


def test_full_refresh_gives_the_same_published_tables(month_by_month, landing, tmp_path):
    warehouse = tmp_path / "warehouse"
    # Through March (three months, April's batches loaded too): the hysteresis chain is long enough to differ,
    # and CI time stays in bounds.
    assert main(["ingest", "--landing", str(landing), "--warehouse", str(warehouse)]) == 0
    code, err = _run(landing, warehouse, MONTHS[2], "--full-refresh")
    assert code == 0, err
    assert _builds(warehouse) == MONTHS[:3], "January to March rebuilt in order"
    at_once = _published_rows(warehouse / "published.duckdb")
    one_by_one = _published_rows(month_by_month / "published.duckdb")
    for table in PUBLISHED_TABLES:
        assert {row[0] for row in at_once[table]} == set(MONTHS[:3]), table
        assert at_once[table] == [row for row in one_by_one[table] if row[0] <= MONTHS[2]], table


def test_redelivered_february_restates_february_on_and_nothing_before(month_by_month, landing, tmp_path):
    warehouse = tmp_path / "warehouse"
    shutil.copytree(month_by_month, warehouse, symlinks=True)
    changed_landing = tmp_path / "landing"
    shutil.copytree(landing, changed_landing)
    release_before = duckdb.connect(str(warehouse / "published.duckdb"), read_only=True)
    january = release_before.execute("select file from release_months where table_name = 'customer_segment' "
                                     "and as_of_month = '2026-01-31'").fetchone()[0]
    release_before.close()
    january_inode = (warehouse / january).stat().st_ino
    # The source re-delivers 2026-02-10 with one balance changed by a lot.
    _replace_field(changed_landing / "20260210" / "CBS_BALANCE_20260210.dat", line=0, field=2, value=b"98765432.10")

    code, err = _run(changed_landing, warehouse, MONTHS[3])
    assert code != 0 and "refused" in err and "--force" in err  # changed content needs --force
    code, err = _run(changed_landing, warehouse, MONTHS[3], "--force")
    assert code == 0, err
    assert _builds(warehouse)[-3:] == MONTHS[1:], "February, March and April rebuilt, in order"
    assert _builds(warehouse).count(MONTHS[0]) == 1, "January is not rebuilt"
    with duckdb.connect(str(warehouse / "published.duckdb"), read_only=True) as con:
        last = con.execute("select months_published, restated_months from release_log "
                           "order by published_at desc limit 1").fetchone()
        writers = dict(con.execute("select as_of_month, release_id from release_months "
                                   "where table_name = 'customer_segment'").fetchall())
        latest = con.execute("select release_id from release_log order by published_at desc limit 1").fetchone()[0]
    restated = ",".join(m.isoformat() for m in MONTHS[1:])
    assert last == (restated, restated)
    assert [m for m, r in sorted(writers.items()) if r == latest] == MONTHS[1:]
    assert (warehouse / january).stat().st_ino == january_inode, "January's published file was not rewritten"
    _assert_matches_reference(warehouse / "published.duckdb", changed_landing, MONTHS)
    # An identical re-delivery, even with --force, restates nothing.
    builds = len(_builds(warehouse))
    code, err = _run(changed_landing, warehouse, MONTHS[3], "--force")
    assert code == 0, err
    assert len(_builds(warehouse)) == builds, "nothing changed: no month rebuilt"
