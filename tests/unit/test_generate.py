"""flows.commands.generate: format and control files, codes, references, lifecycle, realism, determinism, arguments."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from flows.commands.generate import TABLES, GenerateSummary, _Population, generate

FIELDS = {"CUSTOMER": 16, "ACCOUNT": 7, "BALANCE": 4, "TXN": 9, "LOAN": 10, "FX_RATE": 3}
CURRENCIES = {"CNY", "USD", "EUR", "HKD", "JPY", "GBP"}
PRODUCTS = ("CASA", "TD", "WM", "FUND", "INS", "GOLD", "LOAN", "CARD")
MONEY = re.compile(r"\d+\.\d{2}")
DATE = re.compile(r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
# The fixture spans the quarterly interest day (21 March), so INT postings are covered too.
DAYS = [date(2026, 3, 20), date(2026, 3, 21), date(2026, 3, 22)]
CUSTOMERS = 600
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def tag(day: date) -> str:
    return f"{day:%Y%m%d}"


def data_path(out: Path, day: date, table: str) -> Path:
    return out / tag(day) / f"CBS_{table}_{tag(day)}.dat"


def rows(out: Path, day: date, table: str, codec: str = "gbk") -> list[list[str]]:
    """The records of one data file, decoded first and then split, as the spec requires."""
    text = data_path(out, day, table).read_bytes().decode(codec)
    return [line.split("|") for line in text.splitlines()]


def is_date(text: str) -> bool:
    if not DATE.fullmatch(text):
        return False
    datetime.strptime(text, "%Y%m%d")
    return True


@pytest.fixture(scope="module")
def gbk(tmp_path_factory) -> tuple[Path, GenerateSummary, list[date]]:
    out = tmp_path_factory.mktemp("gbk")
    seen: list[date] = []
    summary = generate(out, CUSTOMERS, DAYS[0], DAYS[-1], seed=7, progress=seen.append)
    return out, summary, seen


@pytest.fixture(scope="module")
def day_tables(gbk) -> dict[date, dict[str, list[list[str]]]]:
    out = gbk[0]
    return {day: {table: rows(out, day, table) for table in TABLES} for day in DAYS}


# ---------------------------------------------------------------------------------------- files


def test_summary_and_progress(gbk):
    out, summary, seen = gbk
    assert seen == DAYS
    assert (summary.out_dir, summary.days, summary.customers) == (out, 3, CUSTOMERS)
    for table in TABLES:
        lines = sum(data_path(out, d, table).read_bytes().count(b"\n") for d in DAYS)
        size = sum(data_path(out, d, table).stat().st_size for d in DAYS)
        assert (summary.records[table], summary.bytes[table]) == (lines, size)
    assert summary.records["CUSTOMER"] == 3 * CUSTOMERS


def test_control_files_match_their_data(gbk):
    out = gbk[0]
    for day in DAYS:
        assert sorted(p.name for p in (out / tag(day)).iterdir()) == sorted(
            f"CBS_{t}_{tag(day)}.{ext}" for t in TABLES for ext in ("dat", "ok"))
        for table in TABLES:
            dat = data_path(out, day, table)
            ok = dat.with_suffix(".ok")
            data = dat.read_bytes()
            assert ok.read_text("ascii").count("\n") == 1
            name, count, size, md5, encoding = ok.read_text("ascii").strip().split("|")
            assert name == dat.name
            assert int(count) == data.count(b"\n") > 0
            assert int(size) == len(data)
            assert md5 == hashlib.md5(data).hexdigest()
            assert encoding == "GBK"
            assert data.endswith(b"\n") and b"\r" not in data
            assert ok.stat().st_mtime_ns >= dat.stat().st_mtime_ns  # written last


def test_gbk_names_must_be_decoded_before_splitting(gbk):
    raw = data_path(gbk[0], DAYS[0], "CUSTOMER").read_bytes()
    text = raw.decode("gbk")
    assert any(ord(c) > 127 and c.encode("gbk")[1] == 0x7C for c in text)
    # Splitting the raw bytes on `|` breaks some names apart; decoding first keeps 16 fields.
    assert any(len(line.split(b"|")) > 16 for line in raw.splitlines())
    assert all(len(line.split("|")) == 16 for line in text.splitlines())
    with pytest.raises(UnicodeDecodeError):
        raw.decode("gb2312")  # GBK-only characters: a GB2312 reader is not enough
    assert re.search(r"有限公司", text) and re.search(r"[\u4e00-\u9fff]{2,4}\|01\|", text)


def test_every_line_has_the_spec_field_count(day_tables):
    for tables in day_tables.values():
        for table, records in tables.items():
            assert records and {len(r) for r in records} == {FIELDS[table]}, table


# ---------------------------------------------------------------------------------------- codes


def test_customer_codes_and_person_fields(day_tables):
    for tables in day_tables.values():
        for (cust_id, ctype, name, cert_type, cert_no, mobile, birth, gender, education, occupation, income,
             industry, branch, opened, kyc, status) in tables["CUSTOMER"]:
            assert re.fullmatch(r"C\d{10}", cust_id) and name and branch
            assert ctype in "PCIF" and len(ctype) == 1
            assert kyc in ("L", "M", "H") and status in ("A", "D", "C") and is_date(opened)
            assert mobile == "" or re.fullmatch(r"1[3-9]\d{9}", mobile)
            if ctype == "P":
                assert industry == "" and is_date(birth) and gender in ("M", "F")
                assert education in ("", "1", "2", "3", "4")
                assert occupation in ("", "ACC", "LAW", "DOC", "TEA", "CIV", "ENG", "OTH")
                assert income == "" or MONEY.fullmatch(income)
                assert cert_type in ("01", "02")
                if cert_type == "01":  # resident ID: birth date, gender digit and check digit agree
                    assert cert_no[6:14] == birth and int(cert_no[16]) % 2 == (gender == "M")
                    check = sum(int(c) * w for c, w in zip(cert_no[:17], ID_WEIGHTS, strict=True)) % 11
                    assert cert_no[17] == "10X98765432"[check]
                else:
                    assert re.fullmatch(r"E\d{8}", cert_no)
            else:
                assert (birth, gender, education, occupation, income) == ("", "", "", "", "")
                assert re.fullmatch(r"[A-T]", industry)
                assert cert_type == "20" and re.fullmatch(r"[0-9A-HJ-NP-RTUWXY]{18}", cert_no)
                values = [USCC_ALPHABET.index(c) for c in cert_no]
                assert values[17] == (31 - sum(v * 3**n % 31 for n, v in enumerate(values[:17])) % 31) % 31
                assert ctype != "C" or re.search("有限(责任)?公司$", name)


def test_account_balance_txn_loan_fx_codes(day_tables):
    for day, tables in day_tables.items():
        for acct_id, _cust, product, ccy, opened, closed, status in tables["ACCOUNT"]:
            assert len(acct_id) <= 32 and product in PRODUCTS
            assert ccy in CURRENCIES and is_date(opened) and opened <= tag(day)
            if status == "A":
                assert closed == ""
            else:
                assert status == "C" and is_date(closed) and opened < closed <= tag(day)
        for _acct, bal_date, balance, _ccy in tables["BALANCE"]:
            assert bal_date == tag(day) and MONEY.fullmatch(balance)
        for _id, _acct, when, kind, amount, _ccy, channel, cash, country in tables["TXN"]:
            assert re.fullmatch(tag(day) + r"([01]\d|2[0-3])[0-5]\d[0-5]\d", when)
            assert kind in ("DEP", "WDL", "TRI", "TRO", "PAY", "SAL", "FEE", "INT", "XBI", "XBO")
            assert MONEY.fullmatch(amount) and float(amount) > 0
            assert (channel == "SYS") == (kind in ("FEE", "INT"))
            assert channel in ("BR", "ATM", "MB", "IB", "POS", "SYS")
            assert cash == "N" or (cash == "Y" and kind in ("DEP", "WDL") and channel in ("BR", "ATM"))
            assert country == "" or re.fullmatch(r"[A-Z]{2}", country)
            assert (kind not in ("XBI", "XBO")) or country not in ("", "CN")
        for _id, _cust, _acct, kind, principal, outstanding, _ccy, dpd, five, maturity in tables["LOAN"]:
            assert kind in ("MTG", "CON", "BIZ", "CRD") and five in "12345" and len(five) == 1
            assert MONEY.fullmatch(principal) and MONEY.fullmatch(outstanding)
            assert 0 <= float(outstanding) <= float(principal)
            assert re.fullmatch(r"\d+", dpd) and is_date(maturity) and maturity > tag(day)
            days_past_due = int(dpd)
            assert five in ("1", "2") if days_past_due == 0 else five != "1"
            assert days_past_due < 90 or five in ("3", "4", "5")
        fx = tables["FX_RATE"]
        assert len({c for c, _, _ in fx}) == len(fx) and "CNY" not in {c for c, _, _ in fx}
        for ccy, rate_date, rate in fx:
            assert ccy in CURRENCIES and rate_date == tag(day) and re.fullmatch(r"\d+\.\d{6}", rate)
            assert float(rate) > 0


def test_fx_rates_are_plausible_and_drift_slowly(day_tables):
    ranges = {"USD": (6.5, 7.8), "EUR": (7.0, 8.6), "HKD": (0.82, 1.0), "JPY": (0.04, 0.055),
              "GBP": (8.2, 10.0)}
    rates = {d: {r[0]: float(r[2]) for r in t["FX_RATE"]} for d, t in day_tables.items()}
    for ccy, (low, high) in ranges.items():
        series = [rates[d][ccy] for d in DAYS]
        assert all(low < x < high for x in series)
        assert all(0 < abs(b / a - 1) < 0.015 for a, b in zip(series, series[1:], strict=False))


def test_transactions_include_bank_postings_on_interest_day(day_tables):
    kinds = Counter(r[3] for r in day_tables[date(2026, 3, 21)]["TXN"])
    assert kinds["INT"] > CUSTOMERS / 2  # quarterly interest on current accounts
    assert all(Counter(r[3] for r in day_tables[d]["TXN"])["INT"] == 0 for d in (DAYS[0], DAYS[2]))
    ids = [r[0] for t in day_tables.values() for r in t["TXN"]]
    assert len(ids) == len(set(ids))  # unique across days


# ---------------------------------------------------------------------------------------- references


def test_references_hold_within_each_batch(day_tables):
    for tables in day_tables.values():
        customers = {r[0]: r for r in tables["CUSTOMER"]}
        accounts = {r[0]: r for r in tables["ACCOUNT"]}
        assert len(customers) == CUSTOMERS and len(accounts) == len(tables["ACCOUNT"])
        assert all(a[1] in customers for a in accounts.values())
        open_accounts = {k for k, a in accounts.items() if a[6] == "A"}
        balances = {r[0]: r for r in tables["BALANCE"]}
        assert len(balances) == len(tables["BALANCE"])
        assert set(balances) == open_accounts  # every open account, and only open accounts
        assert all(b[3] == accounts[k][3] for k, b in balances.items())
        for t in tables["TXN"]:
            assert t[1] in open_accounts and t[5] == accounts[t[1]][3]
        loans = {r[0]: r for r in tables["LOAN"]}
        for loan in loans.values():
            acct = accounts[loan[2]]
            assert (acct[1], acct[2], acct[3], acct[6]) == (loan[1], "LOAN", loan[6], "A")
            assert balances[loan[2]][2] == loan[5]  # the LOAN account's balance is the outstanding
        assert {r[2] for r in loans.values()} == {k for k in open_accounts if accounts[k][2] == "LOAN"}
        used = {a[3] for a in accounts.values()} | {t[5] for t in tables["TXN"]}
        assert used - {"CNY"} <= {r[0] for r in tables["FX_RATE"]}
        # Each customer has a current account; closed customers have nothing open.
        assert {a[1] for a in accounts.values() if a[2] == "CASA"} == set(customers)
        closed = {k for k, c in customers.items() if c[15] == "C"}
        assert not any(accounts[k][1] in closed for k in open_accounts)


# ---------------------------------------------------------------------------------------- lifecycle


def _generate_days(out: Path, customers: int, seed: int, *days: date) -> dict[date, dict[str, list]]:
    for day in days:
        generate(out, customers, day, day, seed=seed)
    return {day: {table: rows(out, day, table) for table in TABLES} for day in days}


@pytest.fixture(scope="module")
def lifecycle_population() -> _Population:
    return _Population(3000, 11, "gbk")


def _first(mask: np.ndarray) -> tuple[int, ...]:
    hits = np.argwhere(mask)
    assert len(hits), "no such event in the test population"
    return tuple(int(x) for x in hits[0])


def test_accounts_open_and_close_during_the_period(tmp_path, lifecycle_population):
    pop = lifecycle_population
    lo, hi = date(2026, 1, 1).toordinal(), date(2026, 12, 31).toordinal()
    steady = (pop.cust_close > hi)[:, None]
    i, k = _first(pop.valid & steady & (pop.acct_open >= lo) & (pop.acct_open <= hi) & (pop.acct_close > hi))
    j, m = _first(pop.valid & steady & (pop.acct_close >= lo) & (pop.acct_close <= hi) & (pop.acct_open < lo))
    acct_new, acct_gone = f"6222{i + 1:010d}{k:02d}", f"6222{j + 1:010d}{m:02d}"
    opened, closed = date.fromordinal(int(pop.acct_open[i, k])), date.fromordinal(int(pop.acct_close[j, m]))
    later = closed + timedelta(days=30)
    days = sorted({opened - timedelta(days=1), opened, closed - timedelta(days=1), closed, later})
    tables = _generate_days(tmp_path, 3000, 11, *days)

    def account(day, acct):
        return next((r for r in tables[day]["ACCOUNT"] if r[0] == acct), None)

    def balance(day, acct):
        return any(r[0] == acct for r in tables[day]["BALANCE"])

    eve = opened - timedelta(days=1)
    assert account(eve, acct_new) is None and not balance(eve, acct_new)
    assert account(opened, acct_new)[4:] == [tag(opened), "", "A"] and balance(opened, acct_new)
    assert account(closed - timedelta(days=1), acct_gone)[5:] == ["", "A"]
    assert balance(closed - timedelta(days=1), acct_gone)
    for day in (closed, later):  # closed accounts stay in the snapshot, closed, without balances
        assert account(day, acct_gone)[5:] == [tag(closed), "C"] and not balance(day, acct_gone)


def test_a_closing_customer_closes_accounts_first_and_stays_closed(tmp_path, lifecycle_population):
    pop = lifecycle_population
    lo, hi = date(2026, 1, 1).toordinal(), date(2030, 1, 1).toordinal()
    (i,) = _first((pop.cust_close >= lo) & (pop.cust_close < hi))
    cust_id, closing = f"C{i + 1:010d}", date.fromordinal(int(pop.cust_close[i]))
    before, later = closing - timedelta(days=2), closing + timedelta(days=40)
    tables = _generate_days(tmp_path, 3000, 11, before, closing, later)
    status = {d: next(r[15] for r in t["CUSTOMER"] if r[0] == cust_id) for d, t in tables.items()}
    assert status[before] in ("A", "D") and status[closing] == status[later] == "C"
    for day in (closing, later):
        accounts = [r for r in tables[day]["ACCOUNT"] if r[1] == cust_id]
        assert accounts and all(r[6] == "C" and r[5] < tag(closing) for r in accounts)
        ids = {r[0] for r in accounts}
        assert not any(r[0] in ids for r in tables[day]["BALANCE"])
        assert not any(r[1] in ids for r in tables[day]["TXN"])
        assert not any(r[1] == cust_id for r in tables[day]["LOAN"])


def test_days_before_the_event_window_show_only_customers_already_open(tmp_path):
    day = date(2008, 6, 30)
    tables = _generate_days(tmp_path, 400, 3, day)[day]
    customers = {r[0]: r for r in tables["CUSTOMER"]}
    assert 0 < len(customers) < 400 and all(r[13] <= tag(day) for r in customers.values())
    assert {r[1] for r in tables["ACCOUNT"]} == set(customers)
    assert {r[0] for r in tables["BALANCE"]} == {r[0] for r in tables["ACCOUNT"] if r[6] == "A"}


# ---------------------------------------------------------------------------------------- realism


def _aum_by_customer(tables: dict[str, list[list[str]]]) -> dict[str, float]:
    rate = {r[0]: float(r[2]) for r in tables["FX_RATE"]} | {"CNY": 1.0}
    owner = {r[0]: (r[1], r[2]) for r in tables["ACCOUNT"]}
    aum = dict.fromkeys((r[0] for r in tables["CUSTOMER"]), 0.0)
    for acct, _, balance, ccy in tables["BALANCE"]:
        cust, product = owner[acct]
        if product not in ("LOAN", "CARD"):
            aum[cust] += float(balance) * rate[ccy]
    return aum


def test_a_20k_sample_fills_every_tier_and_customers_move_between_months(tmp_path):
    ends = (date(2026, 1, 31), date(2026, 2, 28))
    tables = _generate_days(tmp_path, 20_000, 42, *ends)
    kinds = {r[0]: r[1] for r in tables[ends[0]]["CUSTOMER"]}
    retail_ids = {k for k, v in kinds.items() if v == "P"}
    assert 0.93 < Counter(kinds.values())["P"] / len(kinds) < 0.97
    floors = [0, 10_000, 100_000, 300_000, 1_000_000, 6_000_000]
    tiers = {}
    for day in ends:
        aum = _aum_by_customer(tables[day])
        retail = np.array([v for k, v in aum.items() if kinds[k] == "P"])
        counts = np.bincount(np.searchsorted(floors, retail, side="right") - 1, minlength=6)
        assert counts.min() >= 20 and 24 <= counts[5] <= 120, counts  # dozens of ≥ 6 M
        assert 30_000 <= np.median(retail) <= 50_000
        corporate = np.array([v for k, v in aum.items() if kinds[k] != "P"])
        assert (corporate >= 10e6).sum() >= 50 and 1 <= (corporate >= 100e6).sum() <= 100
        tiers[day] = {k: int(np.searchsorted(floors, aum[k], side="right")) for k in retail_ids}
    moves = Counter(np.sign(tiers[ends[1]][k] - tiers[ends[0]][k]) for k in tiers[ends[0]])
    assert moves[1] >= 100 and moves[-1] >= 100
    loans = {r[1] for r in tables[ends[0]]["LOAN"]}
    assert 0.10 <= len(loans & retail_ids) / len(retail_ids) <= 0.15
    txns = tables[ends[1]]["TXN"]
    assert any(r[3] == "DEP" and r[7] == "Y" and float(r[4]) >= 50_000 for r in txns)
    assert Counter(r[15] for r in tables[ends[0]]["CUSTOMER"]).most_common(1)[0][0] == "A"


# ---------------------------------------------------------------------------------------- determinism


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a, b, c = (generate(tmp_path / x, 300, date(2026, 2, 27), date(2026, 3, 1), seed=s) for x, s in
               (("a", 5), ("b", 5), ("c", 6)))
    assert a.records == b.records
    files_a, files_c = _files(tmp_path / "a"), _files(tmp_path / "c")
    assert files_a == _files(tmp_path / "b") and len(files_a) == 3 * 12
    for table in ("CUSTOMER", "BALANCE", "TXN"):
        name = f"20260228/CBS_{table}_20260228.dat"
        assert files_a[name] != files_c[name]


def test_a_day_does_not_depend_on_the_other_days_generated(tmp_path):
    generate(tmp_path / "quarter", 60, date(2026, 1, 1), date(2026, 3, 31), seed=9)
    generate(tmp_path / "march", 60, date(2026, 3, 1), date(2026, 3, 31), seed=9)
    march = _files(tmp_path / "march")
    quarter = {k: v for k, v in _files(tmp_path / "quarter").items() if k.startswith("202603")}
    assert len(march) == 31 * 12 and march == quarter


def test_utf8_mode_writes_the_same_text(tmp_path, gbk):
    generate(tmp_path, CUSTOMERS, DAYS[0], DAYS[0], seed=7, encoding="utf-8")
    for table in TABLES:
        ok = data_path(tmp_path, DAYS[0], table).with_suffix(".ok").read_text("ascii").strip()
        assert ok.endswith("|UTF-8")
        utf8 = data_path(tmp_path, DAYS[0], table).read_bytes()
        assert utf8.decode("utf-8") == data_path(gbk[0], DAYS[0], table).read_bytes().decode("gbk")
    assert rows(tmp_path, DAYS[0], "CUSTOMER", "utf-8") == rows(gbk[0], DAYS[0], "CUSTOMER")


@pytest.mark.parametrize("spelling, label", [("gbk", "GBK"), ("UTF-8", "UTF-8"), ("utf8", "UTF-8")])
def test_encoding_spellings(tmp_path, spelling, label):
    generate(tmp_path, 5, date(2026, 1, 1), date(2026, 1, 1), encoding=spelling)
    ok = (tmp_path / "20260101" / "CBS_FX_RATE_20260101.ok").read_text("ascii")
    assert ok.strip().endswith("|" + label)


def test_rewriting_a_day_leaves_consistent_control_files(tmp_path):
    generate(tmp_path, 50, date(2026, 1, 1), date(2026, 1, 1), seed=1)
    generate(tmp_path, 80, date(2026, 1, 1), date(2026, 1, 1), seed=2)
    for table in TABLES:
        dat = data_path(tmp_path, date(2026, 1, 1), table)
        _, count, size, md5, _ = dat.with_suffix(".ok").read_text("ascii").strip().split("|")
        data = dat.read_bytes()
        assert (int(count), int(size), md5) == (data.count(b"\n"), len(data), hashlib.md5(data).hexdigest())
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("kwargs, message", [
    ({"customers": 0}, "customers"),
    ({"customers": -3}, "customers"),
    ({"customers": 2.5}, "customers"),
    ({"customers": True}, "customers"),
    ({"end": date(2025, 12, 31)}, "before start"),
    ({"start": "2026-01-01"}, "start must be a date"),
    ({"encoding": "latin-1"}, "unknown encoding"),
    ({"encoding": "GB2312"}, "unknown encoding"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, message):
    args = {"out_dir": tmp_path, "customers": 10, "start": date(2026, 1, 1), "end": date(2026, 1, 2)} | kwargs
    with pytest.raises(ValueError, match=message):
        generate(**args)
    assert not any(tmp_path.iterdir())  # nothing written
