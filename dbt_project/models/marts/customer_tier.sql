with

retail_tiers as (

    select * from {{ ref('int_customer_monthly_tiers_with_hysteresis') }}
    where {{ in_evaluation_month('as_of_month') }}

),

corporate_tiers as (

    select * from {{ ref('int_corporate_monthly_tiers') }}
    where {{ in_evaluation_month('as_of_month') }}

),

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}
    where {{ in_evaluation_month('as_of_month') }}

),

retail_rows as (

    select
        retail_tiers.as_of_month,
        retail_tiers.cust_id,
        measures.cust_type,
        retail_tiers.rule_set,
        retail_tiers.rule_set_version,
        retail_tiers.measure,
        retail_tiers.measure_value_cny,
        retail_tiers.implied_tier,
        retail_tiers.tier_floor_cny,
        retail_tiers.months_below,
        retail_tiers.grace_months,
        retail_tiers.on_watch,
        retail_tiers.tier,
        retail_tiers.tier_name,
        retail_tiers.tier_rank,
        retail_tiers.previous_tier,
        retail_tiers.tier_change,
        retail_tiers.effective_from
    from retail_tiers
    inner join measures
        on retail_tiers.as_of_month = measures.as_of_month
        and retail_tiers.cust_id = measures.cust_id

),

corporate_rows as (

    -- No hysteresis for corporates: the implied tier is the tier, never on watch, no grace.
    select
        corporate_tiers.as_of_month,
        corporate_tiers.cust_id,
        corporate_tiers.cust_type,
        corporate_tiers.rule_set,
        corporate_tiers.rule_set_version,
        corporate_tiers.measure,
        corporate_tiers.measure_value_cny,
        corporate_tiers.tier as implied_tier,
        corporate_tiers.tier_floor_cny,
        0 as months_below,
        0 as grace_months,
        false as on_watch,
        corporate_tiers.tier,
        corporate_tiers.tier_name,
        corporate_tiers.tier_rank,
        corporate_tiers.previous_tier,
        corporate_tiers.tier_change,
        corporate_tiers.effective_from
    from corporate_tiers

),

unioned as (

    select * from retail_rows
    union all
    select * from corporate_rows

),

final as (

    select
        unioned.as_of_month,
        unioned.cust_id,
        unioned.cust_type,
        unioned.rule_set,
        unioned.rule_set_version,
        unioned.measure,
        cast(unioned.measure_value_cny as decimal(18, 2)) as measure_value_cny,
        unioned.implied_tier,
        cast(unioned.tier_floor_cny as decimal(18, 2)) as tier_floor_cny,
        cast(unioned.months_below as integer) as months_below,
        cast(unioned.grace_months as integer) as grace_months,
        unioned.on_watch,
        unioned.tier,
        unioned.tier_name,
        cast(unioned.tier_rank as integer) as tier_rank,
        unioned.previous_tier,
        unioned.tier_change,
        unioned.effective_from
    from unioned

)

select * from final
