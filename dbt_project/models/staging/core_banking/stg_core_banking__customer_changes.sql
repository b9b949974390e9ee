with

source as (

    select * from {{ source('core_banking', 'cbs_customer_changes') }}

),

final as (

    select
        batch_date as valid_from,
        is_deleted,
        cust_id,
        cust_type,
        cust_name,
        cert_type,
        cert_no,
        mobile,
        birth_date,
        gender,
        education,
        occupation,
        monthly_income as monthly_income_cny,
        industry_code,
        branch_id,
        open_date as customer_open_date,
        kyc_risk_level,
        status as customer_status,
        status = 'C' as is_closed,
        cust_type = 'P' as is_retail

    from source

)

select * from final
