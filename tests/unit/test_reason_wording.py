"""explain words the reasons the classification models publish, with the bounds they carry."""

from __future__ import annotations

from flows.commands.explain import _classifications, reason_text

FACTS = {"tier": "PLATINUM", "grade": "LOW"}


def test_a_reason_is_worded_with_the_customers_values_and_the_rules_bounds() -> None:
    assert reason_text("TIER_AT_LEAST=BLACK,CREDIT_GRADE_IN=LOW|NONE", FACTS) == \
        "tier PLATINUM ≥ BLACK, credit grade LOW in LOW, NONE"
    assert reason_text("NOT_POTENTIAL,TIER_BELOW=GOLD", {"tier": "CORE", "grade": "HIGH"}) == \
        "not potential, tier CORE < GOLD"
    assert reason_text("DPD_BELOW=1,FIVE_CLASS_BELOW=2", FACTS) == \
        "no loan ≥ 1 days past due, no loan of five-class ≥ 2"


def test_an_unknown_code_is_shown_as_published() -> None:
    assert reason_text("POTENTIAL,NEW_RULE=7", FACTS) == "potential customer (B类), NEW_RULE=7"


def test_a_release_without_reasons_says_so_instead_of_guessing() -> None:
    row = {"value_tier": "PLATINUM"}
    old = _classifications({"customer_class": "A", "credit_grade": "LOW"}, row, None)
    assert old["class_reason"].startswith("not recorded by the release")
    new = _classifications({"customer_class": "A", "credit_grade": "LOW", "credit_grade_reason": "NO_LOAN",
                            "customer_class_reason": "TIER_AT_LEAST=PLATINUM,CREDIT_GRADE_IN=LOW|NONE"}, row, None)
    assert new["class_reason"] == "tier PLATINUM ≥ PLATINUM, credit grade LOW in LOW, NONE"
    assert new["credit_grade_because"] == "no loan"
