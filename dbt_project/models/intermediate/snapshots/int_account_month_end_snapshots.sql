{%- set columns = [
    'valid_from', 'acct_id', 'cust_id', 'product_type', 'currency', 'account_open_date', 'account_close_date',
    'account_status',
] -%}

with

changes as (

    select * from {{ ref('stg_core_banking__account_changes') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

month_end_versions as (

    -- The account master as delivered for the month's last day.
    {{ month_end_state('changes', 'acct_id', columns) }}

),

final as (

    select
        build_month.as_of_month,
        month_end_versions.*
    from month_end_versions
    cross join build_month

)

select * from final
