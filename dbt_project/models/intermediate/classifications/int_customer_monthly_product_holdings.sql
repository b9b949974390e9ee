with

accounts as (

    select * from {{ ref('int_account_month_end_snapshots') }}

),

final as (

    -- A customer holds a product when it has an open (status A) account of that type at month end.
    select
        accounts.as_of_month,
        accounts.cust_id,
        accounts.product_type,
        cast(count(*) as integer) as open_accounts
    from accounts
    where {{ in_evaluation_month('accounts.as_of_month') }}
        and accounts.account_status = 'A'
    group by 1, 2, 3

)

select * from final
