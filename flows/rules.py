"""The rules file: load, validate, and render it as dbt seeds.

`rules/tiering_rules.yml` is the single place for ladders, grace months, versions, masking and
gate bounds. dbt never reads the YAML itself: `write_seeds` renders it into `rule_*.csv` seeds: a table
seed per list (ladders, labels, strategies) and one typed single-row seed per section of scalars and
lists (`SECTION_SEEDS`). A section's dataclass declares each field once (`rule`): how the file states it,
which `_read_section` validates, and its SQL type, from which come the seed's columns and its completeness
tests (`seed_properties`).
"""

from __future__ import annotations

import csv
import typing
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

MEASURES = ("avg_daily_aum_1m", "avg_daily_aum_3m")
PRODUCT_TYPES = ("CASA", "TD", "WM", "FUND", "INS", "GOLD", "LOAN", "CARD")
CUST_TYPES = ("P", "C", "I", "F")
MASKED_FIELDS = ("cust_name", "cert_no", "mobile")
# Code lists of the extract spec, for validating the classification rules.
TXN_TYPES = ("DEP", "WDL", "TRI", "TRO", "PAY", "SAL", "FEE", "INT", "XBI", "XBO")
LOAN_TYPES = ("MTG", "CON", "BIZ", "CRD")
EDUCATION_CODES = (1, 2, 3, 4)
OCCUPATIONS = ("ACC", "LAW", "DOC", "TEA", "CIV", "ENG", "OTH")
KYC_RISK_LEVELS = ("L", "M", "H")
FIVE_CLASSES = (1, 2, 3, 4, 5)
# Codes fixed by the published contract (docs/ARCHITECTURE.md): the rules file names them, never invents them.
RFM_CLASSES = ("HHH", "LHH", "HLH", "LLH", "HHL", "LHL", "HLL", "LLL")
QUADRANTS = ("HIGH_VALUE_HIGH_ACTIVITY", "HIGH_VALUE_LOW_ACTIVITY", "LOW_VALUE_HIGH_ACTIVITY",
             "LOW_VALUE_LOW_ACTIVITY")
NEED_LEVELS = ("BASIC", "ADVANCED", "PROFESSIONAL")
AML_LEVELS = ("LOW", "MEDIUM", "HIGH")
CREDIT_GRADES = ("NONE", "LOW", "MEDIUM", "HIGH")
# The name under which corporate tiers are published next to the retail rule sets.
CORPORATE_RULE_SET = "corporate"
SEED_FILES = (
    "rule_value_tiers.csv",
    "rule_corporate_tiers.csv",
    "rule_product_types.csv",
    "rule_rfm_classes.csv",
    "rule_quadrants.csv",
    "rule_need_levels.csv",
    "rule_aml_kyc_levels.csv",
    "rule_service_strategies.csv",
)


SECTION_PROPERTIES = "_seeds__sections.yml"


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


def rule(kind: str, *, yaml: str | None = None, sql: str | None = None, minimum: int = 0,
         codes: tuple = (), what: str = ""):
    """Declare a section field once: how the rules file states it (`kind`, at `yaml` path inside the
    section, default the field's name) and, for decimals, its SQL type in the section's seed.

    kinds: count (whole number ≥ minimum), decimal (non-negative, exact), tier (a code of the active
    ladder), codes (a list of `codes`, each a `what`), derived (read by the section's own code).
    """
    return field(metadata={"kind": kind, "yaml": yaml, "sql": sql, "minimum": minimum, "codes": codes,
                           "what": what})


@dataclass(frozen=True)
class RfmRules:
    recency_cap_days: int = rule("count", minimum=1)
    frequency_window_days: int = rule("count", minimum=1)
    non_activity_txn_types: tuple[str, ...] = rule("codes", codes=TXN_TYPES, what="txn type")
    class_names: dict[str, str] = rule("derived", yaml="classes")


@dataclass(frozen=True)
class QuadrantRules:
    high_value_min_tier: str = rule("tier")
    high_activity_min_frequency: int = rule("count")
    actions: dict[str, str] = rule("derived")


