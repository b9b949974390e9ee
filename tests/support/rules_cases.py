"""Invalid rules files, each one edit away from the default: shared by the back-test and the run's preflight."""

from __future__ import annotations

from pathlib import Path

from flows.settings import DEFAULT_RULES


def candidate_with(tmp_path: Path, old: str, new: str, name: str = "candidate.yml") -> Path:
    """The default rules file with `old` (which must occur once) replaced by `new`, written under tmp_path."""
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


INVALID = {
    # name: (old text, new text, problem in the message)
    "overlapping floors": ('PLATINUM, name: 白金客户,     floor_cny: "300000"', 'PLATINUM, name: 白金客户,     floor_cny: "100000"', "must be above the tier below"),
    "unordered floors": ('floor_cny: "300000"', 'floor_cny: "50000"', "must be above the tier below"),
    "lowest floor not 0": ('{code: NONCORE,  name: 非核心客户,   floor_cny: "0"',
                           '{code: NONCORE,  name: 非核心客户,   floor_cny: "1"', "lowest tier's floor must be 0"),
    "unknown measure": ("measure: avg_daily_aum_3m", "measure: avg_daily_aum_6m", "'avg_daily_aum_6m'"),
    "unknown product type": ("aum_product_types: [CASA, TD, WM, FUND, INS, GOLD]",
                             "aum_product_types: [CASA, TD, WM, FUND, INS, SILVER]", "unknown product type"),
    "unknown active rule set": ("active_rule_set: cib_monthly", "active_rule_set: cib_weekly", "is not a rule set"),
    "missing name": ("{code: GOLD,     name: 黄金客户,", "{code: GOLD,", "missing 'name'"),
}
