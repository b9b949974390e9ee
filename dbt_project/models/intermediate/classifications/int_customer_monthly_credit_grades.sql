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
            month_end_loan_details.loan_type = {{ rule_value('potential', 'mortgage_loan_type') }}
            and month_end_loan_details.days_past_due
            <= {{ rule_value('potential', 'mortgage_max_dpd') }}
        ) as has_current_mortgage
    from month_end_loan_details
    group by 1, 2

),

bounds_checked as (

    -- Each bound of the rules file's credit_grade section against the worst loan.
    select
        loans_summarised.*,
        coalesce(
            loans_summarised.max_days_past_due >= {{ rule_value('credit_grade', 'high_min_dpd') }}, false
        ) as is_high_by_dpd,
        coalesce(
            loans_summarised.max_five_class >= {{ rule_value('credit_grade', 'high_min_five_class') }}, false
        ) as is_high_by_five_class,
        coalesce(
            loans_summarised.max_days_past_due >= {{ rule_value('credit_grade', 'medium_min_dpd') }}, false
        ) as is_medium_by_dpd,
        coalesce(
            loans_summarised.max_five_class >= {{ rule_value('credit_grade', 'medium_min_five_class') }}, false
        ) as is_medium_by_five_class
    from loans_summarised

),

final as (

    -- Worst loan decides: HIGH bounds first, then MEDIUM; no loan at all is NONE.
    select
        measures.as_of_month,
        measures.cust_id,
        measures.cust_type,
        cast(coalesce(bounds_checked.loan_count, 0) as integer) as loan_count,
        cast(bounds_checked.max_days_past_due as integer) as max_days_past_due,
        cast(bounds_checked.max_five_class as integer) as max_five_class,
        coalesce(bounds_checked.has_current_mortgage, false) as has_current_mortgage,
        case
            when bounds_checked.loan_count is null then 'NONE'
            when bounds_checked.is_high_by_dpd or bounds_checked.is_high_by_five_class then 'HIGH'
            when bounds_checked.is_medium_by_dpd or bounds_checked.is_medium_by_five_class then 'MEDIUM'
            else 'LOW'
        end as credit_grade,
        -- The bounds that decided (codes: docs block credit_grade_reason).
        case
            when bounds_checked.loan_count is null then 'NO_LOAN'
            when bounds_checked.is_high_by_dpd or bounds_checked.is_high_by_five_class
                then concat_ws(
                        ',',
                        case
                            when
                                bounds_checked.is_high_by_dpd
                                then 'DPD_AT_LEAST=' || {{ rule_value('credit_grade', 'high_min_dpd') }}
                        end,
                        case
                            when bounds_checked.is_high_by_five_class
                                then 'FIVE_CLASS_AT_LEAST=' || {{ rule_value('credit_grade', 'high_min_five_class') }}
                        end
                    )
            when bounds_checked.is_medium_by_dpd or bounds_checked.is_medium_by_five_class
                then concat_ws(
                        ',',
                        case
                            when bounds_checked.is_medium_by_dpd
                                then 'DPD_AT_LEAST=' || {{ rule_value('credit_grade', 'medium_min_dpd') }}
                        end,
                        case
                            when bounds_checked.is_medium_by_five_class
                                then 'FIVE_CLASS_AT_LEAST=' || {{ rule_value('credit_grade', 'medium_min_five_class') }}
                        end
                    )
            else 'DPD_BELOW=' || {{ rule_value('credit_grade', 'medium_min_dpd') }}
                || ',FIVE_CLASS_BELOW=' || {{ rule_value('credit_grade', 'medium_min_five_class') }}
        end as credit_grade_reason
    from measures
    left join bounds_checked
        on measures.as_of_month = bounds_checked.as_of_month
        and measures.cust_id = bounds_checked.cust_id
    where {{ in_evaluation_month('measures.as_of_month') }}

)

select * from final
