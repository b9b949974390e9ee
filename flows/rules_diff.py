"""What a candidate rules file changes, in business terms: one line per changed rule, from the parsed rules.

Ladders are compared tier by tier (by code): floors, grace months, names, tiers added or removed. Every
other rule is compared field by field and named by its place in the rules file. Versions are left out:
they say that something changed, not what.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from flows.rules import CORPORATE_RULE_SET, Rules

NO_CHANGE = "no rule changed"
# Rules fields shown elsewhere (versions, the file) or compared tier by tier.
_NOT_COMPARED = {"path", "version", "corporate_version", "rule_sets", "corporate_tiers"}
# Where a Rules field sits in the rules file, when not at the top under its own name.
_FILE_PLACE = {
    "quadrant": "value_activity_quadrant",
    "corporate_cust_types": "corporate_tiers.cust_types",
    "deposit_product_types": "corporate_tiers.deposit_product_types",
    "retail_strategies": "service_strategies.retail",
    "corporate_strategies": "service_strategies.corporate",
    "max_quarantine_rate": "gate.max_quarantine_rate",
    "warn_on_watch_share": "gate.warn_on_watch_share",
    "warn_downgrade_share": "gate.warn_downgrade_share",
    "drift_warn_share": "gate.drift_warn_share",
    "drift_block_share": "gate.drift_block_share",
    "mask_char": "masking.mask_char",
}
# (label, attribute) compared per tier.
_RETAIL_TIER_FIELDS = (("floor", "floor_cny"), ("grace months", "grace_months"), ("name", "name"))
_CORPORATE_TIER_FIELDS = (("deposit floor", "deposit_floor_cny"), ("loan floor", "loan_floor_cny"),
                          ("name", "name"))


def rule_changes(current: Rules, candidate: Rules) -> list[str]:
    """One line per rule the candidate changes ("cib_monthly GOLD floor 100,000 → 150,000"); empty when
    only versions differ."""
    changes: list[str] = []
    for name in [*current.rule_sets, *(n for n in candidate.rule_sets if n not in current.rule_sets)]:
        old, new = current.rule_sets.get(name), candidate.rule_sets.get(name)
        if old is None or new is None:
            ladder = (new or old).tiers
            changes.append(f"rule set {name} {'added' if old is None else 'removed'} "
                           f"({', '.join(t.code for t in ladder)})")
            continue
        if old.measure != new.measure:
            changes.append(f"{name} measure {old.measure} → {new.measure}")
        changes += _ladder_changes(name, old.tiers, new.tiers, _RETAIL_TIER_FIELDS)
    changes += _ladder_changes(CORPORATE_RULE_SET, current.corporate_tiers, candidate.corporate_tiers,
                               _CORPORATE_TIER_FIELDS)
    for item in dataclasses.fields(Rules):
        if item.name not in _NOT_COMPARED:
            place = _FILE_PLACE.get(item.name, item.name)
            changes += _value_changes(place, getattr(current, item.name), getattr(candidate, item.name))
    return changes


def _ladder_changes(ladder: str, old_tiers, new_tiers, compared) -> list[str]:
    """Tiers (or other coded records) matched by code: removed, changed field by field, added."""
    old = {t.code: t for t in old_tiers}
    new = {t.code: t for t in new_tiers}
    changes = []
    for code, tier in old.items():
        if code not in new:
            changes.append(f"{ladder} tier {code} removed ({_describe(tier, compared)})")
            continue
        for label, attribute in compared:
            before, after = getattr(tier, attribute), getattr(new[code], attribute)
            if before != after:
                changes.append(f"{ladder} {code} {label} {_text(before)} → {_text(after)}")
    for code, tier in new.items():
        if code not in old:
            changes.append(f"{ladder} tier {code} added ({_describe(tier, compared)})")
    return changes


def _describe(tier, compared) -> str:
    return ", ".join(f"{label} {_text(getattr(tier, attribute))}" for label, attribute in compared)


def _value_changes(place: str, before, after) -> list[str]:
    if before == after:
        return []
    if dataclasses.is_dataclass(before) and type(before) is type(after):
        return [line for item in dataclasses.fields(before)
                for line in _value_changes(f"{place}.{item.metadata.get('yaml') or item.name}",
                                           getattr(before, item.name), getattr(after, item.name))]
    if isinstance(before, dict) and isinstance(after, dict):
        return [line for key in [*before, *(k for k in after if k not in before)]
                for line in _value_changes(f"{place}.{key}", before.get(key, _MISSING), after.get(key, _MISSING))]
    if isinstance(before, tuple) and isinstance(after, tuple):
        records = [v for v in before + after if dataclasses.is_dataclass(v)]
        if records:  # need levels: matched by code like the tiers of a ladder
            compared = [(f.name, f.name) for f in dataclasses.fields(records[0]) if f.name not in ("code", "rank")]
            return _ladder_changes(place, before, after, compared)
        if place.startswith("masking."):  # (keep_first, keep_last), not a list of codes
            return [f"{place} keep first/last {'/'.join(map(str, before))} → {'/'.join(map(str, after))}"]
        added = [v for v in after if v not in before]
        removed = [v for v in before if v not in after]
        if not added and not removed:
            return [f"{place} reordered: {_text(before)} → {_text(after)}"]
        listed = [f"{verb} {_text(tuple(values))}" for verb, values in (("added", added), ("removed", removed))
                  if values]
        return [f"{place}: {'; '.join(listed)}"]
    return [f"{place} {_text(before)} → {_text(after)}"]


_MISSING = object()  # a key one side lacks


def _text(value) -> str:
    if value is None or value is _MISSING:
        return "(none)"
    if isinstance(value, Decimal):
        # Amounts read best with thousands separators; shares and rates stay as written.
        return f"{value:,}" if value >= 1000 else str(value)
    if isinstance(value, tuple):
        return ", ".join(map(_text, value)) or "(none)"
    return str(value)
