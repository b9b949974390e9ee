with

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}
    where {{ in_evaluation_month('as_of_month') }}

),

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}
    where {{ in_evaluation_month('as_of_month') }}

),

retail_tiers as (

    select * from {{ ref('int_customer_monthly_tiers_with_hysteresis') }}
    where {{ in_evaluation_month('as_of_month') }}

),

corporate_tiers as (

    select * from {{ ref('int_corporate_monthly_tiers') }}
    where {{ in_evaluation_month('as_of_month') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

classifications as (

    select * from {{ ref('int_customer_monthly_classifications') }}
    where {{ in_evaluation_month('as_of_month') }}

),

active_retail_tiers as (

    -- customer_segment publishes the active rule set's tier (rule_value_tiers.is_active).
    select
        retail_tiers.as_of_month,
        retail_tiers.cust_id,
        retail_tiers.tier as value_tier,
        retail_tiers.tier_name as value_tier_name,
        retail_tiers.implied_tier,
        retail_tiers.tier_floor_cny,
        retail_tiers.months_below,
        retail_tiers.grace_months,
        retail_tiers.on_watch,
        retail_tiers.previous_tier,
        retail_tiers.tier_change,
        retail_tiers.effective_from,
        retail_tiers.rule_set,
        retail_tiers.rule_set_version
    from retail_tiers
    where retail_tiers.rule_set in (
        select value_tiers.rule_set
        from value_tiers
        where value_tiers.is_active
    )

),

corporate_segment_tiers as (

    -- Corporates: no hysteresis; the floor shown is the tier's deposit floor.
    select
        corporate_tiers.as_of_month,
        corporate_tiers.cust_id,
        corporate_tiers.tier as value_tier,
        corporate_tiers.tier_name as value_tier_name,
        corporate_tiers.tier as implied_tier,
        corporate_tiers.deposit_floor_cny as tier_floor_cny,
        0 as months_below,
        0 as grace_months,
        false as on_watch,
        corporate_tiers.previous_tier,
        corporate_tiers.tier_change,
        corporate_tiers.effective_from,
        corporate_tiers.rule_set,
        corporate_tiers.rule_set_version
    from corporate_tiers

),

segment_tiers as (

    select * from active_retail_tiers
    union all
    select * from corporate_segment_tiers

),

final as (

    -- Personal data leaves only masked, by the rules in rule_parameters.
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
        segment_tiers.value_tier,
        segment_tiers.value_tier_name,
        segment_tiers.implied_tier,
        cast(segment_tiers.tier_floor_cny as decimal(18, 2)) as tier_floor_cny,
        cast(segment_tiers.months_below as integer) as months_below,
        cast(segment_tiers.grace_months as integer) as grace_months,
        segment_tiers.on_watch,
        segment_tiers.previous_tier,
        segment_tiers.tier_change,
        segment_tiers.effective_from,
        segment_tiers.rule_set,
        segment_tiers.rule_set_version,
        {{ rule_parameter('rules_version') }} as rules_version,
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
        classifications.service_strategy
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

)

select * from final
