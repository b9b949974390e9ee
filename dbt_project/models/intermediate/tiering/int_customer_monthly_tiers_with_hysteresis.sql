with

implied_tiers as (

    select * from {{ ref('int_customer_monthly_implied_tiers') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

implied_this_month as (

    select implied_tiers.*
    from implied_tiers
    where implied_tiers.as_of_month = (select build_month.as_of_month from build_month)

),

previous_month_state as (

    -- The state the previous evaluated month left: held tier and months below it, per rule set. The first
    -- month (or a full refresh) starts without one.
    {%- if is_incremental() %}
    select
        previous_tiers.cust_id,
        previous_tiers.rule_set,
        previous_tiers.tier,
        previous_tiers.tier_floor_cny,
        previous_tiers.months_below
    from {{ this }} as previous_tiers
    where previous_tiers.as_of_month = (select build_month.previous_as_of_month from build_month)
    {%- else %}
    select
        cast(null as string) as cust_id,
        cast(null as string) as rule_set,
        cast(null as string) as tier,
        cast(null as decimal(18, 2)) as tier_floor_cny,
        cast(null as integer) as months_below
    where false
    {%- endif %}

),

held_tier_without_its_code as (

    -- A held tier the rules no longer have (a rules change removed it) is held as the highest tier whose floor
    -- is at most the floor it was held at.
    select
        previous_month_state.cust_id,
        previous_month_state.rule_set,
        max(ladder.tier_rank) as tier_rank
    from previous_month_state
    inner join value_tiers as ladder
        on previous_month_state.rule_set = ladder.rule_set
        and previous_month_state.tier_floor_cny >= ladder.floor_cny
    left join value_tiers as same_code
        on previous_month_state.rule_set = same_code.rule_set
        and previous_month_state.tier = same_code.tier_code
    where same_code.tier_code is null
    group by previous_month_state.cust_id, previous_month_state.rule_set

),

held_tiers as (

    -- Last month's tier on this month's ladder, found by its code, never by its rank: a rules change that adds
    -- or removes a tier renumbers the ranks, and the customer still holds the tier they held.
    select
        previous_month_state.cust_id,
        previous_month_state.rule_set,
        previous_month_state.tier as previous_tier,
        previous_month_state.months_below,
        coalesce(held_by_code.tier_rank, held_tier_without_its_code.tier_rank) as tier_rank
    from previous_month_state
    left join value_tiers as held_by_code
        on previous_month_state.rule_set = held_by_code.rule_set
        and previous_month_state.tier = held_by_code.tier_code
    left join held_tier_without_its_code
        on previous_month_state.cust_id = held_tier_without_its_code.cust_id
        and previous_month_state.rule_set = held_tier_without_its_code.rule_set

),

stepped as (

    -- Fast up, slow down: G is the grace of the tier held last month. No row last month (new, reopened,
    -- or the first month): the history restarts at the implied tier.
    select
        implied_this_month.*,
        held_tiers.previous_tier,
        held_tiers.tier_rank as previous_tier_rank,
        case
            when held_tiers.tier_rank is null then implied_this_month.implied_tier_rank
            when implied_this_month.implied_tier_rank >= held_tiers.tier_rank
                then implied_this_month.implied_tier_rank
            when held_tiers.months_below + 1 < held_tier.grace_months then held_tiers.tier_rank
            else implied_this_month.implied_tier_rank
        end as tier_rank,
        case
            when held_tiers.tier_rank is null then 0
            when implied_this_month.implied_tier_rank >= held_tiers.tier_rank then 0
            when held_tiers.months_below + 1 < held_tier.grace_months
                then held_tiers.months_below + 1
            else 0
        end as months_below
    from implied_this_month
    left join held_tiers
        on implied_this_month.cust_id = held_tiers.cust_id
        and implied_this_month.rule_set = held_tiers.rule_set
    left join value_tiers as held_tier
        on held_tiers.rule_set = held_tier.rule_set
        and held_tiers.tier_rank = held_tier.tier_rank

),

final as (

    select
        stepped.as_of_month,
        stepped.cust_id,
        stepped.rule_set,
        stepped.rule_set_version,
        stepped.measure,
        stepped.measure_sum_cny,
        stepped.measure_days,
        stepped.measure_value_cny,
        stepped.implied_tier,
        stepped.implied_tier_rank,
        published_tier.tier_code as tier,
        published_tier.tier_name,
        published_tier.tier_rank,
        published_tier.floor_cny as tier_floor_cny,
        published_tier.grace_months,
        cast(stepped.months_below as integer) as months_below,
        stepped.months_below > 0 as on_watch,
        stepped.previous_tier,
        stepped.previous_tier_rank,
        {{ tier_change('stepped.previous_tier_rank', 'published_tier.tier_rank') }} as tier_change,
        build_month.month_index,
        build_month.effective_from
    from stepped
    cross join build_month
    inner join value_tiers as published_tier
        on stepped.rule_set = published_tier.rule_set
        and stepped.tier_rank = published_tier.tier_rank

)

select * from final
