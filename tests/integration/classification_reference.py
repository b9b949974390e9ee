"""An independent re-computation of the issue-3 classifications from the landing files, in Python decimals.

Like `reference_model.py` it shares no code with the pipeline but the rules file's parameters: it parses
CBS_CUSTOMER, CBS_ACCOUNT, CBS_TXN, CBS_LOAN and CBS_FX_RATE itself and applies
the tiering rules (tiering-rules.md) literally. Readings where the rules text is silent (kept in one place here):

- a transaction belongs to the customer of its account in that day's account snapshot;
- R counts calendar days from the last customer-initiated transaction's date to as_of (≤ as_of only);
  F counts those dated in [as_of − (window − 1), as_of] (the window's days end at as_of, inclusive);
- High/Low and scores use the exact (unrounded) monthly average as M;
- a product is "held" when the customer has an open account (status A) of it in the month-end snapshot;
- "three-month decline" compares M's monthly average with that `churn.decline_months_back` months before
  (the rules file's parameter): decline = (before − now) / before, none when before is 0 or not loaded;
- AML uses every transaction of M (txn date in M): cash = cash_flag Y; amounts in CNY at the day's rate,
  cross-border total in USD at each transaction day's USD rate; counterparty country of any transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from flows.rules import Rules
from tests.integration.reference_model import _days, _month_end, read_extract


@dataclass
class Classified:
    cust_type: str
    tier: str
    rfm_r: int | None = None
    rfm_f: int | None = None
    rfm_m: Decimal | None = None  # exact
    scores: tuple[int, int, int] | None = None
    rfm_class: str | None = None
    activity_level: str | None = None
    quadrant: str | None = None
    need_level: str | None = None
    credit_grade: str | None = None
    potential_reasons: frozenset[str] | None = None
    customer_class: str | None = None
    churn_reasons: frozenset[str] | None = None
    service_strategy: str | None = None
    aml_level: str = "LOW"
    aml_triggers: frozenset[str] = field(default_factory=frozenset)
    aml_txns: set[tuple[str, str]] = field(default_factory=set)  # (trigger, txn_id)


def _add_months(month_end: dt.date, months: int) -> dt.date:
    total = month_end.year * 12 + month_end.month - 1 + months
    return _month_end(dt.date(total // 12, total % 12 + 1, 1))


def _monthly_avg(landing: Path, rules: Rules, month: dt.date, first_day: dt.date,
                 cache: dict[dt.date, dict[str, Decimal]]) -> dict[str, Decimal] | None:
    """Exact monthly average daily AUM per customer, None when the month is not wholly loaded."""
    start = month.replace(day=1)
    if start < first_day:
        return None
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for day in _days(start, month):
        if day not in cache:
            fx = {row[0]: Decimal(row[2]) for row in read_extract(landing, "FX_RATE", day)}
            fx["CNY"] = Decimal(1)
            accounts = {row[0]: (row[1], row[2]) for row in read_extract(landing, "ACCOUNT", day)}
            aum: dict[str, Decimal] = defaultdict(Decimal)
            for row in read_extract(landing, "BALANCE", day):
                cust_id, product = accounts[row[0]]
                if product in rules.aum_product_types:
                    aum[cust_id] += Decimal(row[2]) * fx[row[3]]
            cache[day] = aum
        for cust_id, value in cache[day].items():
            totals[cust_id] += value
    days = (month - start).days + 1
    return {cust_id: total / days for cust_id, total in totals.items()}


def compute(landing: Path, rules: Rules, month: dt.date, first_day: dt.date,
            tiers: dict[str, tuple[str, str]]) -> dict[str, Classified]:
    """Classifications of month `month` (its last day) for the customers of `tiers`
    ({cust_id: (cust_type, published tier code)}), from the landing files loaded since `first_day`."""
    active = rules.active
    rank = {t.code: t.rank for t in active.tiers}
    customers = {row[0]: row for row in read_extract(landing, "CUSTOMER", month)}
    month_start = month.replace(day=1)
    window_start = month - dt.timedelta(days=rules.rfm.frequency_window_days - 1)
    cap = rules.rfm.recency_cap_days

    # Transactions of the loaded history up to as_of, with their customer and CNY / USD amounts.
    last_activity: dict[str, dt.date] = {}
    frequency: dict[str, int] = defaultdict(int)
    cash_large: dict[str, set[str]] = defaultdict(set)
    cross_border: dict[str, list[tuple[str, Decimal]]] = defaultdict(list)
    risky: dict[str, set[str]] = defaultdict(set)
    for day in _days(first_day, month):
        accounts = {row[0]: row[1] for row in read_extract(landing, "ACCOUNT", day)}
        fx = {row[0]: Decimal(row[2]) for row in read_extract(landing, "FX_RATE", day)}
        fx["CNY"] = Decimal(1)
        for txn_id, acct, _time, txn_type, amount, currency, _ch, cash, country in read_extract(landing, "TXN", day):
            cust_id = accounts[acct]
            if txn_type not in rules.rfm.non_activity_txn_types:
                last_activity[cust_id] = day
                if day >= window_start:
                    frequency[cust_id] += 1
            if day < month_start:
                continue
            cny = Decimal(amount) * fx[currency]
            if cash == "Y" and cny >= rules.aml.cash_single_min_cny:
                cash_large[cust_id].add(txn_id)
            if txn_type in rules.aml.cross_border_txn_types:
                if "USD" not in fx:
                    raise ValueError(f"no USD rate on {day}: cannot convert cross-border txn {txn_id}")
                cross_border[cust_id].append((txn_id, cny / fx["USD"]))
            if country and country in rules.aml.high_risk_countries:
                risky[cust_id].add(txn_id)

    # Month-end holdings and loans.
    holdings: dict[str, set[str]] = defaultdict(set)
    for row in read_extract(landing, "ACCOUNT", month):
        if row[6] == "A":
            holdings[row[1]].add(row[2])
    loans: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for row in read_extract(landing, "LOAN", month):
        loans[row[1]].append((row[3], int(row[7]), int(row[8])))

    cache: dict[dt.date, dict[str, Decimal]] = {}
    m_now = _monthly_avg(landing, rules, month, first_day, cache) or {}
    m_before = _monthly_avg(landing, rules, _add_months(month, -rules.churn.decline_months_back), first_day,
                            cache)

    out: dict[str, Classified] = {}
    for cust_id, (cust_type, tier) in tiers.items():
        row = customers[cust_id]
        c = Classified(cust_type, tier)
        c.credit_grade = _credit_grade(rules, loans.get(cust_id, []))
        if cust_type == "P":
            c.rfm_r = min((month - last_activity[cust_id]).days, cap) if cust_id in last_activity else cap
            c.rfm_f = frequency.get(cust_id, 0)
            c.rfm_m = m_now.get(cust_id, Decimal(0))
            c.activity_level = "HIGH" if c.rfm_f >= rules.quadrant.high_activity_min_frequency else "LOW"
            value = "HIGH" if rank[tier] >= rank[rules.quadrant.high_value_min_tier] else "LOW"
            c.quadrant = f"{value}_VALUE_{c.activity_level}_ACTIVITY"
            c.need_level = _need_level(rules, holdings.get(cust_id, set()), rank[tier], rank)
            c.potential_reasons = _potential(rules, row, loans.get(cust_id, []), rank[tier], rank)
            if rank[tier] >= rank[rules.customer_class.a_min_tier] and \
                    c.credit_grade in rules.customer_class.a_credit_grades:
                c.customer_class = "A"
            elif c.potential_reasons or (rank[tier] >= rank[rules.customer_class.b_min_tier]
                                         and c.credit_grade not in rules.customer_class.b_excluded_credit_grades):
                c.customer_class = "B"
            else:
                c.customer_class = "C"
            churn = set()
            if rank[tier] >= rank[rules.churn.min_tier]:
                before = (m_before or {}).get(cust_id, Decimal(0)) if m_before is not None else Decimal(0)
                if before > 0 and (before - c.rfm_m) / before >= rules.churn.aum_decline_share:
                    churn.add("AUM_DECLINE")
                if c.rfm_r > rules.churn.inactive_after_days:
                    churn.add("INACTIVE")
            c.churn_reasons = frozenset(churn)
            c.service_strategy = rules.retail_strategies[tier]
        else:
            c.need_level = rules.need_levels[-1].code
            c.service_strategy = rules.corporate_strategies[tier]
        # AML, every customer type.
        triggers = set()
        kyc = rules.aml.kyc_levels.get(row[14], "LOW")
        if kyc == "HIGH":
            triggers.add("KYC_HIGH")
        elif kyc == "MEDIUM":
            triggers.add("KYC_MEDIUM")
        if cash_large.get(cust_id):
            triggers.add("CASH_LARGE")
            c.aml_txns |= {("CASH_LARGE", t) for t in cash_large[cust_id]}
        xb = cross_border.get(cust_id, [])
        if xb and sum((usd for _, usd in xb), Decimal(0)) >= rules.aml.cross_border_monthly_min_usd:
            triggers.add("CROSS_BORDER_TOTAL")
            c.aml_txns |= {("CROSS_BORDER_TOTAL", t) for t, _ in xb}
        if risky.get(cust_id):
            triggers.add("HIGH_RISK_COUNTRY")
            c.aml_txns |= {("HIGH_RISK_COUNTRY", t) for t in risky[cust_id]}
        c.aml_triggers = frozenset(triggers)
        c.aml_level = ("HIGH" if triggers - {"KYC_MEDIUM"} else "MEDIUM" if "KYC_MEDIUM" in triggers else "LOW")
        out[cust_id] = c

    _rfm_ranks(out)
    return out


def _credit_grade(rules: Rules, loans: list[tuple[str, int, int]]) -> str:
    if not loans:
        return "NONE"
    g = rules.credit_grade
    if any(dpd >= g.high_min_dpd or five >= g.high_min_five_class for _, dpd, five in loans):
        return "HIGH"
    if any(dpd >= g.medium_min_dpd or five >= g.medium_min_five_class for _, dpd, five in loans):
        return "MEDIUM"
    return "LOW"


def _need_level(rules: Rules, held: set[str], tier_rank: int, rank: dict[str, int]) -> str:
    level = rules.need_levels[0].code
    for lv in rules.need_levels:
        if (lv.product_types and held & set(lv.product_types)) or \
                (lv.min_tier is not None and tier_rank >= rank[lv.min_tier]):
            level = lv.code
    return level


def _potential(rules: Rules, row: list[str], loans: list[tuple[str, int, int]], tier_rank: int,
               rank: dict[str, int]) -> frozenset[str]:
    p = rules.potential
    if tier_rank > rank[p.max_tier]:
        return frozenset()
    reasons = set()
    if any(t == p.mortgage_loan_type and dpd <= p.mortgage_max_dpd for t, dpd, _ in loans):
        reasons.add("MORTGAGE_CURRENT")
    if row[8] and int(row[8]) >= p.min_education:
        reasons.add("EDUCATION")
    if row[10] and Decimal(row[10]) >= p.min_monthly_income_cny:
        reasons.add("INCOME")
    if row[9] and row[9] in p.occupations:
        reasons.add("OCCUPATION")
    return frozenset(reasons)


def _rfm_ranks(out: dict[str, Classified]) -> None:
    """Scores and High/Low letters over the retail customers with a tier (the population)."""
    pop = [c for c in out.values() if c.cust_type == "P"]
    n = len(pop)
    if not n:
        return
    mean_r = Decimal(sum(c.rfm_r for c in pop)) / n
    mean_f = Decimal(sum(c.rfm_f for c in pop)) / n
    mean_m = sum((c.rfm_m for c in pop), Decimal(0)) / n
    # "goodness" per measure: higher is better (R: fewer days is better).
    def score(values: list, value) -> int:
        worse = sum(1 for v in values if v < value)  # rank() from worst to best = 1 + strictly worse
        return 1 + (5 * worse) // n
    goods = {"r": [-c.rfm_r for c in pop], "f": [c.rfm_f for c in pop], "m": [c.rfm_m for c in pop]}
    for c in pop:
        c.scores = (score(goods["r"], -c.rfm_r), score(goods["f"], c.rfm_f), score(goods["m"], c.rfm_m))
        c.rfm_class = (("H" if c.rfm_r < mean_r else "L") + ("H" if c.rfm_f > mean_f else "L")
                       + ("H" if c.rfm_m > mean_m else "L"))
