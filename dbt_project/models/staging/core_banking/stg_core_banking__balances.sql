with

source as (

    select * from {{ source('core_banking', 'cbs_balance') }}

),

final as (

    select
        batch_date,
        acct_id,
        bal_date as balance_date,
        balance as balance_amount,
        currency

    from source

)

select * from final
