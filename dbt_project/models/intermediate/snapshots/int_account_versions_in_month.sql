{{ config(materialized='table') }}

with

changes as (

    select * from {{ ref('stg_core_banking__account_changes') }}

),

month_end_snapshots as (

    select * from {{ ref('int_account_month_end_snapshots') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

previous_month_end as (

    -- The account master at the previous evaluated month's end (none before the first month).
    select
        {{ star_except('month_end_snapshots', ['as_of_month']) }},
        false as is_deleted
    from month_end_snapshots
    where month_end_snapshots.as_of_month = (select build_month.previous_as_of_month from build_month)

),

changes_since as (

    select changes.*
    from changes
    where changes.valid_from <= (select build_month.as_of_month from build_month)
        and changes.valid_from > coalesce(
            (select build_month.previous_as_of_month from build_month), date '0001-01-01'
        )

),

versions as (

    -- A version holds from its valid_from until the account's next change (exclusive), or on.
    select
        versions_unioned.*,
        lead(versions_unioned.valid_from) over (
            partition by versions_unioned.acct_id order by versions_unioned.valid_from
        ) as valid_to
    from (
        select
            previous_month_end.valid_from,
            previous_month_end.is_deleted,
            previous_month_end.acct_id,
            previous_month_end.cust_id,
            previous_month_end.product_type,
            previous_month_end.currency,
            previous_month_end.account_status
        from previous_month_end
        union all
        select
            changes_since.valid_from,
            changes_since.is_deleted,
            changes_since.acct_id,
            changes_since.cust_id,
            changes_since.product_type,
            changes_since.currency,
            changes_since.account_status
        from changes_since
    ) as versions_unioned

),

final as (

    -- Every version valid on some day the build reads (coverage_start … as_of_month).
    select
        build_month.as_of_month,
        versions.valid_from,
        versions.valid_to,
        versions.acct_id,
        versions.cust_id,
        versions.product_type,
        versions.currency,
        versions.account_status
    from versions
    cross join build_month
    where not versions.is_deleted
        and (versions.valid_to is null or versions.valid_to > build_month.coverage_start)

)

select * from final
