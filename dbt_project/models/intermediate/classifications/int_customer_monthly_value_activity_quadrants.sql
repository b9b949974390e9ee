with

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

quadrants as (

    select * from {{ ref('rule_quadrants') }}

),

levels_flagged as (

    -- High value: tier rank ≥ the rule's tier in the active ladder; high activity: F ≥ the rule's bound.
    select
        rfm.as_of_month,
        rfm.cust_id,
        rfm.tier_rank >= {{ active_tier_rank('value_activity_quadrant', 'high_value_min_tier') }} as is_high_value,
        rfm.rfm_f >= {{ rule_value('value_activity_quadrant', 'high_activity_min_frequency') }} as is_high_activity
    from rfm

),

final as (

    select
        levels_flagged.as_of_month,
        levels_flagged.cust_id,
        case when levels_flagged.is_high_activity then 'HIGH' else 'LOW' end as activity_level,
        quadrants.quadrant as value_activity_quadrant,
        quadrants.quadrant_action
    from levels_flagged
    inner join quadrants
        on levels_flagged.is_high_value = quadrants.is_high_value
        and levels_flagged.is_high_activity = quadrants.is_high_activity

)

select * from final
