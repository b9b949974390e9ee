with

source as (

    select * from {{ source('core_banking', 'cbs_account_changes') }}

),

final as (

    select
        batch_date as valid_from,
        is_deleted,
        acct_id,
        cust_id,
        product_type,
        currency,
        open_date as account_open_date,
        close_date as account_close_date,
        status as account_status

    from source

)

select * from final
