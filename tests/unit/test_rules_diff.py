"""flows.rules_diff: what a candidate rules file changes, in business terms."""

from __future__ import annotations

from flows.rules import load_rules
from flows.rules_diff import rule_changes
from flows.settings import DEFAULT_RULES
from tests.support.rules_cases import candidate_with


def test_only_the_version_changed_is_no_rule_change(tmp_path):
    candidate = candidate_with(tmp_path, 'version: "2026.11.1"', 'version: "2026.12.0"')
    assert rule_changes(load_rules(DEFAULT_RULES), load_rules(candidate)) == []


def test_tiers_added_and_removed_and_other_rules_are_named_by_their_place(tmp_path):
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    for old, new in (
            ('      - {code: GOLD,', '      - {code: SILVER, name: 白银客户, floor_cny: "50000", grace_months: 2}\n'
                                    '      - {code: GOLD,'),
            ("    CORE: 标准化产品 + 线上渠道\n", "    CORE: 标准化产品 + 线上渠道\n    SILVER: 标准化产品\n"),
            ('    - {code: KEY,       name: 重点客户, deposit_floor_cny: "10000000",  loan_floor_cny: "50000000"}\n',
             ""),
            ("    KEY: 专属团队 + 现金管理\n", ""),
            ('  aum_decline_share: "0.30"', '  aum_decline_share: "0.25"'),
            ("occupations: [ACC, LAW]", "occupations: [ACC, DOC]")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    candidate = tmp_path / "candidate.yml"
    candidate.write_text(text, encoding="utf-8")
    assert rule_changes(load_rules(DEFAULT_RULES), load_rules(candidate)) == [
        "cib_monthly tier SILVER added (floor 50,000, grace months 2, name 白银客户)",
        "corporate tier KEY removed (deposit floor 10,000,000, loan floor 50,000,000, name 重点客户)",
        "potential.occupations: added DOC; removed LAW",
        "churn.aum_decline_share 0.30 → 0.25",
        "service_strategies.retail.SILVER (none) → 标准化产品",
        "service_strategies.corporate.KEY 专属团队 + 现金管理 → (none)",
    ]
