with

customers as (

    select * from {{ ref('stg_core_banking__customers') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

month_end_snapshot_dates as (

    -- CBS_CUSTOMER is a full daily snapshot: a month's state is its latest batch on or before the last day.
    {{ month_end_snapshot_dates('customers', 'months') }}

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
