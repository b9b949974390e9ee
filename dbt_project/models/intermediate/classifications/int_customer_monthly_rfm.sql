with

retail_tiers as (

    select * from {{ ref('int_customer_monthly_tiers_with_hysteresis') }}

),

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

daily_activity as (

    select * from {{ ref('int_customer_daily_activity') }}

),

last_activity as (

    select * from {{ ref('int_customer_monthly_last_activity') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

rfm_classes as (

    select * from {{ ref('rule_rfm_classes') }}

),

tier_overrides as (

    select * from {{ ref('int_customer_monthly_tier_overrides') }}

),

population as (

    -- The RFM population: retail customers with a tier of the active rule set at M. Their tier is the
    -- published one: an approved override (特批) replaces the computed tier for every classification.
    select
        retail_tiers.as_of_month,
        retail_tiers.cust_id,
        coalesce(tier_overrides.override_tier, retail_tiers.tier) as tier,
        coalesce(tier_overrides.override_tier_rank, retail_tiers.tier_rank) as tier_rank
    from retail_tiers
    left join tier_overrides
        on retail_tiers.as_of_month = tier_overrides.as_of_month
        and retail_tiers.cust_id = tier_overrides.cust_id
    where retail_tiers.rule_set in (
            select value_tiers.rule_set from value_tiers
            where value_tiers.is_active
        )
        and {{ in_evaluation_month('retail_tiers.as_of_month') }}

),

current_daily_activity as (

    -- Only rows of the build whose coverage holds their day now (see int_customer_monthly_measures), and
    -- only the frequency window's days: the cost follows the window, not the history.
    select daily_activity.*
    from daily_activity
    inner join months as covering_build
        on daily_activity.as_of_month = covering_build.as_of_month
        and daily_activity.activity_date >= covering_build.coverage_start
    where daily_activity.activity_date > (
            select min(months.as_of_month) - {{ rule_value('rfm', 'frequency_window_days') }}
            from months
            where {{ in_evaluation_month('months.as_of_month') }}
        )

),

activity_summarised as (

    -- R from the last activity the month-by-month state carries; F over the window's days up to as_of.
    select
        population.as_of_month,
        population.cust_id,
        last_activity.last_activity_date,
        coalesce(sum(current_daily_activity.activity_count), 0) as activity_count
    from population
    left join last_activity
        on population.as_of_month = last_activity.as_of_month
        and population.cust_id = last_activity.cust_id
    left join current_daily_activity
        on population.cust_id = current_daily_activity.cust_id
        and population.as_of_month >= current_daily_activity.activity_date
        and current_daily_activity.activity_date
        > population.as_of_month - {{ rule_value('rfm', 'frequency_window_days') }}
    group by 1, 2, 3

),

rfm_values as (

    -- No activity in the loaded history counts as the cap.
    select
        population.as_of_month,
        population.cust_id,
        population.tier,
        population.tier_rank,
        cast(least(
            coalesce(
                {{ days_from('activity_summarised.last_activity_date', 'population.as_of_month') }},
                {{ rule_value('rfm', 'recency_cap_days') }}
            ),
            {{ rule_value('rfm', 'recency_cap_days') }}
        ) as integer) as rfm_r,
        cast(activity_summarised.activity_count as integer) as rfm_f,
        measures.avg_daily_aum_cny as rfm_m
    from population
    inner join activity_summarised
        on population.as_of_month = activity_summarised.as_of_month
        and population.cust_id = activity_summarised.cust_id
    inner join measures
        on population.as_of_month = measures.as_of_month
        and population.cust_id = measures.cust_id

),

population_totals_added as (

    -- rank() ordered worst to best: ties share a rank, so equal values get equal scores.
    select
        rfm_values.*,
        count(*) over (partition by rfm_values.as_of_month) as population_size,
        sum(rfm_values.rfm_r) over (partition by rfm_values.as_of_month) as sum_r,
        sum(rfm_values.rfm_f) over (partition by rfm_values.as_of_month) as sum_f,
        sum(rfm_values.rfm_m) over (partition by rfm_values.as_of_month) as sum_m,
        rank() over (partition by rfm_values.as_of_month order by rfm_values.rfm_r desc) as r_rank,
        rank() over (partition by rfm_values.as_of_month order by rfm_values.rfm_f asc) as f_rank,
        rank() over (partition by rfm_values.as_of_month order by rfm_values.rfm_m asc) as m_rank
    from rfm_values

),

scored as (

    -- Integer arithmetic only: value vs mean as value × n vs sum; score 1 + 5(rank − 1) div n.
    select
        population_totals_added.*,
        cast(
            1 + {{ int_div("5 * (population_totals_added.r_rank - 1)", "population_totals_added.population_size") }}
            as integer
        ) as rfm_r_score,
        cast(
            1 + {{ int_div("5 * (population_totals_added.f_rank - 1)", "population_totals_added.population_size") }}
            as integer
        ) as rfm_f_score,
        cast(
            1 + {{ int_div("5 * (population_totals_added.m_rank - 1)", "population_totals_added.population_size") }}
            as integer
        ) as rfm_m_score,
        case
            when population_totals_added.rfm_r * population_totals_added.population_size
                < population_totals_added.sum_r then 'H'
            else 'L'
        end
        || case
            when population_totals_added.rfm_f * population_totals_added.population_size
                > population_totals_added.sum_f then 'H'
            else 'L'
        end
        || case
            when population_totals_added.rfm_m * population_totals_added.population_size
                > population_totals_added.sum_m then 'H'
            else 'L'
        end as rfm_class
    from population_totals_added

),

final as (

    select
        scored.as_of_month,
        scored.cust_id,
        scored.tier,
        scored.tier_rank,
        scored.rfm_r,
        scored.rfm_f,
        scored.rfm_m,
        scored.rfm_r_score,
        scored.rfm_f_score,
        scored.rfm_m_score,
        scored.rfm_class,
        rfm_classes.rfm_class_name,
        cast(scored.population_size as integer) as population_size
    from scored
    left join rfm_classes
        on scored.rfm_class = rfm_classes.rfm_class

)

select * from final
