{{ config(materialized='table') }}

with

batch_log as (

    select * from {{ ref('stg_audit__batch_log') }}

),

loaded_balance_dates as (

    select distinct batch_log.batch_date as balance_date
    from batch_log
    where batch_log.table_name = 'CBS_BALANCE'
        and batch_log.is_loaded

),

first_loaded_balance_date as (

    select min(loaded_balance_dates.balance_date) as first_loaded_balance_date
    from loaded_balance_dates

),

first_loaded_batch_date as (

    select min(batch_log.batch_date) as first_loaded_batch_date
    from batch_log
    where batch_log.is_loaded

),

months_with_loaded_days as (

    select
        cast(date_trunc('month', loaded_balance_dates.balance_date) as date) as month_start,
        last_day(loaded_balance_dates.balance_date) as as_of_month,
        count(*) as loaded_days
    from loaded_balance_dates
    group by 1, 2

),

complete_months as (

    select months_with_loaded_days.*
    from months_with_loaded_days
    where months_with_loaded_days.loaded_days = dayofmonth(months_with_loaded_days.as_of_month)

),

windows_added as (

    -- The three-month window starts two months back, but never before the first loaded balance date.
    select
        complete_months.as_of_month,
        complete_months.month_start,
        cast(dayofmonth(complete_months.as_of_month) as integer) as days_in_month,
        greatest(
            cast(complete_months.month_start - interval 2 month as date),
            first_loaded_balance_date.first_loaded_balance_date
        ) as window_3m_start,
        first_loaded_balance_date.first_loaded_balance_date,
        first_loaded_batch_date.first_loaded_batch_date
    from complete_months
    cross join first_loaded_balance_date
    cross join first_loaded_batch_date

),

final as (

    -- A month's build reads the batches since the previous evaluated month (coverage_start … as_of_month):
    -- consecutive builds cover every loaded day once, including days of months never evaluated.
    select
        windows_added.as_of_month,
        windows_added.month_start,
        windows_added.days_in_month,
        windows_added.window_3m_start,
        cast(
            {{ days_from('windows_added.window_3m_start', 'windows_added.as_of_month') }} + 1 as integer
        ) as days_in_window_3m,
        windows_added.first_loaded_balance_date,
        cast(row_number() over (order by windows_added.as_of_month) as integer) as month_index,
        lag(windows_added.as_of_month) over (order by windows_added.as_of_month) as previous_as_of_month,
        coalesce(
            cast(lag(windows_added.as_of_month) over (order by windows_added.as_of_month) + 1 as date),
            least(windows_added.first_loaded_batch_date, windows_added.month_start)
        ) as coverage_start,
        cast(windows_added.as_of_month + 1 as date) as effective_from
    from windows_added

)

select * from final
