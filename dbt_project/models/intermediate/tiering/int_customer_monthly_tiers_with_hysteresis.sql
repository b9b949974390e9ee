with recursive

implied_tiers as (

    select * from {{ ref('int_customer_monthly_implied_tiers') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

implied_with_month_index as (

    select
        implied_tiers.*,
        months.month_index,
        months.effective_from
    from implied_tiers
    inner join months
        on implied_tiers.as_of_month = months.as_of_month

),

history_starts as (

    -- No row in the previous evaluated month (new, reopened, or first month): history restarts.
    select implied_with_month_index.*
    from implied_with_month_index
    left join implied_with_month_index as previous_month
        on implied_with_month_index.cust_id = previous_month.cust_id
        and implied_with_month_index.rule_set = previous_month.rule_set
        and implied_with_month_index.month_index = previous_month.month_index + 1
    where previous_month.cust_id is null

),

tier_history as (

    -- With no earlier tier the published tier is the implied one.
    select
        history_starts.cust_id,
        history_starts.rule_set,
        history_starts.month_index,
        history_starts.implied_tier_rank as tier_rank,
        0 as months_below,
        cast(null as integer) as previous_tier_rank
    from history_starts

    union all

    -- Fast up, slow down: G is the grace of the tier held last month.
    select
        next_month.cust_id,
        next_month.rule_set,
        next_month.month_index,
        case
            when next_month.implied_tier_rank >= tier_history.tier_rank then next_month.implied_tier_rank
            when tier_history.months_below + 1 < held_tier.grace_months then tier_history.tier_rank
            else next_month.implied_tier_rank
        end as tier_rank,
        case
            when next_month.implied_tier_rank >= tier_history.tier_rank then 0
            when tier_history.months_below + 1 < held_tier.grace_months then tier_history.months_below + 1
            else 0
        end as months_below,
        tier_history.tier_rank as previous_tier_rank
    from tier_history
    inner join implied_with_month_index as next_month
        on tier_history.cust_id = next_month.cust_id
        and tier_history.rule_set = next_month.rule_set
        and tier_history.month_index + 1 = next_month.month_index
    inner join value_tiers as held_tier
        on tier_history.rule_set = held_tier.rule_set
        and tier_history.tier_rank = held_tier.tier_rank

),

final as (

    select
        implied_with_month_index.as_of_month,
        implied_with_month_index.cust_id,
        implied_with_month_index.rule_set,
        implied_with_month_index.rule_set_version,
        implied_with_month_index.measure,
        implied_with_month_index.measure_sum_cny,
        implied_with_month_index.measure_days,
        implied_with_month_index.measure_value_cny,
        implied_with_month_index.implied_tier,
        implied_with_month_index.implied_tier_rank,
        published_tier.tier_code as tier,
        published_tier.tier_name,
        published_tier.tier_rank,
        published_tier.floor_cny as tier_floor_cny,
        published_tier.grace_months,
        cast(tier_history.months_below as integer) as months_below,
        tier_history.months_below > 0 as on_watch,
        previous_tier.tier_code as previous_tier,
        tier_history.previous_tier_rank,
        {{ tier_change('tier_history.previous_tier_rank', 'published_tier.tier_rank') }} as tier_change,
        implied_with_month_index.month_index,
        implied_with_month_index.effective_from
    from tier_history
    inner join implied_with_month_index
        on tier_history.cust_id = implied_with_month_index.cust_id
        and tier_history.rule_set = implied_with_month_index.rule_set
        and tier_history.month_index = implied_with_month_index.month_index
    inner join value_tiers as published_tier
        on tier_history.rule_set = published_tier.rule_set
        and tier_history.tier_rank = published_tier.tier_rank
    left join value_tiers as previous_tier
        on tier_history.rule_set = previous_tier.rule_set
        and tier_history.previous_tier_rank = previous_tier.tier_rank

)

select * from final
