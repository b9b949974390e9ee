with

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

credit_grades as (

    select * from {{ ref('int_customer_monthly_credit_grades') }}
    where {{ in_evaluation_month('as_of_month') }}

),

potential_flags as (

    select * from {{ ref('int_customer_monthly_potential_flags') }}
    where {{ in_evaluation_month('as_of_month') }}

),

criteria_checked as (

    -- The class rules of the rules file: A first, then B (potential, or tier and credit grade), else C.
    select
        rfm.as_of_month,
        rfm.cust_id,
        potential_flags.potential_flag,
        coalesce(rfm.tier_rank >= {{ active_tier_rank('customer_class', 'a_min_tier') }}, false) as meets_a_tier,
        {{ in_rule_list('credit_grades.credit_grade', 'customer_class', 'a_credit_grades') }} as meets_a_credit_grade,
        coalesce(rfm.tier_rank >= {{ active_tier_rank('customer_class', 'b_min_tier') }}, false) as meets_b_tier,
        {{ in_rule_list('credit_grades.credit_grade', 'customer_class', 'b_excluded_credit_grades') }}
            as has_b_excluded_grade
    from rfm
    inner join credit_grades
        on rfm.as_of_month = credit_grades.as_of_month
        and rfm.cust_id = credit_grades.cust_id
    inner join potential_flags
        on rfm.as_of_month = potential_flags.as_of_month
        and rfm.cust_id = potential_flags.cust_id

),

final as (

    -- The reason names the rule that decided and its bounds (codes: docs block customer_class_reason).
    select
        criteria_checked.as_of_month,
        criteria_checked.cust_id,
        case
            when criteria_checked.meets_a_tier and criteria_checked.meets_a_credit_grade then 'A'
            when criteria_checked.potential_flag then 'B'
            when criteria_checked.meets_b_tier and not criteria_checked.has_b_excluded_grade then 'B'
            else 'C'
        end as customer_class,
        case
            when criteria_checked.meets_a_tier and criteria_checked.meets_a_credit_grade
                then 'TIER_AT_LEAST=' || {{ rule_value('customer_class', 'a_min_tier') }}
                    || ',CREDIT_GRADE_IN=' || {{ rule_list_text('customer_class', 'a_credit_grades') }}
            when criteria_checked.potential_flag then 'POTENTIAL'
            when criteria_checked.meets_b_tier and not criteria_checked.has_b_excluded_grade
                then 'TIER_AT_LEAST=' || {{ rule_value('customer_class', 'b_min_tier') }}
                    || ',CREDIT_GRADE_NOT_IN=' || {{ rule_list_text('customer_class', 'b_excluded_credit_grades') }}
            else concat_ws(
                    ',',
                    'NOT_POTENTIAL',
                    case
                        when not criteria_checked.meets_b_tier
                            then 'TIER_BELOW=' || {{ rule_value('customer_class', 'b_min_tier') }}
                    end,
                    case
                        when criteria_checked.has_b_excluded_grade
                            then 'CREDIT_GRADE_IN='
                                || {{ rule_list_text('customer_class', 'b_excluded_credit_grades') }}
                    end
                )
        end as customer_class_reason
    from criteria_checked

)

select * from final
