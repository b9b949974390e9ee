with

accounts as (

    select * from {{ ref('stg_core_banking__accounts') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

month_end_snapshot_dates as (

    -- CBS_ACCOUNT is a full daily snapshot: holdings are those of the month's last batch on or before its end.
    {{ month_end_snapshot_dates('accounts', 'months') }}

),

final as (

    -- A customer holds a product when it has an open (status A) account of that type at month end.
    select
        month_end_snapshot_dates.as_of_month,
        accounts.cust_id,
        accounts.product_type,
        cast(count(*) as integer) as open_accounts
    from month_end_snapshot_dates
    inner join accounts
        on month_end_snapshot_dates.snapshot_date = accounts.snapshot_date
    where accounts.account_status = 'A'
    group by 1, 2, 3

)

select * from final
