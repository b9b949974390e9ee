with

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

criteria_checked as (

    select
        rfm.as_of_month,
        rfm.cust_id,
        rfm.tier_rank >= {{ active_tier_rank('churn', 'min_tier') }} as is_churn_tier,
        -- Decline ≥ share without dividing: sum_M × days_M2 ≤ (1 − share) × sum_M2 × days_M.
        coalesce(
            earlier.aum_sum_cny > 0
            and measures.aum_sum_cny * earlier.aum_days
            <= (1 - {{ rule_value('churn', 'aum_decline_share') }})
            * earlier.aum_sum_cny * measures.aum_days,
            false
        ) as has_aum_decline,
        rfm.rfm_r > {{ rule_value('churn', 'inactive_after_days') }} as is_inactive
    from rfm
    inner join measures
        on rfm.as_of_month = measures.as_of_month
        and rfm.cust_id = measures.cust_id
    -- No row in the month decline_months_back before (not evaluated, or not a customer then): no decline.
    left join measures as earlier
        on rfm.cust_id = earlier.cust_id
        and earlier.as_of_month = last_day(
            measures.month_start - {{ months_interval(rule_value('churn', 'decline_months_back')) }}
        )

),

final as (

    select
        criteria_checked.as_of_month,
        criteria_checked.cust_id,
        criteria_checked.is_churn_tier
        and (criteria_checked.has_aum_decline or criteria_checked.is_inactive) as churn_warning,
        case
            when criteria_checked.is_churn_tier then nullif(concat_ws(
                    ',',
                    case when criteria_checked.has_aum_decline then 'AUM_DECLINE' end,
                    case when criteria_checked.is_inactive then 'INACTIVE' end
                ), '')
        end as churn_reason
    from criteria_checked

)

select * from final
