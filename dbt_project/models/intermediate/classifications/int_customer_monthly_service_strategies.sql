with

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

corporate_tiers as (

    select * from {{ ref('int_corporate_monthly_tiers') }}
    where {{ in_evaluation_month('as_of_month') }}

),

service_strategies as (

    select * from {{ ref('rule_service_strategies') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

tier_overrides as (

    select * from {{ ref('int_customer_monthly_tier_overrides') }}

),

retail_strategies as (

    -- Retail: the strategy of the customer's tier in the active rule set.
    select
        rfm.as_of_month,
        rfm.cust_id,
        service_strategies.service_strategy
    from rfm
    left join service_strategies
        on rfm.tier = service_strategies.tier_code
        and service_strategies.rule_set in (
            select value_tiers.rule_set from value_tiers
            where value_tiers.is_active
        )

),

corporate_strategies as (

    -- The published tier's strategy: an approved override's tier, else the computed one.
    select
        corporate_tiers.as_of_month,
        corporate_tiers.cust_id,
        service_strategies.service_strategy
    from corporate_tiers
    left join tier_overrides
        on corporate_tiers.as_of_month = tier_overrides.as_of_month
        and corporate_tiers.cust_id = tier_overrides.cust_id
    left join service_strategies
        on corporate_tiers.rule_set = service_strategies.rule_set
        and coalesce(tier_overrides.override_tier, corporate_tiers.tier) = service_strategies.tier_code

),

final as (

    select * from retail_strategies
    union all
    select * from corporate_strategies

)

select * from final
