with

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}
    where {{ in_evaluation_month('as_of_month') }}

),

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}
    where {{ in_evaluation_month('as_of_month') }}

),

customer_tiers as (

    select * from {{ ref('customer_tier') }}
    where {{ in_evaluation_month('as_of_month') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

corporate_tiers as (

    select * from {{ ref('rule_corporate_tiers') }}

),

tier_overrides as (

    select * from {{ ref('int_customer_monthly_tier_overrides') }}

),

classifications as (

    select * from {{ ref('int_customer_monthly_classifications') }}
    where {{ in_evaluation_month('as_of_month') }}

),

segment_tiers as (

    -- The published tier: the active retail rule set's row of customer_tier, or the corporate row.
    select
        customer_tiers.as_of_month,
        customer_tiers.cust_id,
        customer_tiers.tier as value_tier,
        customer_tiers.tier_name as value_tier_name,
        customer_tiers.implied_tier,
        customer_tiers.tier_floor_cny,
        customer_tiers.months_below,
        customer_tiers.grace_months,
        customer_tiers.on_watch,
        customer_tiers.previous_tier,
        customer_tiers.tier_change,
        customer_tiers.effective_from,
        customer_tiers.rule_set,
        customer_tiers.rule_set_version
    from customer_tiers
    where customer_tiers.rule_set in (
            select value_tiers.rule_set from value_tiers
            where value_tiers.is_active
        )
        or customer_tiers.rule_set in (select corporate_tiers.rule_set from corporate_tiers)

),

final as (

    -- Personal data leaves only masked, by the rules in seed rule_masking.
    select
        measures.as_of_month,
        measures.cust_id,
        measures.cust_type,
        measures.branch_id,
        {{ mask_personal_data('snapshots.cust_name', 'cust_name') }} as cust_name_masked,
        {{ mask_personal_data('snapshots.cert_no', 'cert_no') }} as cert_no_masked,
        {{ mask_personal_data('snapshots.mobile', 'mobile') }} as mobile_masked,
        measures.avg_daily_aum_cny,
        measures.aum_3m_avg_cny,
        cast(measures.aum_days as integer) as aum_days,
        cast(measures.aum_3m_days as integer) as aum_3m_days,
        measures.avg_daily_deposit_cny,
        measures.loan_outstanding_cny,
        -- An approved override (特批) publishes its tier; implied tier, months below and watch stay computed.
        coalesce(tier_overrides.override_tier, segment_tiers.value_tier) as value_tier,
        coalesce(tier_overrides.override_tier_name, segment_tiers.value_tier_name) as value_tier_name,
        segment_tiers.implied_tier,
        segment_tiers.tier_floor_cny,
        segment_tiers.months_below,
        segment_tiers.grace_months,
        segment_tiers.on_watch,
        segment_tiers.previous_tier,
        segment_tiers.tier_change,
        segment_tiers.effective_from,
        segment_tiers.rule_set,
        segment_tiers.rule_set_version,
        {{ rule_value('release', 'rules_version') }} as rules_version,
        classifications.rfm_r,
        classifications.rfm_f,
        classifications.rfm_m,
        classifications.rfm_r_score,
        classifications.rfm_f_score,
        classifications.rfm_m_score,
        classifications.rfm_class,
        classifications.rfm_class_name,
        classifications.activity_level,
        classifications.value_activity_quadrant,
        classifications.quadrant_action,
        classifications.need_level,
        classifications.credit_grade,
        classifications.potential_flag,
        classifications.potential_reasons,
        classifications.customer_class,
        classifications.churn_warning,
        classifications.churn_reason,
        classifications.service_strategy,
        classifications.credit_grade_reason,
        classifications.customer_class_reason,
        tier_overrides.override_id,
        tier_overrides.override_tier_reason,
        tier_overrides.override_until
    from measures
    inner join snapshots
        on measures.as_of_month = snapshots.as_of_month
        and measures.cust_id = snapshots.cust_id
    left join segment_tiers
        on measures.as_of_month = segment_tiers.as_of_month
        and measures.cust_id = segment_tiers.cust_id
    left join classifications
        on measures.as_of_month = classifications.as_of_month
        and measures.cust_id = classifications.cust_id
    left join tier_overrides
        on measures.as_of_month = tier_overrides.as_of_month
        and measures.cust_id = tier_overrides.cust_id

)

select * from final
