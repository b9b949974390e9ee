with

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

holdings as (

    select * from {{ ref('int_customer_monthly_product_holdings') }}
    where {{ in_evaluation_month('as_of_month') }}

),

corporate_tiers as (

    select * from {{ ref('int_corporate_monthly_tiers') }}
    where {{ in_evaluation_month('as_of_month') }}

),

need_levels as (

    select * from {{ ref('rule_need_levels') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

need_levels_ranked as (

    -- A level's minimum tier, as a rank of the active ladder (NULL: no tier reaches it by itself).
    select
        need_levels.*,
        {{ split_to_list("coalesce(need_levels.product_types, '')", ',') }} as product_type_list,
        active_tiers.tier_rank as min_tier_rank,
        need_levels.need_rank = min(need_levels.need_rank) over () as is_lowest_level,
        need_levels.need_rank = max(need_levels.need_rank) over () as is_highest_level
    from need_levels
    left join value_tiers as active_tiers
        on need_levels.min_tier_code = active_tiers.tier_code
        and active_tiers.is_active

),

need_ranks_by_products as (

    select
        holdings.as_of_month,
        holdings.cust_id,
        max(need_levels_ranked.need_rank) as need_rank
    from holdings
    inner join need_levels_ranked
        on {{ list_has('need_levels_ranked.product_type_list', 'holdings.product_type') }}
    group by 1, 2

),

retail_need_ranks as (

    -- The highest level reached by a held product or by the tier; the lowest level is the default.
    select
        rfm.as_of_month,
        rfm.cust_id,
        greatest(
            max(need_levels_ranked.need_rank),
            max(need_ranks_by_products.need_rank)
        ) as need_rank
    from rfm
    inner join need_levels_ranked
        on need_levels_ranked.is_lowest_level
        or rfm.tier_rank >= need_levels_ranked.min_tier_rank
    left join need_ranks_by_products
        on rfm.as_of_month = need_ranks_by_products.as_of_month
        and rfm.cust_id = need_ranks_by_products.cust_id
    group by 1, 2

),

retail_need_levels as (

    select
        retail_need_ranks.as_of_month,
        retail_need_ranks.cust_id,
        need_levels_ranked.need_level
    from retail_need_ranks
    inner join need_levels_ranked
        on retail_need_ranks.need_rank = need_levels_ranked.need_rank

),

corporate_need_levels as (

    -- Corporate types are always the highest level.
    select
        corporate_tiers.as_of_month,
        corporate_tiers.cust_id,
        need_levels_ranked.need_level
    from corporate_tiers
    inner join need_levels_ranked
        on need_levels_ranked.is_highest_level

),

final as (

    select * from retail_need_levels
    union all
    select * from corporate_need_levels

)

select * from final
