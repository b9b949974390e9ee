{%- set columns = [
    'valid_from', 'cust_id', 'cust_type', 'cust_name', 'cert_type', 'cert_no', 'mobile', 'birth_date', 'gender',
    'education', 'occupation', 'monthly_income_cny', 'industry_code', 'branch_id', 'customer_open_date',
    'kyc_risk_level', 'customer_status', 'is_closed', 'is_retail',
] -%}

with

changes as (

    select * from {{ ref('stg_core_banking__customer_changes') }}

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

    -- The customer master as delivered for the month's last day (closed customers included).
    {{ month_end_state('changes', 'cust_id', columns) }}

),

final as (

    select
        build_month.as_of_month,
        month_end_versions.*
    from month_end_versions
    cross join build_month

)

select * from final
