"""An independent re-computation of published tiers straight from the landing files, in Python decimals.

It shares no code with the pipeline but the rules file's parameters: it parses the extract
files itself and applies tiering-rules.md literally, so a bug in SQL shows up as a mismatch.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from flows.rules import Rules

CENT = Decimal("0.01")


def read_extract(landing: Path, table: str, day: dt.date) -> list[list[str]]:
    """The records of one extract file as lists of field strings (decoded in the .ok's encoding first)."""
    stamp = day.strftime("%Y%m%d")
    path = landing / stamp / f"CBS_{table}_{stamp}.dat"
    encoding = (path.with_suffix(".ok").read_text(encoding="ascii").strip().split("|")[4])
    text = path.read_bytes().decode("gbk" if encoding.upper() == "GBK" else "utf-8")
    return [line.rstrip("\r").split("|") for line in text.split("\n") if line]


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _days(start: dt.date, end: dt.date):
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


@dataclass
class Expected:
    cust_type: str
    avg_daily_aum_cny: Decimal
    aum_3m_avg_cny: Decimal
    tiers: dict[str, tuple[str, str, int, bool, str]]  # rule_set -> (tier, implied, months_below, on_watch, change)


def compute(landing: Path, rules: Rules, months: list[dt.date],
            skip_lines: set[tuple[str, dt.date, int]] = frozenset()) -> dict[tuple[dt.date, str], Expected]:
    """Expected results per (month end, cust_id) for the given consecutive evaluation months."""
    first_day = months[0].replace(day=1)
    aum_products = set(rules.aum_product_types)
    deposit_products = set(rules.deposit_product_types)
    daily_aum: dict[dt.date, dict[str, Decimal]] = {}
    daily_deposit: dict[dt.date, dict[str, Decimal]] = {}
    for day in _days(first_day, months[-1]):
        fx = {row[0]: Decimal(row[2]) for row in read_extract(landing, "FX_RATE", day)}
        fx["CNY"] = Decimal(1)
        accounts = {row[0]: (row[1], row[2]) for row in read_extract(landing, "ACCOUNT", day)}
        aum, deposit = defaultdict(Decimal), defaultdict(Decimal)
        for line_no, row in enumerate(read_extract(landing, "BALANCE", day), start=1):
            if ("BALANCE", day, line_no) in skip_lines:
                continue
            cust_id, product = accounts[row[0]]
            cny = Decimal(row[2]) * fx[row[3]]
            if product in aum_products:
                aum[cust_id] += cny
            if product in deposit_products:
                deposit[cust_id] += cny
        daily_aum[day], daily_deposit[day] = aum, deposit

    expected: dict[tuple[dt.date, str], Expected] = {}
    previous: dict[str, dict[str, tuple[int, int]]] = {}  # rule_set -> cust -> (tier rank, counter)
    for month in months:
        start = month.replace(day=1)
        days_m = (month - start).days + 1
        window_start = max(first_day, _three_month_start(month))
        days_3m = (month - window_start).days + 1
        customers = {row[0]: row for row in read_extract(landing, "CUSTOMER", month) if row[15] in ("A", "D")}
        fx_end = {row[0]: Decimal(row[2]) for row in read_extract(landing, "FX_RATE", month)}
        fx_end["CNY"] = Decimal(1)
        loans = defaultdict(Decimal)
        for row in read_extract(landing, "LOAN", month):
            loans[row[1]] += Decimal(row[5]) * fx_end[row[6]]
        current: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        for cust_id, row in customers.items():
            sum_1m = sum((daily_aum[d].get(cust_id, Decimal(0)) for d in _days(start, month)), Decimal(0))
            sum_3m = sum((daily_aum[d].get(cust_id, Decimal(0)) for d in _days(window_start, month)), Decimal(0))
            result = Expected(row[1], _avg(sum_1m, days_m), _avg(sum_3m, days_3m), {})
            if row[1] == "P":
                for rule_set in rules.rule_sets.values():
                    total, days = (sum_1m, days_m) if rule_set.measure == "avg_daily_aum_1m" else (sum_3m, days_3m)
                    implied = max(t.rank for t in rule_set.tiers if total >= t.floor_cny * days)
                    tier, counter, change = _hysteresis(
                        rule_set, implied, previous.get(rule_set.name, {}).get(cust_id))
                    current[rule_set.name][cust_id] = (tier, counter)
                    result.tiers[rule_set.name] = (rule_set.tiers[tier].code, rule_set.tiers[implied].code,
                                                   counter, counter > 0, change)
            else:
                deposits = sum((daily_deposit[d].get(cust_id, Decimal(0)) for d in _days(start, month)),
                               Decimal(0))
                rank = max(t.rank for t in rules.corporate_tiers
                           if deposits >= t.deposit_floor_cny * days_m or loans[cust_id] >= t.loan_floor_cny)
                code = rules.corporate_tiers[rank].code
                result.tiers["corporate"] = (code, code, 0, False, "")
            expected[(month, cust_id)] = result
        previous = current
    return expected


def _three_month_start(month: dt.date) -> dt.date:
    year, mon = month.year, month.month - 2
    if mon < 1:
        year, mon = year - 1, mon + 12
    return dt.date(year, mon, 1)


def _avg(total: Decimal, days: int) -> Decimal:
    return (total / days).quantize(CENT, rounding=ROUND_HALF_UP)


def _hysteresis(rule_set, implied: int, prior: tuple[int, int] | None) -> tuple[int, int, str]:
    """Tier rank, months-below counter and change type after this month, per tiering-rules.md."""
    if prior is None:
        return implied, 0, "NEW"
    held, counter = prior
    if implied >= held:
        return implied, 0, "UP" if implied > held else "SAME"
    counter += 1
    if counter < rule_set.tiers[held].grace_months:
        return held, counter, "SAME"
    return implied, 0, "DOWN"
