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
        max(list_position(['LOW', 'MEDIUM', 'HIGH'], aml_triggers.aml_level)) as level_position,
        string_agg(
            aml_triggers.aml_trigger, ','
            order by list_position(
                ['KYC_HIGH', 'KYC_MEDIUM', 'CASH_LARGE', 'CROSS_BORDER_TOTAL', 'HIGH_RISK_COUNTRY'],
                aml_triggers.aml_trigger
            )
        ) as aml_triggers
    from aml_triggers
    group by 1, 2

),

final as (

    -- No trigger fired: LOW, aml_triggers NULL.
    select
        measures.as_of_month,
        measures.cust_id,
        coalesce(['LOW', 'MEDIUM', 'HIGH'][levels_and_triggers.level_position], 'LOW') as aml_level,
        levels_and_triggers.aml_triggers
    from measures
    left join levels_and_triggers
        on measures.as_of_month = levels_and_triggers.as_of_month
        and measures.cust_id = levels_and_triggers.cust_id

)

select * from final
