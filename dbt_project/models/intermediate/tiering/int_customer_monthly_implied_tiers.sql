with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

tiers_ranked as (

    select
        value_tiers.*,
        value_tiers.tier_rank = min(value_tiers.tier_rank) over (partition by value_tiers.rule_set)
            as is_lowest_tier
    from value_tiers

),

rule_sets as (

    select distinct
        value_tiers.rule_set,
        value_tiers.rule_set_version,
        value_tiers.measure
    from value_tiers

),

measures_per_rule_set as (

    -- Each rule set names its measure; keep the exact sum and its days for an unrounded comparison.
    select
        measures.as_of_month,
        measures.cust_id,
        rule_sets.rule_set,
        rule_sets.rule_set_version,
        rule_sets.measure,
        case rule_sets.measure
            when 'avg_daily_aum_1m' then measures.aum_sum_cny
            when 'avg_daily_aum_3m' then measures.aum_3m_sum_cny
        end as measure_sum_cny,
        case rule_sets.measure
            when 'avg_daily_aum_1m' then measures.aum_days
            when 'avg_daily_aum_3m' then measures.aum_3m_days
        end as measure_days,
        case rule_sets.measure
            when 'avg_daily_aum_1m' then measures.avg_daily_aum_cny
            when 'avg_daily_aum_3m' then measures.aum_3m_avg_cny
        end as measure_value_cny
    from measures
    cross join rule_sets
    where measures.is_retail
        and {{ in_evaluation_month('measures.as_of_month') }}

),

highest_qualifying_rank as (

    -- avg ≥ floor ⇔ sum ≥ floor × days, exact; the lowest tier also takes negative measures.
    select
        measures_per_rule_set.as_of_month,
        measures_per_rule_set.cust_id,
        measures_per_rule_set.rule_set,
        max(tiers_ranked.tier_rank) as implied_tier_rank
    from measures_per_rule_set
    inner join tiers_ranked
        on measures_per_rule_set.rule_set = tiers_ranked.rule_set
        and (
            measures_per_rule_set.measure_sum_cny
            >= cast(tiers_ranked.floor_cny as decimal(38, 2)) * measures_per_rule_set.measure_days
            or tiers_ranked.is_lowest_tier
        )
    group by 1, 2, 3

),

final as (

    select
        measures_per_rule_set.as_of_month,
        measures_per_rule_set.cust_id,
        measures_per_rule_set.rule_set,
        measures_per_rule_set.rule_set_version,
        measures_per_rule_set.measure,
        measures_per_rule_set.measure_sum_cny,
        measures_per_rule_set.measure_days,
        measures_per_rule_set.measure_value_cny,
        tiers_ranked.tier_code as implied_tier,
        tiers_ranked.tier_rank as implied_tier_rank,
        tiers_ranked.floor_cny as implied_tier_floor_cny
    from measures_per_rule_set
    inner join highest_qualifying_rank
        on measures_per_rule_set.as_of_month = highest_qualifying_rank.as_of_month
        and measures_per_rule_set.cust_id = highest_qualifying_rank.cust_id
        and measures_per_rule_set.rule_set = highest_qualifying_rank.rule_set
    inner join tiers_ranked
        on highest_qualifying_rank.rule_set = tiers_ranked.rule_set
        and highest_qualifying_rank.implied_tier_rank = tiers_ranked.tier_rank

)

select * from final
