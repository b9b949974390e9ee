with

initiated as (

    select * from {{ ref('int_customer_initiated_transactions') }}

),

final as (

    -- Customer-initiated transactions per customer and day, for the days this build read (coverage_start …
    -- as_of_month); F sums a window of these days, R takes the last one (int_customer_monthly_last_activity).
    select
        {{ evaluation_month() }} as as_of_month,
        initiated.cust_id,
        initiated.txn_date as activity_date,
        cast(count(*) as integer) as activity_count
    from initiated
    where initiated.cust_id is not null
    group by 2, 3

)

select * from final
