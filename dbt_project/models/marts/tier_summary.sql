with

months as (

    select * from {{ ref('int_evaluation_months') }}
    where {{ in_evaluation_month('as_of_month') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

corporate_tiers as (

    select * from {{ ref('rule_corporate_tiers') }}

),

customer_tier as (

    select * from {{ ref('customer_tier') }}
    where {{ in_evaluation_month('as_of_month') }}

),

customer_segment as (

    select * from {{ ref('customer_segment') }}
    where {{ in_evaluation_month('as_of_month') }}

),

ladders as (

    select
        value_tiers.rule_set,
        value_tiers.tier_code as tier,
        value_tiers.tier_name,
        value_tiers.tier_rank
    from value_tiers

    union all

    select
        corporate_tiers.rule_set,
        corporate_tiers.tier_code as tier,
        corporate_tiers.tier_name,
        corporate_tiers.tier_rank
    from corporate_tiers

),

month_ladders as (

    -- Every tier of every rule set in every evaluated month, so empty tiers show a 0.
    select
        months.as_of_month,
        ladders.*
    from months
    cross join ladders

),

tier_counts as (

    -- The AUM total adds the published (rounded) monthly averages, so it reconciles with customer_segment.
    select
        customer_tier.as_of_month,
        customer_tier.rule_set,
        customer_tier.tier,
        count(*) as customers,
        count(*) filter (where customer_tier.on_watch) as on_watch_customers,
        sum(customer_segment.avg_daily_aum_cny) as total_avg_daily_aum_cny
    from customer_tier
    inner join customer_segment
        on customer_tier.as_of_month = customer_segment.as_of_month
        and customer_tier.cust_id = customer_segment.cust_id
    group by 1, 2, 3

),

rule_set_totals as (

    select
        customer_tier.as_of_month,
        customer_tier.rule_set,
        count(*) as rule_set_customers
    from customer_tier
    group by 1, 2

),

final as (

    select
        month_ladders.as_of_month,
        month_ladders.rule_set,
        month_ladders.tier,
        month_ladders.tier_name,
        cast(month_ladders.tier_rank as integer) as tier_rank,
        cast(coalesce(tier_counts.customers, 0) as bigint) as customers,
        cast(coalesce(tier_counts.on_watch_customers, 0) as bigint) as on_watch_customers,
        cast(coalesce(tier_counts.total_avg_daily_aum_cny, 0) as decimal(38, 2)) as total_avg_daily_aum_cny,
        {{ exact_share_round6(
            'coalesce(tier_counts.customers, 0)',
            'coalesce(rule_set_totals.rule_set_customers, 0)'
        ) }} as share_of_customers
    from month_ladders
    left join tier_counts
        on month_ladders.as_of_month = tier_counts.as_of_month
        and month_ladders.rule_set = tier_counts.rule_set
        and month_ladders.tier = tier_counts.tier
    left join rule_set_totals
        on month_ladders.as_of_month = rule_set_totals.as_of_month
        and month_ladders.rule_set = rule_set_totals.rule_set

)

select * from final
