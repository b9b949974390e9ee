with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

corporate_tiers as (

    select * from {{ ref('rule_corporate_tiers') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

tiers_ranked as (

    select
        corporate_tiers.*,
        corporate_tiers.tier_rank = min(corporate_tiers.tier_rank) over () as is_lowest_tier
    from corporate_tiers

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

corporate_measures as (

    -- Which customer types are tiered as corporates is a rule (rule_release.corporate_cust_types).
    select measures.*
    from measures
    where
        {{ list_has(rule_list('release', 'corporate_cust_types'), 'measures.cust_type') }}
        and measures.as_of_month = (select build_month.as_of_month from build_month)

),

previous_month_tiers as (

    -- The previous evaluated month's tier counts only if the customer had one then.
    {%- if is_incremental() %}
    select previous_tiers.cust_id, previous_tiers.tier_rank
    from {{ this }} as previous_tiers
    where previous_tiers.as_of_month = (select build_month.previous_as_of_month from build_month)
    {%- else %}
    select
        cast(null as string) as cust_id,
        cast(null as integer) as tier_rank
    where false
    {%- endif %}

),

rank_by_deposits as (

    -- avg deposits ≥ floor ⇔ sum ≥ floor × days, exact.
    select
        corporate_measures.as_of_month,
        corporate_measures.cust_id,
        max(tiers_ranked.tier_rank) as deposit_tier_rank
    from corporate_measures
    inner join tiers_ranked
        on corporate_measures.deposit_sum_cny
        >= cast(tiers_ranked.deposit_floor_cny as decimal(38, 2)) * corporate_measures.aum_days
        or tiers_ranked.is_lowest_tier
    group by 1, 2

),

rank_by_loans as (

    select
        corporate_measures.as_of_month,
        corporate_measures.cust_id,
        max(tiers_ranked.tier_rank) as loan_tier_rank
    from corporate_measures
    inner join tiers_ranked
        on corporate_measures.loan_outstanding_exact_cny >= tiers_ranked.loan_floor_cny
        or tiers_ranked.is_lowest_tier
    group by 1, 2

),

tier_reached as (

    -- Deposits OR loans: the higher of the two ladders wins; deposits explain a tie.
    select
        corporate_measures.as_of_month,
        corporate_measures.cust_id,
        corporate_measures.cust_type,
        corporate_measures.avg_daily_deposit_cny,
        corporate_measures.loan_outstanding_cny,
        rank_by_deposits.deposit_tier_rank,
        rank_by_loans.loan_tier_rank,
        greatest(rank_by_deposits.deposit_tier_rank, rank_by_loans.loan_tier_rank) as tier_rank,
        rank_by_deposits.deposit_tier_rank >= rank_by_loans.loan_tier_rank as is_reached_by_deposits
    from corporate_measures
    inner join rank_by_deposits
        on corporate_measures.as_of_month = rank_by_deposits.as_of_month
        and corporate_measures.cust_id = rank_by_deposits.cust_id
    inner join rank_by_loans
        on corporate_measures.as_of_month = rank_by_loans.as_of_month
        and corporate_measures.cust_id = rank_by_loans.cust_id

),

previous_month_added as (

    select
        tier_reached.*,
        build_month.month_index,
        build_month.effective_from,
        previous_month_tiers.tier_rank as previous_tier_rank
    from tier_reached
    cross join build_month
    left join previous_month_tiers
        on tier_reached.cust_id = previous_month_tiers.cust_id

),

final as (

    select
        previous_month_added.as_of_month,
        previous_month_added.cust_id,
        previous_month_added.cust_type,
        tiers_ranked.rule_set,
        tiers_ranked.rule_set_version,
        case
            when previous_month_added.is_reached_by_deposits then 'avg_daily_deposit_1m'
            else 'loan_outstanding_month_end'
        end as measure,
        case
            when previous_month_added.is_reached_by_deposits then previous_month_added.avg_daily_deposit_cny
            else previous_month_added.loan_outstanding_cny
        end as measure_value_cny,
        previous_month_added.avg_daily_deposit_cny,
        previous_month_added.loan_outstanding_cny,
        previous_month_added.deposit_tier_rank,
        previous_month_added.loan_tier_rank,
        tiers_ranked.tier_code as tier,
        tiers_ranked.tier_name,
        tiers_ranked.tier_rank,
        case
            when previous_month_added.is_reached_by_deposits then tiers_ranked.deposit_floor_cny
            else tiers_ranked.loan_floor_cny
        end as tier_floor_cny,
        tiers_ranked.deposit_floor_cny,
        tiers_ranked.loan_floor_cny,
        previous_tier.tier_code as previous_tier,
        previous_month_added.previous_tier_rank,
        {{ tier_change('previous_month_added.previous_tier_rank', 'tiers_ranked.tier_rank') }} as tier_change,
        previous_month_added.month_index,
        previous_month_added.effective_from
    from previous_month_added
    inner join tiers_ranked
        on previous_month_added.tier_rank = tiers_ranked.tier_rank
    left join tiers_ranked as previous_tier
        on previous_month_added.previous_tier_rank = previous_tier.tier_rank

)

select * from final
