"""The rules file: the shipped file loads, broken files fail naming the place, seeds mirror the YAML."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from flows.rules import (
    PRODUCT_TYPES,
    SECTION_PROPERTIES,
    SECTION_SEEDS,
    SEED_FILES,
    RulesError,
    load_rules,
    seed_rows,
    write_seeds,
)
from flows.settings import DEFAULT_RULES


@pytest.fixture()
def doc() -> dict:
    """A fresh parsed copy of the shipped rules file to break."""
    return yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _load_error(tmp_path: Path, doc: dict) -> str:
    with pytest.raises(RulesError) as info:
        load_rules(_write(tmp_path, doc))
    return str(info.value)


def test_shipped_rules_load():
    rules = load_rules(DEFAULT_RULES)
    assert rules.active_rule_set == "cib_monthly"
    assert set(rules.rule_sets) == {"cib_monthly", "abc_quarterly"}
    cib = rules.rule_sets["cib_monthly"]
    assert [t.code for t in cib.tiers] == ["NONCORE", "CORE", "GOLD", "PLATINUM", "BLACK", "DIAMOND"]
    assert [t.floor_cny for t in cib.tiers] == [Decimal(x) for x in ("0", "10000", "100000", "300000",
                                                                     "1000000", "6000000")]
    assert cib.tier("DIAMOND").grace_months == 6
    assert rules.rule_sets["abc_quarterly"].measure == "avg_daily_aum_3m"
    assert "LOAN" not in rules.aum_product_types and "CARD" not in rules.aum_product_types
    assert [t.code for t in rules.corporate_tiers] == ["GENERAL", "KEY", "STRATEGIC"]
    assert rules.masking["cert_no"] == (3, 4)


def test_unordered_floors_name_the_rule_set_and_tier(tmp_path, doc):
    doc["rule_sets"]["cib_monthly"]["tiers"][1]["floor_cny"] = "200000"
    message = _load_error(tmp_path, doc)
    assert "rule_sets.cib_monthly" in message and "GOLD" in message


def test_overlapping_floors_are_rejected(tmp_path, doc):
    doc["rule_sets"]["abc_quarterly"]["tiers"][2]["floor_cny"] = "500000"
    message = _load_error(tmp_path, doc)
    assert "rule_sets.abc_quarterly" in message and "PLATINUM_CARD" in message


def test_lowest_floor_must_be_zero(tmp_path, doc):
    doc["rule_sets"]["cib_monthly"]["tiers"][0]["floor_cny"] = "1"
    message = _load_error(tmp_path, doc)
    assert "rule_sets.cib_monthly" in message and "lowest tier's floor must be 0" in message


def test_corporate_floors_are_checked_too(tmp_path, doc):
    doc["corporate_tiers"]["tiers"][2]["loan_floor_cny"] = "1000"
    message = _load_error(tmp_path, doc)
    assert "corporate_tiers" in message and "STRATEGIC" in message


def test_unknown_measure(tmp_path, doc):
    doc["rule_sets"]["cib_monthly"]["measure"] = "avg_daily_aum_6m"
    message = _load_error(tmp_path, doc)
    assert "rule_sets.cib_monthly" in message and "avg_daily_aum_6m" in message


def test_unknown_product(tmp_path, doc):
    doc["aum_product_types"].append("BOND")
    assert "unknown product type 'BOND'" in _load_error(tmp_path, doc)


@pytest.mark.parametrize(
    ("path", "where", "key"),
    [
        (("version",), "", "version"),
        (("masking",), "", "masking"),
        (("rule_sets", "cib_monthly", "version"), "rule_sets.cib_monthly", "version"),
        (("rule_sets", "abc_quarterly", "tiers", 1, "grace_months"), "rule_sets.abc_quarterly.tiers[1]",
         "grace_months"),
        (("corporate_tiers", "tiers", 1, "loan_floor_cny"), "corporate_tiers.tiers[1]", "loan_floor_cny"),
        (("masking", "mobile", "keep_last"), "masking.mobile", "keep_last"),
    ],
)
def test_missing_keys_are_named(tmp_path, doc, path, where, key):
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    message = _load_error(tmp_path, doc)
    assert f"missing '{key}'" in message and where in message and "rules.yml" in message


def test_unknown_active_rule_set(tmp_path, doc):
    doc["active_rule_set"] = "boc_yearly"
    message = _load_error(tmp_path, doc)
    assert "active_rule_set 'boc_yearly'" in message


def test_corporate_is_a_reserved_rule_set_name(tmp_path, doc):
    doc["rule_sets"]["corporate"] = doc["rule_sets"]["abc_quarterly"]
    assert "reserved" in _load_error(tmp_path, doc)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("rule_sets: [unclosed", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_rendered_seeds_match_the_yaml(tmp_path, doc):
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "rule_parameters.csv").write_text("parameter,value\n", encoding="utf-8")
    written = write_seeds(load_rules(DEFAULT_RULES), tmp_path / "seeds")
    sections = [f"{name}.csv" for name in SECTION_SEEDS]
    assert [p.name for p in written] == [SECTION_PROPERTIES, *SEED_FILES, *sections]

    value_tiers = _read_csv(tmp_path / "seeds" / "rule_value_tiers.csv")
    expected = [
        (name, spec["version"], spec["measure"], str(name == doc["active_rule_set"]).lower(),
         tier["code"], tier["name"], str(rank), Decimal(tier["floor_cny"]), str(tier["grace_months"]))
        for name, spec in doc["rule_sets"].items()
        for rank, tier in enumerate(spec["tiers"])
    ]
    assert [(r["rule_set"], r["rule_set_version"], r["measure"], r["is_active"], r["tier_code"], r["tier_name"],
             r["tier_rank"], Decimal(r["floor_cny"]), r["grace_months"]) for r in value_tiers] == expected

    corporate = _read_csv(tmp_path / "seeds" / "rule_corporate_tiers.csv")
    corp = doc["corporate_tiers"]
    assert [(r["rule_set"], r["tier_code"], r["tier_name"], Decimal(r["deposit_floor_cny"]),
             Decimal(r["loan_floor_cny"]), r["rule_set_version"]) for r in corporate] == [
        ("corporate", t["code"], t["name"], Decimal(t["deposit_floor_cny"]), Decimal(t["loan_floor_cny"]),
         corp["version"]) for t in corp["tiers"]]

    products = {r["product_type"]: r for r in _read_csv(tmp_path / "seeds" / "rule_product_types.csv")}
    assert set(products) == set(PRODUCT_TYPES)
    for product, row in products.items():
        assert row["is_aum"] == str(product in doc["aum_product_types"]).lower()
        assert row["is_deposit"] == str(product in corp["deposit_product_types"]).lower()

    (release,) = _read_csv(tmp_path / "seeds" / "rule_release.csv")
    assert release["rules_version"] == doc["version"]
    assert release["active_rule_set"] == doc["active_rule_set"]
    assert release["corporate_cust_types"] == f"[{', '.join(corp['cust_types'])}]"
    (masking,) = _read_csv(tmp_path / "seeds" / "rule_masking.csv")
    assert masking["mask_char"] == doc["masking"]["mask_char"]
    for field in ("cust_name", "cert_no", "mobile"):
        assert masking[f"{field}_keep_first"] == str(doc["masking"][field]["keep_first"])
        assert masking[f"{field}_keep_last"] == str(doc["masking"][field]["keep_last"])
    assert not (tmp_path / "seeds" / "rule_parameters.csv").exists()


def test_seed_floors_are_exact_decimals():
    rows = seed_rows(load_rules(DEFAULT_RULES))["rule_value_tiers.csv"]
    assert all(isinstance(row["floor_cny"], Decimal) for row in rows)


def test_shipped_classification_rules_load():
    rules = load_rules(DEFAULT_RULES)
    assert rules.rfm.recency_cap_days == 365 and rules.rfm.non_activity_txn_types == ("FEE", "INT")
    assert list(rules.rfm.class_names) == ["HHH", "LHH", "HLH", "LLH", "HHL", "LHL", "HLL", "LLL"]
    assert rules.quadrant.high_value_min_tier == "GOLD" and rules.quadrant.high_activity_min_frequency == 12
    assert [lv.code for lv in rules.need_levels] == ["BASIC", "ADVANCED", "PROFESSIONAL"]
    assert rules.need_levels[2].min_tier == "BLACK"
    assert rules.aml.cash_single_min_cny == Decimal("50000") and rules.aml.kyc_levels["H"] == "HIGH"
    assert rules.churn.aum_decline_share == Decimal("0.30")
    assert set(rules.retail_strategies) == {t.code for t in rules.active.tiers}
    assert set(rules.corporate_strategies) == {t.code for t in rules.corporate_tiers}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("value_activity_quadrant", "high_value_min_tier"), "GOLD_CARD", "value_activity_quadrant.high_value_min_tier"),
        (("potential", "max_tier"), "SILVER", "potential.max_tier"),
        (("customer_class", "A", "min_tier"), "STRATEGIC", "customer_class.A.min_tier"),
        (("churn", "min_tier"), "KEY", "churn.min_tier"),
        (("need_levels", 2, "min_tier"), "ULTRA", "need_levels[2].min_tier"),
    ],
)
def test_unknown_tier_codes_name_the_place(tmp_path, doc, path, value, expected):
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    message = _load_error(tmp_path, doc)
    assert expected in message and f"unknown tier code {value!r}" in message and "cib_monthly" in message


def test_strategies_must_cover_the_active_and_corporate_ladders(tmp_path, doc):
    del doc["service_strategies"]["retail"]["PLATINUM"]
    assert "service_strategies.retail: missing 'PLATINUM'" in _load_error(tmp_path, doc)
    doc = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    doc["service_strategies"]["corporate"]["VIP"] = "x"
    message = _load_error(tmp_path, doc)
    assert "service_strategies.corporate" in message and "'VIP'" in message


def test_switching_the_active_rule_set_requires_matching_tier_codes(tmp_path, doc):
    doc["active_rule_set"] = "abc_quarterly"
    message = _load_error(tmp_path, doc)
    assert "unknown tier code 'GOLD'" in message and "abc_quarterly" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("rfm", "classes", 0, "name"), "", "rfm.classes[0].name: missing label"),
        (("value_activity_quadrant", "actions", "HIGH_VALUE_LOW_ACTIVITY"), " ",
         "value_activity_quadrant.actions.HIGH_VALUE_LOW_ACTIVITY: missing label"),
        (("need_levels", 1, "name"), None, "need_levels[1].name: missing label"),
        (("service_strategies", "retail", "CORE"), "", "service_strategies.retail.CORE: missing label"),
    ],
)
def test_missing_labels_name_the_place(tmp_path, doc, path, value, expected):
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    assert expected in _load_error(tmp_path, doc)


def test_missing_rfm_class_label(tmp_path, doc):
    doc["rfm"]["classes"] = doc["rfm"]["classes"][:-1]
    assert "missing label for RFM class LLL" in _load_error(tmp_path, doc)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("rfm", "non_activity_txn_types"), ["FEE", "TAX"], "rfm.non_activity_txn_types: unknown txn type 'TAX'"),
        (("aml", "cross_border_txn_types"), ["XBI", "SWIFT"], "aml.cross_border_txn_types: unknown txn type 'SWIFT'"),
        (("need_levels", 1, "product_types"), ["WM", "BOND"], "need_levels[1].product_types: unknown product type"),
        (("potential", "mortgage_loan_type"), "HOUSE", "potential.mortgage_loan_type: unknown loan type 'HOUSE'"),
        (("potential", "occupations"), ["ACC", "PILOT"], "potential.occupations: unknown occupation 'PILOT'"),
        (("potential", "min_education"), 5, "potential.min_education"),
        (("customer_class", "A", "credit_grades"), ["LOW", "NONE", "OK"], "customer_class.A.credit_grades"),
        (("aml", "kyc_levels", "H"), "SEVERE", "aml.kyc_levels.H: unknown AML level 'SEVERE'"),
        (("aml", "high_risk_countries"), ["KP", "iran"], "aml.high_risk_countries"),
        (("credit_grade", "high_min_five_class"), 6, "credit_grade.high_min_five_class"),
    ],
)
def test_unknown_codes_name_the_place(tmp_path, doc, path, value, expected):
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    assert expected in _load_error(tmp_path, doc)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("rfm", "recency_cap_days"), -1, "rfm.recency_cap_days"),
        (("rfm", "frequency_window_days"), 0, "rfm.frequency_window_days"),
        (("value_activity_quadrant", "high_activity_min_frequency"), -12,
         "value_activity_quadrant.high_activity_min_frequency"),
        (("credit_grade", "high_min_dpd"), -90, "credit_grade.high_min_dpd"),
        (("aml", "cash_single_min_cny"), "-50000", "aml.cash_single_min_cny"),
        (("aml", "cross_border_monthly_min_usd"), "-1", "aml.cross_border_monthly_min_usd"),
        (("potential", "min_monthly_income_cny"), "-20000", "potential.min_monthly_income_cny"),
        (("potential", "mortgage_max_dpd"), -1, "potential.mortgage_max_dpd"),
        (("churn", "aum_decline_share"), "-0.3", "churn.aum_decline_share"),
        (("churn", "aum_decline_share"), "1.5", "churn.aum_decline_share"),
        (("churn", "inactive_after_days"), -90, "churn.inactive_after_days"),
        (("overrides", "max_override_months"), 0, "overrides.max_override_months"),
        (("overrides", "warn_overridden_share_of_tier"), "0", "overrides.warn_overridden_share_of_tier"),
    ],
)
def test_negative_or_out_of_range_numbers_name_the_place(tmp_path, doc, path, value, expected):
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    assert expected in _load_error(tmp_path, doc)


def test_credit_bounds_must_be_ordered(tmp_path, doc):
    doc["credit_grade"]["medium_min_dpd"] = 120
    assert "credit_grade: need 1 ≤ medium_min_dpd ≤ high_min_dpd" in _load_error(tmp_path, doc)


def test_classification_seeds_mirror_the_yaml(tmp_path, doc):
    write_seeds(load_rules(DEFAULT_RULES), tmp_path / "seeds")
    seeds = tmp_path / "seeds"
    classes = _read_csv(seeds / "rule_rfm_classes.csv")
    assert [(r["rfm_class"], r["rfm_class_name"]) for r in classes] == [
        (c["code"], c["name"]) for c in doc["rfm"]["classes"]]
    quadrants = {r["quadrant"]: r for r in _read_csv(seeds / "rule_quadrants.csv")}
    assert quadrants["HIGH_VALUE_LOW_ACTIVITY"]["is_high_value"] == "true"
    assert quadrants["HIGH_VALUE_LOW_ACTIVITY"]["is_high_activity"] == "false"
    assert quadrants["LOW_VALUE_HIGH_ACTIVITY"]["quadrant_action"] == doc["value_activity_quadrant"]["actions"][
        "LOW_VALUE_HIGH_ACTIVITY"]
    levels = _read_csv(seeds / "rule_need_levels.csv")
    assert [(r["need_level"], r["product_types"], r["min_tier_code"]) for r in levels] == [
        ("BASIC", "CASA,TD", ""), ("ADVANCED", "WM,FUND,INS,GOLD", ""), ("PROFESSIONAL", "", "BLACK")]
    kyc = {r["kyc_risk_level"]: (r["aml_level"], r["aml_trigger"]) for r in _read_csv(seeds / "rule_aml_kyc_levels.csv")}
    assert kyc == {"L": ("LOW", ""), "M": ("MEDIUM", "KYC_MEDIUM"), "H": ("HIGH", "KYC_HIGH")}
    strategies = {(r["rule_set"], r["tier_code"]): r["service_strategy"]
                  for r in _read_csv(seeds / "rule_service_strategies.csv")}
    assert strategies[("cib_monthly", "DIAMOND")] == doc["service_strategies"]["retail"]["DIAMOND"]
    assert strategies[("corporate", "KEY")] == doc["service_strategies"]["corporate"]["KEY"]
    (rfm,) = _read_csv(seeds / "rule_rfm.csv")
    assert rfm["non_activity_txn_types"] == "[FEE, INT]"
    (aml,) = _read_csv(seeds / "rule_aml.csv")
    assert aml["high_risk_countries"] == f"[{', '.join(doc['aml']['high_risk_countries'])}]"
    (churn,) = _read_csv(seeds / "rule_churn.csv")
    assert churn["aum_decline_share"] == doc["churn"]["aum_decline_share"]
    (customer_class,) = _read_csv(seeds / "rule_customer_class.csv")
    assert customer_class["a_credit_grades"] == "[LOW, NONE]"
    (potential,) = _read_csv(seeds / "rule_potential.csv")
    assert potential["min_monthly_income_cny"] == "20000"


def test_every_section_seed_is_typed_and_tested_from_its_dataclass(tmp_path: Path) -> None:
    """The section dataclasses drive the seeds, their column types and completeness tests (one place)."""
    import dataclasses

    from flows.rules import section_columns

    write_seeds(load_rules(DEFAULT_RULES), tmp_path)
    properties = yaml.safe_load((tmp_path / SECTION_PROPERTIES).read_text(encoding="utf-8"))["seeds"]
    assert [p["name"] for p in properties] == list(SECTION_SEEDS)
    for prop in properties:
        section = SECTION_SEEDS[prop["name"]][0]
        scalar = [f.name for f in dataclasses.fields(section) if not f.type.startswith("dict")]
        assert list(prop["config"]["column_types"]) == scalar == list(section_columns(section))
        assert prop["data_tests"] == [{"exactly_one_complete_row": {"arguments": {"column_names": scalar}}}]
        (row,) = _read_csv(tmp_path / f"{prop['name']}.csv")
        assert list(row) == scalar and all(value != "" for value in row.values())
    # Money and shares are typed DECIMAL; a field without a declared SQL type cannot be rendered.
    assert section_columns(SECTION_SEEDS["rule_churn"][0])["aum_decline_share"] == "decimal(9, 4)"

    @dataclasses.dataclass
    class Undeclared:
        bound: Decimal

    with pytest.raises(TypeError, match="declare its SQL type"):
        section_columns(Undeclared)


def _set_at(doc: dict, path: list[str], value) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


INVALID_BY_KIND = {"count": -1, "decimal": "lots", "tier": "NOSUCH", "codes": ["NOSUCH"]}


@pytest.mark.parametrize("seed", [name for name in SECTION_SEEDS if name not in ("rule_release", "rule_masking")])
def test_each_declared_field_is_validated_by_its_kind_and_named_with_its_line(tmp_path: Path, seed: str) -> None:
    """The section dataclass drives validation too: every field it declares is checked by its kind, and the
    refusal names the field's path in the file and its line (as `tiering backtest` and preflight show it)."""
    import dataclasses

    from flows.rules_lines import check_candidate, line_map

    section_type, section_name = SECTION_SEEDS[seed][0], seed.removeprefix("rule_")
    declared = [f for f in dataclasses.fields(section_type) if f.metadata["kind"] in INVALID_BY_KIND]
    assert declared
    for item in declared:
        doc = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
        path = [section_name, *(item.metadata["yaml"] or item.name).split(".")]
        _set_at(doc, path, INVALID_BY_KIND[item.metadata["kind"]])
        candidate = tmp_path / f"{item.name}.yml"
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        candidate.write_text(text, encoding="utf-8")
        with pytest.raises(RulesError) as refused:
            check_candidate(candidate)
        dotted = ".".join(path)
        # A bad list item is named with its own line.
        named = f"{dotted}[0]" if item.metadata["kind"] == "codes" else dotted
        assert f"line {line_map(text)[named]}:" in str(refused.value), (item.name, str(refused.value))
        assert dotted.split(".", 1)[1] in str(refused.value), (item.name, str(refused.value))
