"""The rules file: the shipped file loads, broken files fail naming the place, seeds mirror the YAML."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from flows.rules import PRODUCT_TYPES, SEED_FILES, RulesError, load_rules, seed_rows, write_seeds
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
    written = write_seeds(load_rules(DEFAULT_RULES), tmp_path / "seeds")
    assert [p.name for p in written] == list(SEED_FILES)

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

    parameters = {r["parameter"]: r["value"] for r in _read_csv(tmp_path / "seeds" / "rule_parameters.csv")}
    assert parameters["rules_version"] == doc["version"]
    assert parameters["active_rule_set"] == doc["active_rule_set"]
    assert parameters["corporate_cust_types"] == ",".join(corp["cust_types"])
    assert parameters["mask_char"] == doc["masking"]["mask_char"]
    for field in ("cust_name", "cert_no", "mobile"):
        assert parameters[f"mask_{field}_keep_first"] == str(doc["masking"][field]["keep_first"])
        assert parameters[f"mask_{field}_keep_last"] == str(doc["masking"][field]["keep_last"])


def test_seed_floors_are_exact_decimals():
    rows = seed_rows(load_rules(DEFAULT_RULES))["rule_value_tiers.csv"]
    assert all(isinstance(row["floor_cny"], Decimal) for row in rows)
