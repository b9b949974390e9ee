with

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}
    where {{ in_evaluation_month('as_of_month') }}

),

credit_grades as (

    select * from {{ ref('int_customer_monthly_credit_grades') }}
    where {{ in_evaluation_month('as_of_month') }}

),

criteria_checked as (

    -- Each criterion of the rules file's potential section, bounds included.
    select
        rfm.as_of_month,
        rfm.cust_id,
        rfm.tier_rank <= {{ active_tier_rank('potential', 'max_tier') }} as is_potential_tier,
        credit_grades.has_current_mortgage as has_mortgage_reason,
        coalesce(
            try_cast(snapshots.education as integer) >= {{ rule_value('potential', 'min_education') }},
            false
        ) as has_education_reason,
        coalesce(
            snapshots.monthly_income_cny
            >= {{ rule_value('potential', 'min_monthly_income_cny') }},
            false
        ) as has_income_reason,
        {{ in_rule_list('snapshots.occupation', 'potential', 'occupations') }} as has_occupation_reason
    from rfm
    inner join snapshots
        on rfm.as_of_month = snapshots.as_of_month
        and rfm.cust_id = snapshots.cust_id
    inner join credit_grades
        on rfm.as_of_month = credit_grades.as_of_month
        and rfm.cust_id = credit_grades.cust_id

),

reasons_listed as (

    -- Reasons in a fixed order; NULL when none.
    select
        criteria_checked.*,
        nullif(concat_ws(
            ',',
            case when criteria_checked.has_mortgage_reason then 'MORTGAGE_CURRENT' end,
            case when criteria_checked.has_education_reason then 'EDUCATION' end,
            case when criteria_checked.has_income_reason then 'INCOME' end,
            case when criteria_checked.has_occupation_reason then 'OCCUPATION' end
        ), '') as candidate_reasons
    from criteria_checked

),

final as (

    select
        reasons_listed.as_of_month,
        reasons_listed.cust_id,
        reasons_listed.is_potential_tier and reasons_listed.candidate_reasons is not null as potential_flag,
        case when reasons_listed.is_potential_tier then reasons_listed.candidate_reasons end as potential_reasons
    from reasons_listed

)

select * from final
