with

trigger_transactions as (

    select * from {{ ref('int_aml_trigger_transactions') }}
    where {{ in_evaluation_month('as_of_month') }}

),

final as (

    select
        trigger_transactions.as_of_month,
        trigger_transactions.cust_id,
        trigger_transactions.trigger,
        trigger_transactions.txn_id,
        trigger_transactions.txn_time,
        trigger_transactions.txn_type,
        trigger_transactions.amount,
        trigger_transactions.currency,
        cast(trigger_transactions.amount_cny as decimal(38, 8)) as amount_cny,
        trigger_transactions.counterparty_country
    from trigger_transactions

)

select * from final
