with

source as (

    select * from {{ source('core_banking', 'cbs_loan') }}

),

final as (

    select
        batch_date as snapshot_date,
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
