with

customer_tier as (

    select * from {{ ref('customer_tier') }}
    where {{ in_evaluation_month('as_of_month') }}

),

final as (

    -- from_tier NULL: the customer had no tier in the previous evaluated month.
    select
        customer_tier.as_of_month,
        customer_tier.rule_set,
        customer_tier.previous_tier as from_tier,
        customer_tier.tier as to_tier,
        cast(count(*) as bigint) as customers
    from customer_tier
    group by 1, 2, 3, 4

)

select * from final
