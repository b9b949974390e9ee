with

months as (

    select * from {{ ref('int_evaluation_months') }}

),

segments as (

    select * from {{ ref('customer_segment') }}

),

customer_tiers as (

    select * from {{ ref('customer_tier') }}
    where {{ in_evaluation_month('as_of_month') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

corporate_tiers as (

    select * from {{ ref('rule_corporate_tiers') }}

),

service_strategies as (

    select * from {{ ref('rule_service_strategies') }}

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

ladders as (

    select
        value_tiers.rule_set,
        value_tiers.tier_code,
        value_tiers.tier_rank
    from value_tiers

    union all

    select
        corporate_tiers.rule_set,
        corporate_tiers.tier_code,
        corporate_tiers.tier_rank
    from corporate_tiers

),

current_rows as (

    select segments.*
    from segments
    where segments.as_of_month = (select build_month.as_of_month from build_month)

),

previous_rows as (

    -- The previous evaluated month's published rows: the feed says what changed since then.
    select segments.*
    from segments
    where segments.as_of_month = (select build_month.previous_as_of_month from build_month)

),

paired as {{ materialized_cte() }} (

    select
        current_rows.as_of_month,
        current_rows.cust_id,
        current_rows.cust_type,
        current_rows.branch_id,
        current_rows.cust_name_masked,
        current_rows.mobile_masked,
        current_rows.rule_set,
        current_rows.effective_from,
        current_rows.value_tier,
        current_tier_ranks.tier_rank as value_tier_rank,
        current_rows.implied_tier,
        current_rows.on_watch,
        current_rows.churn_warning,
        current_rows.churn_reason,
        current_rows.customer_class,
        current_rows.override_id,
        current_rows.override_until,
        current_rows.service_strategy,
        coalesce(current_rows.quadrant_action, current_rows.service_strategy) as behaviour_action,
        computed.tier as computed_tier,
        computed_strategies.service_strategy as computed_tier_strategy,
        previous_rows.cust_id is not null as was_published,
        previous_rows.value_tier as previous_value_tier,
        previous_tier_ranks.tier_rank as previous_value_tier_rank,
        coalesce(previous_rows.on_watch, false) as was_on_watch,
        coalesce(previous_rows.churn_warning, false) as was_churn_warning,
        previous_rows.customer_class as previous_customer_class,
        previous_rows.override_id as previous_override_id
    from current_rows
    left join previous_rows
        on current_rows.cust_id = previous_rows.cust_id
    left join ladders as current_tier_ranks
        on current_rows.rule_set = current_tier_ranks.rule_set
        and current_rows.value_tier = current_tier_ranks.tier_code
    left join ladders as previous_tier_ranks
        on previous_rows.rule_set = previous_tier_ranks.rule_set
        and previous_rows.value_tier = previous_tier_ranks.tier_code
    left join customer_tiers as computed
        on current_rows.as_of_month = computed.as_of_month
        and current_rows.cust_id = computed.cust_id
        and current_rows.rule_set = computed.rule_set
    left join service_strategies as computed_strategies
        on computed.rule_set = computed_strategies.rule_set
        and computed.tier = computed_strategies.tier_code

),

events as (

    -- Tier events carry the published tier's service strategy; behaviour events the quadrant's action.
    select
        paired.cust_id,
        'NEW' as event_type,
        cast(null as string) as from_value,
        paired.value_tier as to_value,
        paired.effective_from as event_effective_from,
        paired.service_strategy as suggested_action
    from paired
    where not paired.was_published

    union all

    -- A different code at an equal rank (the active rule set was switched) counts as up.
    select
        paired.cust_id,
        'TIER_UP' as event_type,
        paired.previous_value_tier as from_value,
        paired.value_tier as to_value,
        paired.effective_from as event_effective_from,
        paired.service_strategy as suggested_action
    from paired
    where paired.was_published
        and paired.value_tier <> paired.previous_value_tier
        and paired.value_tier_rank >= paired.previous_value_tier_rank

    union all

    select
        paired.cust_id,
        'TIER_DOWN' as event_type,
        paired.previous_value_tier as from_value,
        paired.value_tier as to_value,
        paired.effective_from as event_effective_from,
        paired.service_strategy as suggested_action
    from paired
    where paired.was_published
        and paired.value_tier <> paired.previous_value_tier
        and paired.value_tier_rank < paired.previous_value_tier_rank

    union all

    -- Entered the grace period: the held tier drops to the implied one unless assets return.
    select
        paired.cust_id,
        'WATCH_START' as event_type,
        paired.value_tier as from_value,
        paired.implied_tier as to_value,
        paired.effective_from as event_effective_from,
        paired.behaviour_action as suggested_action
    from paired
    where paired.on_watch and not paired.was_on_watch

    union all

    select
        paired.cust_id,
        'CHURN_WARNING' as event_type,
        cast(null as string) as from_value,
        paired.churn_reason as to_value,
        paired.effective_from as event_effective_from,
        paired.behaviour_action as suggested_action
    from paired
    where paired.churn_warning and not paired.was_churn_warning

    union all

    select
        paired.cust_id,
        'CLASS_CHANGE' as event_type,
        paired.previous_customer_class as from_value,
        paired.customer_class as to_value,
        paired.effective_from as event_effective_from,
        paired.behaviour_action as suggested_action
    from paired
    where paired.was_published and paired.customer_class <> paired.previous_customer_class

    union all

    select
        paired.cust_id,
        'OVERRIDE_START' as event_type,
        paired.previous_value_tier as from_value,
        paired.value_tier as to_value,
        paired.effective_from as event_effective_from,
        paired.service_strategy as suggested_action
    from paired
    where paired.override_id is not null and paired.override_id is distinct from paired.previous_override_id

    union all

    -- Back to the computed tier (the override ended or was revoked, or another one replaced it).
    select
        paired.cust_id,
        'OVERRIDE_END' as event_type,
        paired.previous_value_tier as from_value,
        paired.value_tier as to_value,
        paired.effective_from as event_effective_from,
        paired.service_strategy as suggested_action
    from paired
    where paired.previous_override_id is not null and paired.previous_override_id is distinct from paired.override_id

    union all

    -- This month is the override's last: next month's evaluation publishes the computed tier.
    select
        paired.cust_id,
        'OVERRIDE_ENDING_NEXT_MONTH' as event_type,
        paired.value_tier as from_value,
        paired.computed_tier as to_value,
        cast(paired.effective_from + interval 1 month as date) as event_effective_from,
        paired.computed_tier_strategy as suggested_action
    from paired
    where paired.override_id is not null and paired.override_until = paired.as_of_month

),

final as (

    select
        paired.as_of_month,
        events.cust_id,
        events.event_type,
        events.from_value,
        events.to_value,
        events.event_effective_from as effective_from,
        paired.cust_type,
        paired.branch_id,
        paired.cust_name_masked,
        paired.mobile_masked,
        paired.value_tier,
        paired.override_id,
        events.suggested_action,
        {{ rule_value('release', 'rules_version') }} as rules_version
    from events
    inner join paired
        on events.cust_id = paired.cust_id

)

select * from final
