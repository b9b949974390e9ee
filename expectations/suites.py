"""The gate's suites: which tables are validated, where they live, and every check on them with its severity.

Blocking checks (a failure stops publication) and warnings (reported only) for the candidate month:

| table | check | severity |
|---|---|---|
| customer_segment | one_row_per_customer_month | blocking |
| customer_segment | <column>_not_null (cust_id, cust_type, value_tier, implied_tier, …) | blocking |
| customer_segment | as_of_month_is_month_end, cust_type_known | blocking |
| customer_segment | rules_version_matches_rules_file | blocking |
| customer_segment | retail_/corporate_ value_tier / implied_tier _in_ladder | blocking |
| customer_segment | avg_daily_aum_not_negative | blocking |
| customer_segment | retail_implied_tier_matches_measure | blocking |
| customer_segment | corporate_implied_tier_matches_deposits_or_loans | blocking |
| customer_segment | watch_flag_consistent | blocking |
| customer_segment | row_count_equals_eligible_customers (from raw.cbs_customer) | blocking |
| customer_segment | total_aum_reconciles_with_raw_balances (from raw.cbs_balance × FX) | blocking |
| customer_segment | pii_masked, no_unmasked_pii_columns | blocking |
| customer_segment | on_watch_share, downgrade_share, tier_change_known, effective_from_next_month | warning |
| customer_tier | one_row_per_customer_month_rule_set, *_not_null, rule_set_known | blocking |
| customer_tier | <rule set>_tier_in_ladder, <rule set>_implied_tier_in_ladder (every ladder) | blocking |
| customer_tier | measure_not_negative, retail_implied_tier_matches_measure | blocking |
| customer_tier | watch_flag_consistent | blocking |
| customer_tier | agrees_with_customer_segment, no_unmasked_pii_columns | blocking |
| tier_summary | one_row_per_month_rule_set_tier, counts_match_customer_tier | blocking |
| tier_summary | no_unmasked_pii_columns | blocking |
| tier_summary | every_ladder_tier_listed, shares_add_up_to_one | warning |
| tier_summary | tier_share_drift_warn (share moved > gate.drift_warn_share vs the baseline month) | warning |
| tier_summary | tier_share_drift_block (share moved > gate.drift_block_share) | blocking |
| tier_migration | one_row_per_month_rule_set_from_to, customers_positive | blocking |
| tier_migration | no_unmasked_pii_columns | blocking |
| tier_migration | totals_match_customer_tier | warning |
| customer_segment | override_approved, override_four_eyes, override_not_expired (see `tier_overrides.py`) | blocking |
| customer_segment | overridden_share_of_tier (≤ overrides.warn_overridden_share_of_tier) | warning |
| customer_event | one_row_per_customer_event, event_type_known, no_unmasked_pii_columns | blocking |
| customer_event | tier_changes_match_customer_segment (NEW/TIER_UP/TIER_DOWN vs the published tiers) | blocking |
| batch_log | quarantine_rate_within_bound, balance_batches_complete | blocking |
| customer_segment | issue-3 classification checks: see `expectations/classifications.py` | blocking / warning |
| aml_customer_risk | one_row_per_customer_month, aml_level_known/_not_null, triggers_known, | blocking |
|   | level_follows_triggers, customers_match_customer_segment, no_unmasked_pii_columns | blocking |
| aml_trigger_transactions | one_row_per_trigger_txn, trigger_known, agrees_with_aml_customer_risk, | blocking |
|   | transactions_meet_their_trigger, no_unmasked_pii_columns | blocking |

Classification and AML checks are built only when their columns / tables exist in the candidate.
"""

from __future__ import annotations

from types import ModuleType

from expectations import (
    Check,
    GateParams,
    aml_customer_risk,
    aml_trigger_transactions,
    batch_log,
    customer_event,
    customer_segment,
    customer_tier,
    tier_migration,
    tier_summary,
)

# Validated tables, in report order; each module has TABLE, SCHEMA, MONTH_COLUMN and checks(params).
SUITES: tuple[ModuleType, ...] = (customer_segment, customer_tier, tier_summary, tier_migration, customer_event,
                                  batch_log, aml_customer_risk, aml_trigger_transactions)


def reference_queries(params: GateParams) -> dict[str, str]:
    """Every figure the checks need from raw/audit, as {name: scalar SQL}."""
    queries: dict[str, str] = {}
    for suite in SUITES:
        if hasattr(suite, "reference_queries"):
            queries.update(suite.reference_queries(params))
    return queries


def build_checks(params: GateParams) -> list[Check]:
    """Every check of the gate for `params` (names are unique)."""
    found = [c for suite in SUITES for c in suite.checks(params)]
    names = [c.full_name for c in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate gate check names: {', '.join(sorted(duplicates))}")
    return found
