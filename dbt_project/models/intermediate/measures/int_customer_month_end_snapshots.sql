with

customers as (

    select * from {{ ref('stg_core_banking__customers') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

snapshot_dates as (

    select distinct customers.snapshot_date
    from customers

),

month_end_snapshot_dates as (

    -- CBS_CUSTOMER is a full daily snapshot: a month's state is its latest batch on or before the last day.
    select
        months.as_of_month,
        max(snapshot_dates.snapshot_date) as snapshot_date
    from months
    inner join snapshot_dates
        on snapshot_dates.snapshot_date <= months.as_of_month
    group by months.as_of_month

),

final as (

    select
        month_end_snapshot_dates.as_of_month,
        customers.*
    from month_end_snapshot_dates
    inner join customers
        on month_end_snapshot_dates.snapshot_date = customers.snapshot_date

)

select * from final