@dataclass(frozen=True)
class NeedLevel:
    code: str
    name: str
    rank: int
    product_types: tuple[str, ...]
    min_tier: str | None


@dataclass(frozen=True)
class CreditGradeRules:
    medium_min_dpd: int = rule("count")
    high_min_dpd: int = rule("count")
    medium_min_five_class: int = rule("count")
    high_min_five_class: int = rule("count")

    def check(self, at: str) -> None:
        if not 1 <= self.medium_min_dpd <= self.high_min_dpd:
            raise RulesError(f"{at}: need 1 ≤ medium_min_dpd ≤ high_min_dpd")
        for key in ("medium_min_five_class", "high_min_five_class"):
            if getattr(self, key) not in FIVE_CLASSES[1:]:
                raise RulesError(f"{at}.{key}: {getattr(self, key)!r} is not a five_class code 2–5")
        if self.medium_min_five_class > self.high_min_five_class:
            raise RulesError(f"{at}: medium_min_five_class must not exceed high_min_five_class")


@dataclass(frozen=True)
class AmlRules:
    cash_single_min_cny: Decimal = rule("decimal", sql="decimal(18, 2)")
    cross_border_txn_types: tuple[str, ...] = rule("codes", codes=TXN_TYPES, what="txn type")
    cross_border_monthly_min_usd: Decimal = rule("decimal", sql="decimal(18, 2)")
    high_risk_countries: tuple[str, ...] = rule("derived")
    kyc_levels: dict[str, str] = rule("derived")


@dataclass(frozen=True)
class PotentialRules:
    max_tier: str = rule("tier")
    min_education: int = rule("count")
    min_monthly_income_cny: Decimal = rule("decimal", sql="decimal(18, 2)")
    occupations: tuple[str, ...] = rule("codes", codes=OCCUPATIONS, what="occupation")
    mortgage_loan_type: str = rule("derived")
    mortgage_max_dpd: int = rule("count")

    def check(self, at: str) -> None:
        if self.min_education not in EDUCATION_CODES:
            raise RulesError(f"{at}.min_education: {self.min_education!r} is not an education code 1–4")
        if self.mortgage_loan_type not in LOAN_TYPES:
            raise RulesError(f"{at}.mortgage_loan_type: unknown loan type {self.mortgage_loan_type!r}")


@dataclass(frozen=True)
class CustomerClassRules:
    a_min_tier: str = rule("tier", yaml="A.min_tier")
    a_credit_grades: tuple[str, ...] = rule("codes", yaml="A.credit_grades", codes=CREDIT_GRADES,
                                            what="credit grade")
    b_min_tier: str = rule("tier", yaml="B.min_tier")
    b_excluded_credit_grades: tuple[str, ...] = rule("codes", yaml="B.excluded_credit_grades",
                                                     codes=CREDIT_GRADES, what="credit grade")


@dataclass(frozen=True)
class ChurnRules:
    min_tier: str = rule("tier")
    aum_decline_share: Decimal = rule("decimal", sql="decimal(9, 4)")
    decline_months_back: int = rule("count", minimum=1)
    inactive_after_days: int = rule("count")

    def check(self, at: str) -> None:
        if not 0 < self.aum_decline_share <= 1:
            raise RulesError(f"{at}.aum_decline_share must be a share above 0 and at most 1")


@dataclass(frozen=True)
class OverrideRules:
    """Tier overrides (特批): how long one may hold, and the share of a tier above which the gate warns."""
    max_override_months: int = rule("count", minimum=1)
    warn_overridden_share_of_tier: Decimal = rule("decimal", sql="decimal(9, 4)")

    def check(self, at: str) -> None:
        if not 0 < self.warn_overridden_share_of_tier <= 1:
            raise RulesError(f"{at}.warn_overridden_share_of_tier must be a share above 0 and at most 1")


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
    drift_warn_share: Decimal
    drift_block_share: Decimal
    rfm: RfmRules
    quadrant: QuadrantRules
    need_levels: tuple[NeedLevel, ...]
    credit_grade: CreditGradeRules
    aml: AmlRules
    potential: PotentialRules
    customer_class: CustomerClassRules
    churn: ChurnRules
    overrides: OverrideRules
    # Strategy text per tier code: the active retail ladder's and the corporate ladder's.
    retail_strategies: dict[str, str]
    corporate_strategies: dict[str, str]

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


