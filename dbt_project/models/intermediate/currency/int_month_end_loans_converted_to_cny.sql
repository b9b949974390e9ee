{%- set columns = [
    'valid_from', 'loan_id', 'cust_id', 'acct_id', 'loan_type', 'principal_amount', 'outstanding_amount',
    'currency', 'days_past_due', 'five_class', 'maturity_date',
] -%}

with

changes as (

    select * from {{ ref('stg_core_banking__loan_changes') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

build_month as (

    select months.* from months
    where months.as_of_month = {{ evaluation_month() }}

),

month_end_loans as (

    -- The loan contracts as delivered for the month's last day.
    {{ month_end_state('changes', 'loan_id', columns) }}

),

month_end_rates as (

    select fx_rates.*
    from fx_rates
    where fx_rates.batch_date = (select build_month.as_of_month from build_month)

),

final as (

    -- Converted at the month's last day's rate; CNY needs none. Widen before multiplying.
    select
        build_month.as_of_month,
        month_end_loans.*,
        {{ cny_per_unit('month_end_loans.currency', 'month_end_rates.cny_per_unit') }} as cny_per_unit,
        {{ to_cny('month_end_loans.outstanding_amount', 'month_end_loans.currency', 'month_end_rates.cny_per_unit') }}
            as outstanding_cny
    from month_end_loans
    cross join build_month
    left join month_end_rates
        on month_end_loans.currency = month_end_rates.currency

)

select * from final
