"""The rules file: load, validate, and render it as dbt seeds.

`rules/tiering_rules.yml` is the single place for ladders, grace months, versions, masking and
gate bounds. dbt never reads the YAML itself: `write_seeds` renders it into `rule_*.csv` seeds.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

MEASURES = ("avg_daily_aum_1m", "avg_daily_aum_3m")
PRODUCT_TYPES = ("CASA", "TD", "WM", "FUND", "INS", "GOLD", "LOAN", "CARD")
CUST_TYPES = ("P", "C", "I", "F")
MASKED_FIELDS = ("cust_name", "cert_no", "mobile")
# The name under which corporate tiers are published next to the retail rule sets.
CORPORATE_RULE_SET = "corporate"
SEED_FILES = (
    "rule_value_tiers.csv",
    "rule_corporate_tiers.csv",
    "rule_product_types.csv",
    "rule_parameters.csv",
)


class RulesError(ValueError):
    """The rules file is invalid; the message names the place and the problem."""


@dataclass(frozen=True)
class Tier:
    code: str
    name: str
    rank: int
    floor_cny: Decimal
    grace_months: int


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    measure: str
    tiers: tuple[Tier, ...]

    def tier(self, code: str) -> Tier:
        return next(t for t in self.tiers if t.code == code)


@dataclass(frozen=True)
class CorporateTier:
    code: str
    name: str
    rank: int
    deposit_floor_cny: Decimal
    loan_floor_cny: Decimal


@dataclass(frozen=True)
class Rules:
    path: Path
    version: str
    active_rule_set: str
    aum_product_types: tuple[str, ...]
    rule_sets: dict[str, RuleSet]
    corporate_version: str
    corporate_cust_types: tuple[str, ...]
    deposit_product_types: tuple[str, ...]
    corporate_tiers: tuple[CorporateTier, ...]
    masking: dict[str, tuple[int, int]]
    mask_char: str
    max_quarantine_rate: Decimal
    warn_on_watch_share: Decimal
    warn_downgrade_share: Decimal

    @property
    def active(self) -> RuleSet:
        return self.rule_sets[self.active_rule_set]


def _require(mapping: dict, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise RulesError(f"{where}: missing '{key}'")
    return mapping[key]


def _decimal(value, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise RulesError(f"{where}: {value!r} is not a number") from None
    if not result.is_finite() or result < 0:
        raise RulesError(f"{where}: {value!r} must be a non-negative number")
    return result


def _ladder_checks(codes: list[str], floors: list[Decimal], where: str) -> None:
    if len(set(codes)) != len(codes):
        raise RulesError(f"{where}: duplicate tier code")
    if not floors or floors[0] != 0:
        raise RulesError(f"{where}: the lowest tier's floor must be 0")
    for lower, higher, code in zip(floors, floors[1:], codes[1:], strict=False):
        if higher <= lower:
            raise RulesError(f"{where}: floor of {code} ({higher}) must be above the tier below ({lower})")


def load_rules(path: Path) -> Rules:
    """Read and validate the rules file; raise RulesError naming the first problem."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"rules file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from None
    where = str(path)

    rule_sets: dict[str, RuleSet] = {}
    for name, spec in _require(doc, "rule_sets", where).items():
        at = f"{where}: rule_sets.{name}"
        if name == CORPORATE_RULE_SET:
            raise RulesError(f"{at}: the name {CORPORATE_RULE_SET!r} is reserved for corporate tiers")
        measure = _require(spec, "measure", at)
        if measure not in MEASURES:
            raise RulesError(f"{at}: measure {measure!r} is not one of {', '.join(MEASURES)}")
        tiers = []
        for rank, tier in enumerate(_require(spec, "tiers", at)):
            tat = f"{at}.tiers[{rank}]"
            grace = _require(tier, "grace_months", tat)
            if not isinstance(grace, int) or grace < 1:
                raise RulesError(f"{tat}: grace_months must be a whole number ≥ 1")
            tiers.append(Tier(str(_require(tier, "code", tat)), str(_require(tier, "name", tat)), rank,
                              _decimal(_require(tier, "floor_cny", tat), tat), grace))
        _ladder_checks([t.code for t in tiers], [t.floor_cny for t in tiers], at)
        rule_sets[name] = RuleSet(name, str(_require(spec, "version", at)), measure, tuple(tiers))

    active = _require(doc, "active_rule_set", where)
    if active not in rule_sets:
        raise RulesError(f"{where}: active_rule_set {active!r} is not a rule set ({', '.join(rule_sets)})")

    aum_products = tuple(_require(doc, "aum_product_types", where))
    corp = _require(doc, "corporate_tiers", where)
    deposit_products = tuple(_require(corp, "deposit_product_types", f"{where}: corporate_tiers"))
    for product in aum_products + deposit_products:
        if product not in PRODUCT_TYPES:
            raise RulesError(f"{where}: unknown product type {product!r}")
    corp_types = tuple(_require(corp, "cust_types", f"{where}: corporate_tiers"))
    for cust_type in corp_types:
        if cust_type not in CUST_TYPES or cust_type == "P":
            raise RulesError(f"{where}: corporate_tiers.cust_types: {cust_type!r} is not C, I or F")
    corp_tiers = []
    for rank, tier in enumerate(_require(corp, "tiers", f"{where}: corporate_tiers")):
        tat = f"{where}: corporate_tiers.tiers[{rank}]"
        corp_tiers.append(CorporateTier(
            str(_require(tier, "code", tat)), str(_require(tier, "name", tat)), rank,
            _decimal(_require(tier, "deposit_floor_cny", tat), tat),
            _decimal(_require(tier, "loan_floor_cny", tat), tat)))
    for floors in ([t.deposit_floor_cny for t in corp_tiers], [t.loan_floor_cny for t in corp_tiers]):
        _ladder_checks([t.code for t in corp_tiers], floors, f"{where}: corporate_tiers")

    masking_doc = _require(doc, "masking", where)
    masking = {}
    for field in MASKED_FIELDS:
        spec = _require(masking_doc, field, f"{where}: masking")
        keep = (int(_require(spec, "keep_first", f"{where}: masking.{field}")),
                int(_require(spec, "keep_last", f"{where}: masking.{field}")))
        if min(keep) < 0:
            raise RulesError(f"{where}: masking.{field}: keep counts must be ≥ 0")
        masking[field] = keep

    gate_doc = _require(doc, "gate", where)
    shares = {}
    for key in ("max_quarantine_rate", "warn_on_watch_share", "warn_downgrade_share"):
        shares[key] = _decimal(_require(gate_doc, key, f"{where}: gate"), f"{where}: gate.{key}")
        if shares[key] > 1:
            raise RulesError(f"{where}: gate.{key} must be a share between 0 and 1")

    return Rules(
        path=path,
        version=str(_require(doc, "version", where)),
        active_rule_set=active,
        aum_product_types=aum_products,
        rule_sets=rule_sets,
        corporate_version=str(_require(corp, "version", f"{where}: corporate_tiers")),
        corporate_cust_types=corp_types,
        deposit_product_types=deposit_products,
        corporate_tiers=tuple(corp_tiers),
        masking=masking,
        mask_char=str(masking_doc.get("mask_char", "*")),
        **shares,
    )