def _count(value, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RulesError(f"{where}: {value!r} must be a whole number ≥ {minimum}")
    return value


def _label(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RulesError(f"{where}: missing label")
    return value


def _codes(values, known, where: str, what: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise RulesError(f"{where}: must be a list of {what}s")
    for value in values:
        if value not in known:
            raise RulesError(f"{where}: unknown {what} {value!r}")
    return tuple(values)


def _tier_code(value, codes: list[str], where: str, ladder: str) -> str:
    if value not in codes:
        raise RulesError(f"{where}: unknown tier code {value!r} (not in the {ladder} ladder: {', '.join(codes)})")
    return value


def _labels_by_code(mapping, codes, where: str) -> dict[str, str]:
    # Exactly one non-empty label per expected code, in the expected order.
    if not isinstance(mapping, dict):
        raise RulesError(f"{where}: must map codes to labels")
    for code in mapping:
        if code not in codes:
            raise RulesError(f"{where}: unknown code {code!r}")
    return {code: _label(_require(mapping, code, where), f"{where}.{code}") for code in codes}


def _read_section(section_type: type, doc: dict, name: str, where: str, ladder: list[str], ladder_name: str,
                  derived: dict | None = None):
    """Read and validate section `name` of the rules file by its dataclass's declared fields (`rule`):
    each field at its yaml path, checked by its kind; `derived` fields come read already; then the
    dataclass's own cross-field `check`, if any. Errors name the section path (rules_lines adds the line)."""
    at = f"{where}: {name}"
    section = _require(doc, name, where)
    values = dict(derived or {})
    for item in fields(section_type):
        meta = item.metadata
        if meta["kind"] == "derived":
            continue
        *parents, key = (meta["yaml"] or item.name).split(".")
        holder, holder_at = section, at
        for parent in parents:
            holder, holder_at = _require(holder, parent, holder_at), f"{holder_at}.{parent}"
        raw, place = _require(holder, key, holder_at), f"{holder_at}.{key}"
        if meta["kind"] == "count":
            values[item.name] = _count(raw, place, meta["minimum"])
        elif meta["kind"] == "decimal":
            values[item.name] = _decimal(raw, place)
        elif meta["kind"] == "tier":
            values[item.name] = _tier_code(raw, ladder, place, ladder_name)
        elif meta["kind"] == "codes":
            values[item.name] = _codes(raw, meta["codes"], place, meta["what"])
        else:
            raise TypeError(f"{section_type.__name__}.{item.name}: unknown rule kind {meta['kind']!r}")
    result = section_type(**values)
    if hasattr(result, "check"):
        result.check(at)
    return result


def _classifications(doc: dict, where: str, active: RuleSet, corp_tiers: list[CorporateTier]) -> dict:
    """Validate the classification sections; return the Rules fields they fill."""
    ladder = [t.code for t in active.tiers]
    ladder_name = f"active rule set {active.name}"

    def tier(spec: dict, key: str, at: str) -> str:
        return _tier_code(_require(spec, key, at), ladder, f"{at}.{key}", ladder_name)

    def section(section_type: type, name: str, derived: dict | None = None):
        return _read_section(section_type, doc, name, where, ladder, ladder_name, derived)

    at = f"{where}: rfm"
    rfm_doc = _require(doc, "rfm", where)
    classes = _require(rfm_doc, "classes", at)
    if not isinstance(classes, list):
        raise RulesError(f"{at}.classes: must be a list of {{code, name}}")
    class_map = {}
    for index, spec in enumerate(classes):
        code = _require(spec, "code", f"{at}.classes[{index}]")
        if code not in RFM_CLASSES or code in class_map:
            raise RulesError(f"{at}.classes[{index}]: unknown or duplicate RFM class {code!r}")
        class_map[code] = _label(_require(spec, "name", f"{at}.classes[{index}]"), f"{at}.classes[{index}].name")
    for code in RFM_CLASSES:
        if code not in class_map:
            raise RulesError(f"{at}.classes: missing label for RFM class {code}")
    rfm = section(RfmRules, "rfm", {"class_names": {code: class_map[code] for code in RFM_CLASSES}})

    at = f"{where}: value_activity_quadrant"
    quad_doc = _require(doc, "value_activity_quadrant", where)
    quadrant = section(QuadrantRules, "value_activity_quadrant",
                       {"actions": _labels_by_code(_require(quad_doc, "actions", at), QUADRANTS, f"{at}.actions")})

    at = f"{where}: need_levels"
    levels_doc = _require(doc, "need_levels", where)
    if not isinstance(levels_doc, list) or [lv.get("code") for lv in levels_doc if isinstance(lv, dict)] != list(
            NEED_LEVELS):
        raise RulesError(f"{at}: must list the levels {', '.join(NEED_LEVELS)} in this order")
    need_levels = []
    for rank, spec in enumerate(levels_doc):
        lat = f"{at}[{rank}]"
        min_tier = spec.get("min_tier")
        need_levels.append(NeedLevel(
            spec["code"], _label(_require(spec, "name", lat), f"{lat}.name"), rank,
            _codes(_require(spec, "product_types", lat), PRODUCT_TYPES, f"{lat}.product_types", "product type"),
            None if min_tier is None else tier(spec, "min_tier", lat)))

    credit = section(CreditGradeRules, "credit_grade")

    at = f"{where}: aml"
    aml_doc = _require(doc, "aml", where)
    countries = _require(aml_doc, "high_risk_countries", at)
    if not isinstance(countries, list) or not all(
            isinstance(c, str) and len(c) == 2 and c.isascii() and c.isalpha() and c.isupper() for c in countries):
        raise RulesError(f"{at}.high_risk_countries: must be ISO 3166 alpha-2 codes, e.g. [KP, IR]")
    kyc = _require(aml_doc, "kyc_levels", at)
    if not isinstance(kyc, dict) or set(kyc) != set(KYC_RISK_LEVELS):
        raise RulesError(f"{at}.kyc_levels: must map each of {', '.join(KYC_RISK_LEVELS)} to an AML level")
    for level, aml_level in kyc.items():
        if aml_level not in AML_LEVELS:
            raise RulesError(f"{at}.kyc_levels.{level}: unknown AML level {aml_level!r}")
    aml = section(AmlRules, "aml", {"high_risk_countries": tuple(countries),
                                    "kyc_levels": {level: kyc[level] for level in KYC_RISK_LEVELS}})

    pot_doc = _require(doc, "potential", where)
    potential = section(PotentialRules, "potential",
                        {"mortgage_loan_type": _require(pot_doc, "mortgage_loan_type", f"{where}: potential")})
    customer_class = section(CustomerClassRules, "customer_class")
    churn = section(ChurnRules, "churn")
    overrides = section(OverrideRules, "overrides")

    at = f"{where}: service_strategies"
    strat_doc = _require(doc, "service_strategies", where)
    retail = _require(strat_doc, "retail", at)
    if isinstance(retail, dict):
        for code in retail:
            _tier_code(code, ladder, f"{at}.retail", ladder_name)
    corporate = _require(strat_doc, "corporate", at)
    if isinstance(corporate, dict):
        for code in corporate:
            _tier_code(code, [t.code for t in corp_tiers], f"{at}.corporate", "corporate")

    return {
        "rfm": rfm,
        "quadrant": quadrant,
        "need_levels": tuple(need_levels),
        "credit_grade": credit,
        "aml": aml,
        "potential": potential,
        "customer_class": customer_class,
        "churn": churn,
        "overrides": overrides,
        "retail_strategies": _labels_by_code(retail, ladder, f"{at}.retail"),
        "corporate_strategies": _labels_by_code(corporate, [t.code for t in corp_tiers], f"{at}.corporate"),
    }


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
    for masked in MASKED_FIELDS:
        spec = _require(masking_doc, masked, f"{where}: masking")
        keep = (int(_require(spec, "keep_first", f"{where}: masking.{masked}")),
                int(_require(spec, "keep_last", f"{where}: masking.{masked}")))
        if min(keep) < 0:
            raise RulesError(f"{where}: masking.{masked}: keep counts must be ≥ 0")
        masking[masked] = keep

    gate_doc = _require(doc, "gate", where)
    shares = {}
    for key in ("max_quarantine_rate", "warn_on_watch_share", "warn_downgrade_share", "drift_warn_share",
                "drift_block_share"):
        shares[key] = _decimal(_require(gate_doc, key, f"{where}: gate"), f"{where}: gate.{key}")
        if shares[key] > 1:
            raise RulesError(f"{where}: gate.{key} must be a share between 0 and 1")
    if shares["drift_warn_share"] > shares["drift_block_share"]:
        raise RulesError(f"{where}: gate.drift_warn_share must not be above gate.drift_block_share")

    classifications = _classifications(doc, where, rule_sets[active], corp_tiers)

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
        **classifications,
    )


@dataclass(frozen=True)
class ReleaseSection:
    """The release-wide rules dbt stamps on or applies to every row."""
    rules_version: str
    active_rule_set: str
    corporate_cust_types: tuple[str, ...]


@dataclass(frozen=True)
class MaskingSection:
    """Masking of personal data: characters kept at each end, and the mask character."""
    mask_char: str
    cust_name_keep_first: int
    cust_name_keep_last: int
    cert_no_keep_first: int
    cert_no_keep_last: int
    mobile_keep_first: int
    mobile_keep_last: int


# Typed single-row seeds: seed name → (section dataclass, how to get it from the Rules). A section's scalar
# and list fields become the seed's columns; mapping fields (labels, actions, KYC levels) are table seeds.
SECTION_SEEDS: dict[str, tuple[type, typing.Callable[[Rules], object]]] = {
    "rule_release": (ReleaseSection, lambda r: ReleaseSection(r.version, r.active_rule_set, r.corporate_cust_types)),
    "rule_masking": (MaskingSection, lambda r: MaskingSection(r.mask_char, *(
        keep for name in MASKED_FIELDS for keep in r.masking[name]))),
    "rule_rfm": (RfmRules, lambda r: r.rfm),
    "rule_value_activity_quadrant": (QuadrantRules, lambda r: r.quadrant),
    "rule_credit_grade": (CreditGradeRules, lambda r: r.credit_grade),
    "rule_aml": (AmlRules, lambda r: r.aml),
    "rule_potential": (PotentialRules, lambda r: r.potential),
    "rule_customer_class": (CustomerClassRules, lambda r: r.customer_class),
    "rule_churn": (ChurnRules, lambda r: r.churn),
}
# Types both engines read: `string` is DuckDB's VARCHAR and Spark's STRING. Spark's seed loader has no list
# type: there a list column stays text and the models parse it (macro rule_list, macros/dialect.sql).
SQL_TYPES = {int: "integer", str: "string",
             tuple[str, ...]: "{{ 'string' if target.type == 'spark' else 'varchar[]' }}"}


def section_columns(section: type) -> dict[str, str]:
    """The seed columns of a section dataclass and their SQL types (mapping fields are left out)."""
    hints = typing.get_type_hints(section)
    columns = {}
    for item in fields(section):
        kind = hints[item.name]
        if typing.get_origin(kind) is dict:
            continue
        sql = item.metadata.get("sql") or SQL_TYPES.get(kind)
        if sql is None:
            raise TypeError(f"{section.__name__}.{item.name}: declare its SQL type (field metadata 'sql')")
        columns[item.name] = sql
    return columns


def _seed_value(value: object) -> object:
    # Lists as DuckDB list literals, which the seed's varchar[] column reads: [LOW, NONE].
    return f"[{', '.join(value)}]" if isinstance(value, tuple) else value


def seed_properties() -> dict:
    """dbt properties of the typed section seeds: column types, and a completeness test per column."""
    seeds = []
    for name, (section, _) in SECTION_SEEDS.items():
        columns = section_columns(section)
        seeds.append({
            "name": name,
            "description": f"Generated from the rules file ({section.__name__}): one row, one typed column per rule.",
            "config": {"column_types": columns},
            "data_tests": [{"exactly_one_complete_row": {"arguments": {"column_names": list(columns)}}}],
        })
    return {"version": 2, "seeds": seeds}


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
    rfm_classes = [{"rfm_class": code, "rfm_class_name": name} for code, name in rules.rfm.class_names.items()]
    quadrants = [
        {
            "quadrant": code,
            "is_high_value": str(code.startswith("HIGH_VALUE")).lower(),
            "is_high_activity": str(code.endswith("HIGH_ACTIVITY")).lower(),
            "quadrant_action": action,
        }
        for code, action in rules.quadrant.actions.items()
    ]
    need_levels = [
        {
            "need_level": level.code,
            "need_level_name": level.name,
            "need_rank": level.rank,
            "product_types": ",".join(level.product_types),
            "min_tier_code": level.min_tier or "",
        }
        for level in rules.need_levels
    ]
    kyc_levels = [
        {"kyc_risk_level": kyc, "aml_level": level,
         "aml_trigger": {"HIGH": "KYC_HIGH", "MEDIUM": "KYC_MEDIUM"}.get(level, "")}
        for kyc, level in rules.aml.kyc_levels.items()
    ]
    strategies = [
        {"rule_set": rules.active_rule_set, "tier_code": code, "service_strategy": text}
        for code, text in rules.retail_strategies.items()
    ] + [
        {"rule_set": CORPORATE_RULE_SET, "tier_code": code, "service_strategy": text}
        for code, text in rules.corporate_strategies.items()
    ]
    tables = (value_tiers, corporate, products, rfm_classes, quadrants, need_levels, kyc_levels, strategies)
    sections = {}
    for name, (section, get) in SECTION_SEEDS.items():
        values = get(rules)
        sections[f"{name}.csv"] = [{column: _seed_value(getattr(values, column))
                                    for column in section_columns(section)}]
    return {**dict(zip(SEED_FILES, tables, strict=True)), **sections}


def write_seeds(rules: Rules, seeds_dir: Path) -> list[Path]:
    """Render the rules into dbt seed CSVs (UTF-8); return the files written."""
    seeds_dir.mkdir(parents=True, exist_ok=True)
    rows = seed_rows(rules)
    # A seed a previous version generated (e.g. the key/value rule_parameters) would still load: remove it.
    for stale in seeds_dir.glob("rule_*.csv"):
        if stale.name not in rows:
            stale.unlink()
    written = []
    properties = seeds_dir / SECTION_PROPERTIES
    properties.write_text("# Generated by flows/rules.py from the section dataclasses: do not edit.\n"
                          + yaml.safe_dump(seed_properties(), sort_keys=False, allow_unicode=True),
                          encoding="utf-8")
    written.append(properties)
    for name, table in rows.items():
        target = seeds_dir / name
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)
        written.append(target)
    return written


if __name__ == "__main__":
    # `python -m flows.rules`: write the seeds dbt needs to parse the project (`make lint` on a fresh clone).
    from flows.settings import Settings

    _settings = Settings.from_env()
    for _path in write_seeds(load_rules(_settings.rules_path), _settings.dbt_project_dir / "seeds"):
        print(f"wrote {_path.relative_to(_settings.dbt_project_dir.parent)}")
