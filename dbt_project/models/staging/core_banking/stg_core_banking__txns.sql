with

source as (

    select * from {{ source('core_banking', 'cbs_txn') }}

),

final as (

    select
        batch_date,
        txn_id,
        acct_id,
        txn_time as txn_at,
        txn_type,
        amount as txn_amount,
        currency,
        channel,
        cash_flag = 'Y' as is_cash,
        counterparty_country

    from source

)

select * from final