def seed_rows(rules: Rules) -> dict[str, list[dict[str, object]]]:
    """The rules as seed tables, keyed by seed file name."""
    value_tiers = [
        {
            "rule_set": rs.name,
            "rule_set_version": rs.version,
            "measure": rs.measure,
            "is_active": str(rs.name == rules.active_rule_set).lower(),
            "tier_code": t.code,
            "tier_name": t.name,
            "tier_rank": t.rank,
            "floor_cny": t.floor_cny,
            "grace_months": t.grace_months,
        }
        for rs in rules.rule_sets.values()
        for t in rs.tiers
    ]
    corporate = [
        {
            "rule_set": CORPORATE_RULE_SET,
            "tier_code": t.code,
            "tier_name": t.name,
            "tier_rank": t.rank,
            "deposit_floor_cny": t.deposit_floor_cny,
            "loan_floor_cny": t.loan_floor_cny,
            "rule_set_version": rules.corporate_version,
        }
        for t in rules.corporate_tiers
    ]
    products = [
        {
            "product_type": p,
            "is_aum": str(p in rules.aum_product_types).lower(),
            "is_deposit": str(p in rules.deposit_product_types).lower(),
        }
        for p in PRODUCT_TYPES
    ]
    parameters = [
        {"parameter": "rules_version", "value": rules.version},
        {"parameter": "active_rule_set", "value": rules.active_rule_set},
        {"parameter": "corporate_cust_types", "value": ",".join(rules.corporate_cust_types)},
        {"parameter": "mask_char", "value": rules.mask_char},
        {"parameter": "max_quarantine_rate", "value": str(rules.max_quarantine_rate)},
    ]
    for field, (first, last) in rules.masking.items():
        parameters.append({"parameter": f"mask_{field}_keep_first", "value": str(first)})
        parameters.append({"parameter": f"mask_{field}_keep_last", "value": str(last)})
    return dict(zip(SEED_FILES, (value_tiers, corporate, products, parameters), strict=True))


def write_seeds(rules: Rules, seeds_dir: Path) -> list[Path]:
    """Render the rules into dbt seed CSVs (UTF-8); return the files written."""
    seeds_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in seed_rows(rules).items():
        target = seeds_dir / name
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written.append(target)
    return written
