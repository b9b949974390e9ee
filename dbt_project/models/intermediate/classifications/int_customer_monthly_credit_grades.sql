with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

month_end_loans as (

    select * from {{ ref('int_month_end_loans_converted_to_cny') }}

),

month_end_loan_details as (

    -- The month-end loan versions carry dpd, five_class and loan type as delivered for the month's end.
    select
        month_end_loans.as_of_month,
        month_end_loans.cust_id,
        month_end_loans.loan_id,
        month_end_loans.loan_type,
        month_end_loans.days_past_due,
        try_cast(month_end_loans.five_class as integer) as five_class
    from month_end_loans
    where {{ in_evaluation_month('month_end_loans.as_of_month') }}

),

loans_summarised as (

    select
        month_end_loan_details.as_of_month,
        month_end_loan_details.cust_id,
        count(*) as loan_count,
        max(month_end_loan_details.days_past_due) as max_days_past_due,
        max(month_end_loan_details.five_class) as max_five_class,
        bool_or(
            month_end_loan_details.loan_type = {{ rule_parameter('potential_mortgage_loan_type') }}
            and month_end_loan_details.days_past_due
            <= {{ rule_parameter('potential_mortgage_max_dpd', 'integer') }}
        ) as has_current_mortgage
    from month_end_loan_details
    group by 1, 2

),

final as (

    -- Worst loan decides: HIGH bounds first, then MEDIUM; no loan at all is NONE.
    select
        measures.as_of_month,
        measures.cust_id,
        measures.cust_type,
        cast(coalesce(loans_summarised.loan_count, 0) as integer) as loan_count,
        cast(loans_summarised.max_days_past_due as integer) as max_days_past_due,
        cast(loans_summarised.max_five_class as integer) as max_five_class,
        coalesce(loans_summarised.has_current_mortgage, false) as has_current_mortgage,
        case
            when loans_summarised.loan_count is null then 'NONE'
            when loans_summarised.max_days_past_due >= {{ rule_parameter('credit_high_min_dpd', 'integer') }}
                or loans_summarised.max_five_class >= {{ rule_parameter('credit_high_min_five_class', 'integer') }}
                then 'HIGH'
            when loans_summarised.max_days_past_due >= {{ rule_parameter('credit_medium_min_dpd', 'integer') }}
                or loans_summarised.max_five_class
                >= {{ rule_parameter('credit_medium_min_five_class', 'integer') }}
                then 'MEDIUM'
            else 'LOW'
        end as credit_grade
    from measures
    left join loans_summarised
        on measures.as_of_month = loans_summarised.as_of_month
        and measures.cust_id = loans_summarised.cust_id
    where {{ in_evaluation_month('measures.as_of_month') }}

)

select * from final
