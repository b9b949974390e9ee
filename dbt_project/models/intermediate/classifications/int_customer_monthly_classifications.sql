with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}
    where {{ in_evaluation_month('as_of_month') }}

),

credit_grades as (

    select * from {{ ref('int_customer_monthly_credit_grades') }}
    where {{ in_evaluation_month('as_of_month') }}

),

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

quadrants as (

    select * from {{ ref('int_customer_monthly_value_activity_quadrants') }}
    where {{ in_evaluation_month('as_of_month') }}

),

need_levels as (

    select * from {{ ref('int_customer_monthly_need_levels') }}
    where {{ in_evaluation_month('as_of_month') }}

),

potential_flags as (

    select * from {{ ref('int_customer_monthly_potential_flags') }}
    where {{ in_evaluation_month('as_of_month') }}

),

customer_classes as (

    select * from {{ ref('int_customer_monthly_customer_classes') }}
    where {{ in_evaluation_month('as_of_month') }}

),

churn_warnings as (

    select * from {{ ref('int_customer_monthly_churn_warnings') }}
    where {{ in_evaluation_month('as_of_month') }}

),

service_strategies as (

    select * from {{ ref('int_customer_monthly_service_strategies') }}
    where {{ in_evaluation_month('as_of_month') }}

),

final as (

    -- Joins only: each classification's rule lives in its own model.
    select
        measures.as_of_month,
        measures.cust_id,
        measures.cust_type,
        rfm.rfm_r,
        rfm.rfm_f,
        rfm.rfm_m,
        rfm.rfm_r_score,
        rfm.rfm_f_score,
        rfm.rfm_m_score,
        rfm.rfm_class,
        rfm.rfm_class_name,
        quadrants.activity_level,
        quadrants.value_activity_quadrant,
        quadrants.quadrant_action,
        need_levels.need_level,
        credit_grades.credit_grade,
        credit_grades.credit_grade_reason,
        potential_flags.potential_flag,
        potential_flags.potential_reasons,
        customer_classes.customer_class,
        customer_classes.customer_class_reason,
        churn_warnings.churn_warning,
        churn_warnings.churn_reason,
        service_strategies.service_strategy
    from measures
    inner join credit_grades
        on measures.as_of_month = credit_grades.as_of_month
        and measures.cust_id = credit_grades.cust_id
    left join rfm
        on measures.as_of_month = rfm.as_of_month
        and measures.cust_id = rfm.cust_id
    left join quadrants
        on measures.as_of_month = quadrants.as_of_month
        and measures.cust_id = quadrants.cust_id
    left join need_levels
        on measures.as_of_month = need_levels.as_of_month
        and measures.cust_id = need_levels.cust_id
    left join potential_flags
        on measures.as_of_month = potential_flags.as_of_month
        and measures.cust_id = potential_flags.cust_id
    left join customer_classes
        on measures.as_of_month = customer_classes.as_of_month
        and measures.cust_id = customer_classes.cust_id
    left join churn_warnings
        on measures.as_of_month = churn_warnings.as_of_month
        and measures.cust_id = churn_warnings.cust_id
    left join service_strategies
        on measures.as_of_month = service_strategies.as_of_month
        and measures.cust_id = service_strategies.cust_id

)

select * from final
