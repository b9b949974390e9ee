with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}
    where {{ in_evaluation_month('as_of_month') }}

),

rfm as (

    select * from {{ ref('int_customer_monthly_rfm') }}
    where {{ in_evaluation_month('as_of_month') }}

),

credit_grades as (

    select * from {{ ref('int_customer_monthly_credit_grades') }}
    where {{ in_evaluation_month('as_of_month') }}

),

holdings as (

    select * from {{ ref('int_customer_monthly_product_holdings') }}
    where {{ in_evaluation_month('as_of_month') }}

),

corporate_tiers as (

    select * from {{ ref('int_corporate_monthly_tiers') }}
    where {{ in_evaluation_month('as_of_month') }}

),

quadrants as (

    select * from {{ ref('rule_quadrants') }}

),

need_levels as (

    select * from {{ ref('rule_need_levels') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

service_strategies as (

    select * from {{ ref('rule_service_strategies') }}

),

need_levels_ranked as (

    -- A level's minimum tier, as a rank of the active ladder (NULL: no tier reaches it by itself).
    select
        need_levels.*,
        string_split(coalesce(need_levels.product_types, ''), ',') as product_type_list,
        active_tiers.tier_rank as min_tier_rank,
        need_levels.need_rank = min(need_levels.need_rank) over () as is_lowest_level,
        need_levels.need_rank = max(need_levels.need_rank) over () as is_highest_level
    from need_levels
    left join value_tiers as active_tiers
        on need_levels.min_tier_code = active_tiers.tier_code
        and active_tiers.is_active

),

need_ranks_by_products as (

    select
        holdings.as_of_month,
        holdings.cust_id,
        max(need_levels_ranked.need_rank) as need_rank
    from holdings
    inner join need_levels_ranked
        on list_contains(need_levels_ranked.product_type_list, holdings.product_type)
    group by 1, 2

),

retail_need_ranks as (

    -- The highest level reached by a held product or by the tier; the lowest level is the default.
    select
        rfm.as_of_month,
        rfm.cust_id,
        greatest(
            max(need_levels_ranked.need_rank),
            max(need_ranks_by_products.need_rank)
        ) as need_rank
    from rfm
    inner join need_levels_ranked
        on need_levels_ranked.is_lowest_level
        or rfm.tier_rank >= need_levels_ranked.min_tier_rank
    left join need_ranks_by_products
        on rfm.as_of_month = need_ranks_by_products.as_of_month
        and rfm.cust_id = need_ranks_by_products.cust_id
    group by 1, 2

),

retail_flags as (

    -- Tiers are compared by rank in the active ladder; every bound comes from rule_parameters.
    select
        rfm.*,
        rfm.rfm_f >= {{ rule_parameter('quadrant_high_activity_min_frequency', 'integer') }} as is_high_activity,
        rfm.tier_rank >= {{ active_tier_rank('quadrant_high_value_min_tier') }} as is_high_value,
        credit_grades.credit_grade,
        rfm.tier_rank <= {{ active_tier_rank('potential_max_tier') }} as is_potential_tier,
        credit_grades.has_current_mortgage as has_mortgage_reason,
        coalesce(
            try_cast(snapshots.education as integer) >= {{ rule_parameter('potential_min_education', 'integer') }},
            false
        ) as has_education_reason,
        coalesce(
            snapshots.monthly_income_cny
            >= {{ rule_parameter('potential_min_monthly_income_cny', 'decimal(18, 2)') }},
            false
        ) as has_income_reason,
        {{ in_rule_list('snapshots.occupation', 'potential_occupations') }} as has_occupation_reason,
        rfm.tier_rank >= {{ active_tier_rank('churn_min_tier') }} as is_churn_tier,
        -- Decline ≥ share without dividing: sum_M × days_M2 ≤ (1 − share) × sum_M2 × days_M.
        coalesce(
            earlier.aum_sum_cny > 0
            and measures.aum_sum_cny * earlier.aum_days
            <= (1 - {{ rule_parameter('churn_aum_decline_share', 'decimal(9, 4)') }})
            * earlier.aum_sum_cny * measures.aum_days,
            false
        ) as has_aum_decline,
        rfm.rfm_r > {{ rule_parameter('churn_inactive_after_days', 'integer') }} as is_inactive
    from rfm
    inner join measures
        on rfm.as_of_month = measures.as_of_month
        and rfm.cust_id = measures.cust_id
    inner join snapshots
        on rfm.as_of_month = snapshots.as_of_month
        and rfm.cust_id = snapshots.cust_id
    inner join credit_grades
        on rfm.as_of_month = credit_grades.as_of_month
        and rfm.cust_id = credit_grades.cust_id
    -- No row in the month decline_months_back before (not evaluated, or not a customer then): no decline.
    left join measures as earlier
        on rfm.cust_id = earlier.cust_id
        and earlier.as_of_month = last_day(
            measures.month_start - to_months({{ rule_parameter('churn_decline_months_back', 'integer') }})
        )

),

retail_potential_added as (

    select
        retail_flags.*,
        nullif(concat_ws(',',
            case when retail_flags.has_mortgage_reason then 'MORTGAGE_CURRENT' end,
            case when retail_flags.has_education_reason then 'EDUCATION' end,
            case when retail_flags.has_income_reason then 'INCOME' end,
            case when retail_flags.has_occupation_reason then 'OCCUPATION' end
        ), '') as candidate_reasons
    from retail_flags

),

retail_classified as (

    select
        retail_potential_added.as_of_month,
        retail_potential_added.cust_id,
        retail_potential_added.rfm_r,
        retail_potential_added.rfm_f,
        retail_potential_added.rfm_m,
        retail_potential_added.rfm_r_score,
        retail_potential_added.rfm_f_score,
        retail_potential_added.rfm_m_score,
        retail_potential_added.rfm_class,
        retail_potential_added.rfm_class_name,
        case when retail_potential_added.is_high_activity then 'HIGH' else 'LOW' end as activity_level,
        quadrants.quadrant as value_activity_quadrant,
        quadrants.quadrant_action,
        need_levels_ranked.need_level,
        retail_potential_added.credit_grade,
        retail_potential_added.is_potential_tier
        and retail_potential_added.candidate_reasons is not null as potential_flag,
        case
            when retail_potential_added.is_potential_tier then retail_potential_added.candidate_reasons
        end as potential_reasons,
        case
            when retail_potential_added.tier_rank >= {{ active_tier_rank('class_a_min_tier') }}
                and {{ in_rule_list('retail_potential_added.credit_grade', 'class_a_credit_grades') }}
                then 'A'
            when retail_potential_added.is_potential_tier and retail_potential_added.candidate_reasons is not null
                then 'B'
            when retail_potential_added.tier_rank >= {{ active_tier_rank('class_b_min_tier') }}
                and not {{ in_rule_list('retail_potential_added.credit_grade', 'class_b_excluded_credit_grades') }}
                then 'B'
            else 'C'
        end as customer_class,
        retail_potential_added.is_churn_tier
        and (retail_potential_added.has_aum_decline or retail_potential_added.is_inactive) as churn_warning,
        case
            when retail_potential_added.is_churn_tier then nullif(concat_ws(',',
                case when retail_potential_added.has_aum_decline then 'AUM_DECLINE' end,
                case when retail_potential_added.is_inactive then 'INACTIVE' end
            ), '')
        end as churn_reason,
        active_strategies.service_strategy
    from retail_potential_added
    inner join quadrants
        on retail_potential_added.is_high_value = quadrants.is_high_value
        and retail_potential_added.is_high_activity = quadrants.is_high_activity
    inner join retail_need_ranks
        on retail_potential_added.as_of_month = retail_need_ranks.as_of_month
        and retail_potential_added.cust_id = retail_need_ranks.cust_id
    inner join need_levels_ranked
        on retail_need_ranks.need_rank = need_levels_ranked.need_rank
    left join service_strategies as active_strategies
        on retail_potential_added.tier = active_strategies.tier_code
        and active_strategies.rule_set in (select value_tiers.rule_set from value_tiers where value_tiers.is_active)

),

corporate_classified as (

    -- Corporate types: no RFM, potential, class or churn; the highest need level; strategy by corporate tier.
    select
        corporate_tiers.as_of_month,
        corporate_tiers.cust_id,
        (select need_levels_ranked.need_level from need_levels_ranked where need_levels_ranked.is_highest_level)
            as need_level,
        corporate_strategies.service_strategy
    from corporate_tiers
    left join service_strategies as corporate_strategies
        on corporate_tiers.rule_set = corporate_strategies.rule_set
        and corporate_tiers.tier = corporate_strategies.tier_code

),

final as (

    select
        measures.as_of_month,
        measures.cust_id,
        measures.cust_type,
        retail_classified.rfm_r,
        retail_classified.rfm_f,
        retail_classified.rfm_m,
        retail_classified.rfm_r_score,
        retail_classified.rfm_f_score,
        retail_classified.rfm_m_score,
        retail_classified.rfm_class,
        retail_classified.rfm_class_name,
        retail_classified.activity_level,
        retail_classified.value_activity_quadrant,
        retail_classified.quadrant_action,
        coalesce(retail_classified.need_level, corporate_classified.need_level) as need_level,
        credit_grades.credit_grade,
        retail_classified.potential_flag,
        retail_classified.potential_reasons,
        retail_classified.customer_class,
        retail_classified.churn_warning,
        retail_classified.churn_reason,
        coalesce(retail_classified.service_strategy, corporate_classified.service_strategy) as service_strategy
    from measures
    inner join credit_grades
        on measures.as_of_month = credit_grades.as_of_month
        and measures.cust_id = credit_grades.cust_id
    left join retail_classified
        on measures.as_of_month = retail_classified.as_of_month
        and measures.cust_id = retail_classified.cust_id
    left join corporate_classified
        on measures.as_of_month = corporate_classified.as_of_month
        and measures.cust_id = corporate_classified.cust_id
    where {{ in_evaluation_month('measures.as_of_month') }}

)

select * from final
