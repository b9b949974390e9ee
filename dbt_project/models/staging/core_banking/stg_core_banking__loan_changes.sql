with

source as (

    select * from {{ source('core_banking', 'cbs_loan_changes') }}

),

final as (

    select
        batch_date as valid_from,
        is_deleted,
        loan_id,
        cust_id,
        acct_id,
        loan_type,
        principal as principal_amount,
        outstanding as outstanding_amount,
        currency,
        dpd as days_past_due,
        five_class,
        maturity_date

    from source

)

select * from final
