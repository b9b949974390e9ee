{{ config(materialized='view') }}

with

txns as (

    select * from {{ ref('stg_core_banking__txns') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_in_month') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

build_month as (

    select months.* from months
    where months.as_of_month = {{ evaluation_month() }}

),

txns_in_coverage as (

    -- The batches since the previous evaluated month.
    select txns.*
    from txns
    where {{ in_build_coverage('txns.batch_date') }}

),

redelivered as (

    -- txn_ids delivered by more than one of these batches (ingestion allows one per batch): the latest
    -- batch's delivery replaces the earlier ones (C1). An aggregate, not a window over every transaction.
    select
        txns_in_coverage.txn_id,
        max(txns_in_coverage.batch_date) as latest_batch_date
    from txns_in_coverage
    group by txns_in_coverage.txn_id
    having count(*) > 1

),

txns_read as (

    select txns_in_coverage.*
    from txns_in_coverage
    left join redelivered
        on txns_in_coverage.txn_id = redelivered.txn_id
    where redelivered.txn_id is null
        or txns_in_coverage.batch_date = redelivered.latest_batch_date

),

rates_read as (

    select fx_rates.*
    from fx_rates
    where {{ in_build_coverage('fx_rates.batch_date') }}

),

txns_joined_to_accounts as (

    -- The account version of the transaction's own batch day says whose account it is.
    select
        txns_read.txn_id,
        txns_read.batch_date,
        txns_read.acct_id,
        account_versions.cust_id,
        txns_read.txn_at,
        cast(txns_read.txn_at as date) as txn_date,
        txns_read.txn_type,
        txns_read.txn_amount,
        txns_read.currency,
        txns_read.channel,
        txns_read.is_cash,
        txns_read.counterparty_country
    from txns_read
    left join account_versions
        on txns_read.acct_id = account_versions.acct_id
        and txns_read.batch_date >= account_versions.valid_from
        -- coalesce, not `valid_to is null or …`: an OR in an outer join's condition forces a nested loop.
        and txns_read.batch_date < coalesce(account_versions.valid_to, date '9999-12-31')

),

rates_added as (

    -- The rates of the transaction's own day; CNY needs none.
    select
        txns_joined_to_accounts.*,
        {{ cny_per_unit('txns_joined_to_accounts.currency', 'currency_rates.cny_per_unit') }} as cny_per_unit,
        usd_rates.cny_per_unit as cny_per_usd
    from txns_joined_to_accounts
    left join rates_read as currency_rates
        on txns_joined_to_accounts.currency = currency_rates.currency
        and txns_joined_to_accounts.txn_date = currency_rates.rate_date
    left join rates_read as usd_rates
        on usd_rates.currency = 'USD'
        and txns_joined_to_accounts.txn_date = usd_rates.rate_date

),

final as (

    -- Widen before multiplying, as for balances: the exact CNY amount is DECIMAL(38,8).
    select
        rates_added.txn_id,
        rates_added.batch_date,
        rates_added.acct_id,
        rates_added.cust_id,
        rates_added.txn_at,
        rates_added.txn_date,
        rates_added.txn_type,
        rates_added.txn_amount,
        rates_added.currency,
        rates_added.channel,
        rates_added.is_cash,
        rates_added.counterparty_country,
        rates_added.cny_per_unit,
        rates_added.cny_per_usd,
        {{ to_cny('rates_added.txn_amount', 'rates_added.currency', 'rates_added.cny_per_unit') }} as amount_cny,
        not {{ in_rule_list('rates_added.txn_type', 'rfm', 'non_activity_txn_types') }} as is_customer_initiated
    from rates_added

)

select * from final
