with

balances as (

    select * from {{ ref('stg_core_banking__balances') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_in_month') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

product_types as (

    select * from {{ ref('rule_product_types') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

balances_read as (

    -- The batches since the previous evaluated month: each loaded day is summed by exactly one build.
    select balances.*
    from balances
    where {{ in_build_coverage('balances.batch_date') }}

),

balances_converted as (

    -- Owner and product from the account version of the balance's own day (D2); the rate of that day.
    -- Widen before multiplying: DECIMAL(18,2) × DECIMAL(18,6) would stay DECIMAL(18,8) and overflow.
    -- Outer joins: a balance without its account version, rate or product rule must fail the build's
    -- not_null tests (D2), never count as 0.
    select
        account_versions.cust_id,
        cast(date_trunc('month', balances_read.balance_date) as date) as month_start,
        product_types.is_aum,
        product_types.is_deposit,
        {{ to_cny('balances_read.balance_amount', 'balances_read.currency', 'fx_rates.cny_per_unit') }}
            as balance_cny
    from balances_read
    left join account_versions
        on balances_read.acct_id = account_versions.acct_id
        and balances_read.batch_date >= account_versions.valid_from
        -- coalesce, not `valid_to is null or …`: an OR in an outer join's condition forces a nested loop.
        and balances_read.batch_date < coalesce(account_versions.valid_to, date '9999-12-31')
    left join fx_rates
        on balances_read.currency = fx_rates.currency
        and balances_read.batch_date = fx_rates.batch_date
    left join product_types
        on account_versions.product_type = product_types.product_type

),

final as (

    -- Only AUM products count as AUM (seed rule_product_types.is_aum): LOAN and CARD balances are debts.
    select
        build_month.as_of_month,
        balances_converted.month_start,
        balances_converted.cust_id,
        case
            when not bool_or(balances_converted.balance_cny is null or balances_converted.is_aum is null)
                then cast(
                        sum(case when balances_converted.is_aum then balances_converted.balance_cny else 0 end)
                        as decimal(38, 8)
                    )
        end as aum_sum_cny,
        case
            when not bool_or(balances_converted.balance_cny is null or balances_converted.is_deposit is null)
                then cast(
                        sum(case when balances_converted.is_deposit then balances_converted.balance_cny else 0 end)
                        as decimal(38, 8)
                    )
        end as deposit_sum_cny,
        count(*) as balance_rows
    from balances_converted
    cross join build_month
    group by all

)

select * from final
