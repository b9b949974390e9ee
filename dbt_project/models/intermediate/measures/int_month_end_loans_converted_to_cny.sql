with

loans as (

    select * from {{ ref('stg_core_banking__loans') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

month_end_snapshot_dates as (

    -- CBS_LOAN is a full daily snapshot: month-end outstanding is the month's last batch on or before its end.
    {{ month_end_snapshot_dates('loans', 'months') }}

),

month_end_loans as (

    select
        month_end_snapshot_dates.as_of_month,
        loans.snapshot_date,
        loans.loan_id,
        loans.cust_id,
        loans.currency,
        loans.outstanding_amount
    from month_end_snapshot_dates
    inner join loans
        on month_end_snapshot_dates.snapshot_date = loans.snapshot_date

),

final as (

    -- The rate of the snapshot's own day; CNY needs none.
    select
        month_end_loans.as_of_month,
        month_end_loans.snapshot_date,
        month_end_loans.loan_id,
        month_end_loans.cust_id,
        month_end_loans.currency,
        month_end_loans.outstanding_amount,
        case
            when month_end_loans.currency = 'CNY' then cast(1 as decimal(18, 6))
            else fx_rates.cny_per_unit
        end as cny_per_unit,
        cast(
            cast(month_end_loans.outstanding_amount as decimal(38, 2))
            * case
                when month_end_loans.currency = 'CNY' then cast(1 as decimal(18, 6))
                else fx_rates.cny_per_unit
            end
            as decimal(38, 8)
        ) as outstanding_cny
    from month_end_loans
    left join fx_rates
        on month_end_loans.currency = fx_rates.currency
        and month_end_loans.snapshot_date = fx_rates.rate_date

)

select * from final
