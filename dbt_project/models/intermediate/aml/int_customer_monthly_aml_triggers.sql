with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}

),

trigger_transactions as (

    select * from {{ ref('int_aml_trigger_transactions') }}

),

kyc_levels as (

    select * from {{ ref('rule_aml_kyc_levels') }}

),

kyc_triggers as (

    -- The month-end KYC rating sets a level by itself (rule_aml_kyc_levels).
    select
        measures.as_of_month,
        measures.cust_id,
        kyc_levels.aml_trigger,
        kyc_levels.aml_level
    from measures
    inner join snapshots
        on measures.as_of_month = snapshots.as_of_month
        and measures.cust_id = snapshots.cust_id
    inner join kyc_levels
        on snapshots.kyc_risk_level = kyc_levels.kyc_risk_level
    where kyc_levels.aml_trigger is not null
        and {{ in_evaluation_month('measures.as_of_month') }}

),

transaction_triggers as (

    -- Any transaction trigger makes the customer HIGH.
    select distinct
        trigger_transactions.as_of_month,
        trigger_transactions.cust_id,
        trigger_transactions.trigger as aml_trigger,
        'HIGH' as aml_level
    from trigger_transactions
    where {{ in_evaluation_month('trigger_transactions.as_of_month') }}

),

final as (

    select
        kyc_triggers.as_of_month,
        kyc_triggers.cust_id,
        kyc_triggers.aml_trigger,
        kyc_triggers.aml_level
    from kyc_triggers
    union all
    select
        transaction_triggers.as_of_month,
        transaction_triggers.cust_id,
        transaction_triggers.aml_trigger,
        transaction_triggers.aml_level
    from transaction_triggers

)

select * from final
