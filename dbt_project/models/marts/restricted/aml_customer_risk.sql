with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}
    where {{ in_evaluation_month('as_of_month') }}

),

aml_triggers as (

    select * from {{ ref('int_customer_monthly_aml_triggers') }}
    where {{ in_evaluation_month('as_of_month') }}

),

levels_and_triggers as (

    -- Highest level fired; triggers listed in the contract's fixed order.
    select
        aml_triggers.as_of_month,
        aml_triggers.cust_id,
        max(
            case aml_triggers.aml_level when 'LOW' then 1 when 'MEDIUM' then 2 when 'HIGH' then 3 end
        ) as level_position,
        {{ ordered_text_agg(
            'aml_triggers.aml_trigger', ',',
            "case aml_triggers.aml_trigger when 'KYC_HIGH' then 1 when 'KYC_MEDIUM' then 2 when 'CASH_LARGE' then 3"
            ~ " when 'CROSS_BORDER_TOTAL' then 4 when 'HIGH_RISK_COUNTRY' then 5 end"
        ) }} as aml_triggers
    from aml_triggers
    group by 1, 2

),

final as (

    -- No trigger fired: LOW, aml_triggers NULL.
    select
        measures.as_of_month,
        measures.cust_id,
        case levels_and_triggers.level_position when 2 then 'MEDIUM' when 3 then 'HIGH' else 'LOW' end as aml_level,
        levels_and_triggers.aml_triggers
    from measures
    left join levels_and_triggers
        on measures.as_of_month = levels_and_triggers.as_of_month
        and measures.cust_id = levels_and_triggers.cust_id

)

select * from final
