with

source as (

    select * from {{ source('overrides', 'tier_override_log') }}

),

final as (

    select
        seq,
        override_id,
        action,
        acted_at,
        acted_by,
        cust_id,
        cust_type,
        tier,
        from_month,
        until_month,
        text as action_text
    from source

)

select * from final
