{{ config(materialized='view') }}

with

override_log as (

    select * from {{ ref('stg_overrides__tier_override_log') }}

),

value_tiers as (

    select * from {{ ref('rule_value_tiers') }}

),

corporate_tiers as (

    select * from {{ ref('rule_corporate_tiers') }}

),

requests as (

    select
        override_log.override_id,
        override_log.cust_id,
        override_log.cust_type,
        override_log.tier as override_tier,
        override_log.until_month as override_until,
        override_log.action_text as override_tier_reason,
        override_log.acted_by as requested_by
    from override_log
    where override_log.action = 'REQUEST'

),

decisions as (

    -- An override is decided once (the CLI refuses a second decision); the latest one counts regardless.
    select
        numbered.override_id,
        numbered.decision,
        numbered.decided_by,
        numbered.first_month
    from (
        select
            override_log.override_id,
            override_log.action as decision,
            override_log.acted_by as decided_by,
            override_log.from_month as first_month,
            row_number() over (partition by override_log.override_id order by override_log.seq desc) as latest_first
        from override_log
        where override_log.action in ('APPROVE', 'REJECT')
    ) as numbered
    where numbered.latest_first = 1

),

revocations as (

    select
        numbered.override_id,
        numbered.revoked_from
    from (
        select
            override_log.override_id,
            override_log.from_month as revoked_from,
            row_number() over (partition by override_log.override_id order by override_log.seq) as earliest_first
        from override_log
        where override_log.action = 'REVOKE'
    ) as numbered
    where numbered.earliest_first = 1

),

ladders as (

    -- The ladder the customer is tiered on: the active retail rule set's, or the corporate one.
    select
        false as is_corporate,
        value_tiers.tier_code,
        value_tiers.tier_name,
        value_tiers.tier_rank
    from value_tiers
    where value_tiers.is_active

    union all

    select
        true as is_corporate,
        corporate_tiers.tier_code,
        corporate_tiers.tier_name,
        corporate_tiers.tier_rank
    from corporate_tiers

),

applicable as (

    -- Approved, in its months, and not revoked before the evaluated month.
    select
        {{ evaluation_month() }} as as_of_month,
        requests.cust_id,
        requests.override_id,
        requests.override_tier,
        ladders.tier_name as override_tier_name,
        ladders.tier_rank as override_tier_rank,
        requests.override_until,
        requests.override_tier_reason,
        requests.requested_by,
        decisions.decided_by as approved_by,
        decisions.first_month as override_from
    from requests
    inner join decisions
        on requests.override_id = decisions.override_id
    left join revocations
        on requests.override_id = revocations.override_id
    left join ladders
        on requests.override_tier = ladders.tier_code
        and ladders.is_corporate = {{ in_rule_list('requests.cust_type', 'release', 'corporate_cust_types') }}
    where decisions.decision = 'APPROVE'
        and {{ evaluation_month() }} between decisions.first_month and requests.override_until
        and (revocations.revoked_from is null or {{ evaluation_month() }} < revocations.revoked_from)

),

final as (

    -- Approval refuses overlapping overrides of one customer; should two apply, the later request wins.
    select {{ star_except('numbered', ['latest_first']) }}
    from (
        select
            applicable.*,
            row_number() over (partition by applicable.cust_id order by applicable.override_id desc) as latest_first
        from applicable
    ) as numbered
    where numbered.latest_first = 1

)

select * from final
