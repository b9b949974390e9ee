-- tier_summary and tier_migration count every customer_tier row exactly once per month and rule set.
with

customer_tier as (

    select * from {{ ref('customer_tier') }}
    where {{ in_evaluation_month('as_of_month') }}

),

tier_summary as (

    select * from {{ ref('tier_summary') }}
    where {{ in_evaluation_month('as_of_month') }}

),

tier_migration as (

    select * from {{ ref('tier_migration') }}
    where {{ in_evaluation_month('as_of_month') }}

),

tier_rows as (

    select
        customer_tier.as_of_month,
        customer_tier.rule_set,
        count(*) as customers
    from customer_tier
    group by 1, 2

),

summary_rows as (

    select
        tier_summary.as_of_month,
        tier_summary.rule_set,
        sum(tier_summary.customers) as customers
    from tier_summary
    group by 1, 2

),

migration_rows as (

    select
        tier_migration.as_of_month,
        tier_migration.rule_set,
        sum(tier_migration.customers) as customers
    from tier_migration
    group by 1, 2

)

select
    tier_rows.as_of_month,
    tier_rows.rule_set,
    tier_rows.customers,
    summary_rows.customers as summary_customers,
    migration_rows.customers as migration_customers
from tier_rows
left join summary_rows
    on tier_rows.as_of_month = summary_rows.as_of_month
    and tier_rows.rule_set = summary_rows.rule_set
left join migration_rows
    on tier_rows.as_of_month = migration_rows.as_of_month
    and tier_rows.rule_set = migration_rows.rule_set
where tier_rows.customers <> coalesce(summary_rows.customers, 0)
    or tier_rows.customers <> coalesce(migration_rows.customers, 0)
