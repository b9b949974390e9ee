-- customer_segment's tier is the customer_tier row of the same rule set, field for field; with an approved
-- override (override_id) the value tier is the override's and everything computed stays customer_tier's.
with

customer_segment as (

    select * from {{ ref('customer_segment') }}
    where {{ in_evaluation_month('as_of_month') }}

),

customer_tier as (

    select * from {{ ref('customer_tier') }}
    where {{ in_evaluation_month('as_of_month') }}

)

select
    customer_segment.as_of_month,
    customer_segment.cust_id,
    customer_segment.rule_set,
    customer_segment.value_tier,
    customer_tier.tier
from customer_segment
left join customer_tier
    on customer_segment.as_of_month = customer_tier.as_of_month
    and customer_segment.cust_id = customer_tier.cust_id
    and customer_segment.rule_set = customer_tier.rule_set
where customer_tier.tier is null
    or (customer_segment.override_id is null and customer_segment.value_tier <> customer_tier.tier)
    or customer_segment.implied_tier <> customer_tier.implied_tier
    or customer_segment.months_below <> customer_tier.months_below
    or customer_segment.on_watch <> customer_tier.on_watch
    or customer_segment.tier_change <> customer_tier.tier_change
